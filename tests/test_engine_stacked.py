"""Stacked folds (`engine/stacked.py`) against one-by-one training (`fold.fit`): same weights, same predictions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pamer.engine.fold as fold
import pamer.engine.stacked as stacked
from _engine import make_cache, tiny_config
from pamer.config import load_config
from pamer.engine import run_loso
from pamer.engine.fold import fit
from pamer.engine.stacked import FoldSpec, StackedError, fit_stacked, stack_size
from pamer.models import create_model


class MomentumFreeNet(nn.Module):
    """A small network with what pamnet_test lacks: a cumulative-average batch norm (momentum None), a 1-d batch
    norm and a dropout between linear layers."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4, momentum=None)
        self.fc1 = nn.Linear(4 * 4 * 4, 8)
        self.bn1d = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return self.fc2(self.drop(torch.relu(self.bn1d(self.fc1(x)))))


class SpatialDropoutNet(MomentumFreeNet):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__(num_classes)
        self.drop = nn.Dropout1d(0.5)


TEST_NETWORKS = {"stacked_test_net": MomentumFreeNet, "stacked_test_spatial_dropout": SpatialDropoutNet}


@pytest.fixture
def test_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test networks by name, for `fit` and the stack only (the registry, which other tests list, is untouched)."""

    def create(name: str, num_classes: int = 5, **kwargs) -> nn.Module:
        if name in TEST_NETWORKS:
            return TEST_NETWORKS[name](num_classes=num_classes, **kwargs)
        return create_model(name, num_classes, **kwargs)

    monkeypatch.setattr(fold, "create_model", create)
    monkeypatch.setattr(stacked, "create_model", create)


@pytest.fixture
def float64() -> Iterator[None]:
    """Float64 networks and inputs (and one torch thread: small tensors gain nothing from a second one)."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


# three subjects of 5, 7 and 8 clips: training sets of 15, 13 and 12 clips; with batches of 6 the folds take 3, 2
# and 2 steps an epoch: fold 0 ends on a partial batch of 3, fold 1's last batch of 1 clip is skipped (as fit does),
# so the third step trains fold 0 alone on 3 padded clips while folds 1 and 2 stay idle
SUBJECTS = np.array([0] * 5 + [1] * 7 + [2] * 8)


def three_folds() -> list[FoldSpec]:
    """One fold per subject of SUBJECTS, with seeds 100, 101, 102."""
    subjects = SUBJECTS
    return [FoldSpec(np.flatnonzero(subjects != s), np.flatnonzero(subjects == s), 100 + s) for s in range(3)]


CASES = {
    "pamnet_test, diff, dropout, class weights, oracle": [
        "model.name=pamnet_test",
        "model.args={drop_rate: 0.3}",
        "train.class_weights=true",
        "oracle=true",
    ],
    "momentum-free batch norm, 1-d batch norm, flow, weight decay": [
        "model.name=stacked_test_net",
        "data.representation=flow",
        "train.weight_decay=0.01",
        "train.lr=0.01",
    ],
}


@pytest.mark.parametrize("extra", CASES.values(), ids=CASES.keys())
def test_stacked_folds_equal_one_by_one_training(float64: None, test_networks: None, extra: list[str]) -> None:
    config = load_config(
        None, ["train.epochs=3", "train.input_size=32", "train.batch_size=6", "train.device=cpu", "seed=7", *extra]
    )
    inputs = torch.randn(len(SUBJECTS), 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = np.random.default_rng(0).integers(0, 3, len(SUBJECTS))
    folds = three_folds()
    alone = [fit(config, inputs, labels, 3, f.train_idx, f.test_idx, seed=f.seed) for f in folds]
    together = fit_stacked(config, inputs, labels, 3, folds)
    for k, (a, b) in enumerate(zip(alone, together, strict=True)):
        weights_a, weights_b = a.model.state_dict(), b.model.state_dict()
        assert weights_a.keys() == weights_b.keys()
        for name, value in weights_a.items():
            assert value.dtype == weights_b[name].dtype, name
            if name.endswith("num_batches_tracked"):  # steps actually taken: the skipped batch must not count
                assert int(value) == int(weights_b[name]), (k, name)
            else:
                np.testing.assert_allclose(weights_b[name].numpy(), value.numpy(), rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(b.probs, a.probs, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.array(b.history), np.array(a.history), rtol=0, atol=1e-6)
        assert a.mean == b.mean and a.std == b.std
        if a.epoch_preds is not None:
            assert np.array_equal(a.epoch_preds, b.epoch_preds)
        else:
            assert b.epoch_preds is None
    # the folds really differ (own seeds, data and steps): equal weights would hide a fold trained as another
    first = [next(iter(r.model.parameters())) for r in together]
    assert not torch.equal(first[0], first[1])


def test_refuses_a_random_layer_it_cannot_reproduce(test_networks: None) -> None:
    config = load_config(None, ["model.name=stacked_test_spatial_dropout", "train.device=cpu", "train.input_size=32"])
    folds = [FoldSpec(np.arange(4), np.arange(4, 6), 1)]
    with pytest.raises(StackedError, match=r"layer drop is a Dropout1d.*--executor local or process"):
        fit_stacked(config, torch.zeros(6, 3, 32, 32), np.zeros(6, dtype=np.int64), 3, folds)


def test_stack_size_is_all_folds_when_they_fit_and_fewer_when_not(monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config()
    assert stack_size(config, torch.device("cpu"), 3, 3, 68) == 68  # a tiny network: every fold at once
    per_fold = stacked.fold_bytes(config, 3, 3)
    monkeypatch.setattr(stacked, "free_bytes", lambda device: int(per_fold * 10 / 0.7) + 1)
    assert stack_size(config, torch.device("cpu"), 3, 3, 68) == 10


def test_stacked_executor_writes_the_local_executors_predictions(tmp_path: Path) -> None:
    cache = make_cache(subjects=3, per_subject=6)
    run_loso(tiny_config(), tmp_path / "local", "local", cache=cache, quiet=True)
    # two folds per stack: the run takes two stacks, one of them a single fold
    run_loso(tiny_config(), tmp_path / "stacked", "stacked", cache=cache, quiet=True, stack=2)
    for path in sorted((tmp_path / "local" / "folds").glob("*.csv")):
        a, b = pd.read_csv(path), pd.read_csv(tmp_path / "stacked" / "folds" / path.name)
        assert list(a.columns) == list(b.columns)
        assert (a[["clip", "subject", "true"]] == b[["clip", "subject", "true"]]).all().all()
        probs = [c for c in a.columns if c.startswith("prob_")]
        # float32 on the CPU: the stack's grouped convolutions round differently from separate ones
        np.testing.assert_allclose(b[probs].to_numpy(), a[probs].to_numpy(), rtol=0, atol=1e-4)


@pytest.mark.gpu
def test_stacked_folds_on_cuda_match_one_by_one_cuda_training() -> None:
    """On CUDA (bf16 autocast, per-fold CUDA dropout generators): close to one-by-one CUDA training, not equal."""
    device = torch.device("cuda")
    config = load_config(
        None,
        [
            "model.name=pamnet_test",
            "train.epochs=3",
            "train.input_size=32",
            "train.batch_size=6",
            "seed=7",
            "train.precision=bfloat16",
        ],
    )
    inputs = torch.randn(len(SUBJECTS), 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    labels = np.random.default_rng(0).integers(0, 3, len(SUBJECTS))
    folds = three_folds()
    alone = [fit(config, inputs, labels, 3, f.train_idx, f.test_idx, seed=f.seed) for f in folds]
    together = fit_stacked(config, inputs, labels, 3, folds)
    for a, b in zip(alone, together, strict=True):
        assert np.isfinite(b.probs).all()
        # bf16 products: the two paths agree to bf16 rounding after a few steps, not to float32 rounding
        np.testing.assert_allclose(b.probs, a.probs, rtol=0, atol=0.05)
        for name, value in a.model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                assert int(value) == int(b.model.state_dict()[name]), name


def test_stacked_folds_in_bf16_on_the_cpu_follow_one_by_one_bf16_training() -> None:
    """`train.precision=bfloat16` reaches the stack's vmapped step as `fit`'s: both autocast, weights stay float32."""
    common = ["model.name=pamnet_test", "train.epochs=2", "train.input_size=32", "train.batch_size=6", "seed=7"]
    config = load_config(None, [*common, "train.device=cpu", "train.precision=bfloat16"])
    inputs = torch.randn(len(SUBJECTS), 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = np.random.default_rng(0).integers(0, 3, len(SUBJECTS))
    folds = three_folds()
    alone = [fit(config, inputs, labels, 3, f.train_idx, f.test_idx, seed=f.seed) for f in folds]
    together = fit_stacked(config, inputs, labels, 3, folds)
    float32 = fit_stacked(
        load_config(None, [*common, "train.device=cpu", "train.precision=float32"]), inputs, labels, 3, folds
    )
    for a, b in zip(alone, together, strict=True):
        assert {v.dtype for v in b.model.parameters()} == {torch.float32}
        # bf16 products: the two paths agree to bf16 rounding after a few steps, not to float32 rounding
        np.testing.assert_allclose(b.probs, a.probs, rtol=0, atol=0.02)
    # the stack really computed in bf16: its predictions are not float32 training's
    assert any(not np.array_equal(f.probs, b.probs) for b, f in zip(together, float32, strict=True))
