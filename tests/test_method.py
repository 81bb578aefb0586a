"""The method interface (`pamer.models.method`): a registered network declares its inputs, its loss and statistics
of the training fold; the engine computes those statistics from the training clips only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from _engine import make_cache
from pamer.config import ConfigError, load_config
from pamer.engine.executors import ExecutorError, choose_executor
from pamer.engine.fold import check_model, fit, fold_arguments, fold_plan, fold_seed, train_fold
from pamer.engine.inputs import network_inputs
from pamer.engine.stacked import StackedError, check_stackable
from pamer.models import Method, _registry, count_flops, create_model, model_method, register_model
from pamer.preprocess.cache import Cache

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIDE = 16


class Probe(nn.Module):
    """Two inputs (the motion image and its row means as a 1 x 8 x 1 image) and a fold prior added to the logits."""

    def __init__(self, num_classes: int = 3, prior: Tensor | None = None) -> None:
        super().__init__()
        self.image = nn.Linear(3 * SIDE * SIDE, num_classes)
        self.rows = nn.Linear(SIDE, num_classes)
        self.register_buffer("prior", torch.zeros(num_classes) if prior is None else prior.float())

    def branches(self, image: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        return self.image(image.flatten(1)), self.rows(rows.flatten(1))

    def forward(self, image: Tensor, rows: Tensor) -> Tensor:
        a, b = self.branches(image, rows)
        return a + b + self.prior


def probe_inputs(cache: Cache, standard) -> tuple[Tensor, ...]:
    base = standard(SIDE)
    return base, standard(2 * SIDE).mean(dim=(1, 3)).reshape(len(base), 1, SIDE, 2)[..., 0:1]


def probe_fold_args(train: Cache) -> dict:
    # uses the training clips' labels and action units: the prior is their AU rate per class
    prior = torch.zeros(len(train.classes))
    coded = np.isfinite(train.aus).all(axis=1)
    for c in range(len(train.classes)):
        picked = train.aus[coded & (train.labels == c)]
        prior[c] = float(picked.mean()) if len(picked) else 0.0
    return {"prior": prior}


def probe_loss(model: nn.Module, inputs: Sequence[Tensor], y: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    a, b = model.branches(*inputs)
    logits = a + b + model.prior
    similarity = F.cosine_similarity(a.float(), b.float(), dim=1).mean()
    return F.cross_entropy(logits.float(), y, weight=weight) + 0.01 * (1 - similarity), logits


PROBE = Method(
    inputs=probe_inputs, input_shapes=((3, SIDE, SIDE), (1, SIDE, 1)), fold_args=probe_fold_args, loss=probe_loss
)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for table in ("_MODELS", "_INPUT_SIZES", "_METHODS"):
        monkeypatch.setattr(_registry, table, dict(getattr(_registry, table)))

    @register_model(input_size=SIDE, method=PROBE)
    def method_probe(num_classes: int = 3, prior: Tensor | None = None) -> Probe:
        return Probe(num_classes, prior)

    yield "method_probe"


# 3 subjects x 6 clips, each subject every class, AU-coded: what a probe's fold statistics read
CACHE = {"size": 32, "labels": "every class", "classes": ("a", "b", "c"), "au_names": ("1", "2", "4", "12")}


def _config(name: str):
    return load_config(
        None,
        [
            f"model.name={name}",
            f"train.input_size={SIDE}",
            "train.epochs=3",
            "train.batch_size=4",
            "train.device=cpu",
            "augment.hflip=0",
            "augment.rotation=0",
            "augment.crop_scale=1",
        ],
    )


def _weights(config, cache: Cache, fold: int) -> dict[str, Tensor]:
    _, train_idx, test_idx = fold_plan(cache.subjects)[fold]
    inputs = network_inputs(cache, config, torch.device("cpu"))
    result = fit(
        config,
        inputs,
        cache.labels,
        len(cache.classes),
        train_idx,
        test_idx,
        seed=fold_seed(config.seed, fold),
        fold_args=fold_arguments(config, cache, train_idx),
    )
    return result.model.state_dict()


def test_the_test_subjects_aus_and_labels_do_not_reach_the_weights(probe: str) -> None:
    config, cache = _config(probe), make_cache(**CACHE)
    fold = 0
    test = np.flatnonzero(np.asarray(cache.subjects) == fold_plan(cache.subjects)[fold][0])
    changed = cache.subset(np.arange(len(cache)))
    changed.aus = cache.aus.copy()
    changed.aus[test] = 1 - np.nan_to_num(changed.aus[test])
    changed.labels = cache.labels.copy()
    changed.labels[test] = (changed.labels[test] + 1) % 3
    before, after = _weights(config, cache, fold), _weights(config, changed, fold)
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    # the same change on a training subject does reach them (the statistics are used at all)
    train = np.flatnonzero(np.asarray(cache.subjects) == "sub02")
    other = cache.subset(np.arange(len(cache)))
    other.aus = cache.aus.copy()
    other.aus[train] = 1 - np.nan_to_num(other.aus[train])
    assert not torch.equal(_weights(config, other, fold)["prior"], before["prior"])


def test_fold_statistics_see_the_training_clips_only(probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, seen = make_cache(**CACHE), []
    monkeypatch.setitem(
        _registry._METHODS, probe, Method(fold_args=lambda train: seen.append(sorted(set(train.subjects))) or {})
    )
    config = _config(probe)
    for fold, (subject, train_idx, _) in enumerate(fold_plan(cache.subjects)):
        fold_arguments(config, cache, train_idx)
        assert seen[fold] == sorted({"sub00", "sub01", "sub02"} - {subject})


def test_declared_inputs_loss_and_fold_run_through_train_fold(probe: str) -> None:
    config, cache = _config(probe), make_cache(**CACHE)
    inputs = network_inputs(cache, config, torch.device("cpu"))
    assert [tuple(x.shape) for x in inputs] == [(18, 3, SIDE, SIDE), (18, 1, SIDE, 1)]
    out = train_fold(config, cache, inputs, 1)
    assert out.subject == "sub01" and out.probs.shape == (6, 3)
    np.testing.assert_allclose(out.probs.sum(1), 1, atol=1e-9)
    assert len(out.history) == 3 and all(np.isfinite(loss) for loss, _ in out.history)


def test_plain_networks_declare_nothing() -> None:
    for name in ("pamnet", "pamnet_test", "ststnet", "dssn"):
        method = model_method(name)
        assert not method.declared and method.what() == "nothing"
    assert Method().loss is Method().loss


def test_stack_refuses_a_method_and_auto_falls_back(probe: str) -> None:
    config = _config(probe)
    with pytest.raises(StackedError, match=r"declares its own inputs and its own loss and statistics of the training"):
        check_stackable(create_model(probe), probe)
    with pytest.raises(ExecutorError, match="use --executor local, process or auto"):
        choose_executor("stacked", config, 3, 3)
    assert choose_executor("auto", config, 3, 3).executor in ("local", "process")


def test_augmentation_is_refused_for_own_inputs(probe: str) -> None:
    config = load_config(None, [f"model.name={probe}", f"train.input_size={SIDE}", "augment.hflip=0.5"])
    with pytest.raises(ConfigError, match="builds its own inputs, which pamer's augmentation does not warp"):
        check_model(config, 3)


def test_inputs_of_another_shape_are_named(probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        _registry._METHODS,
        probe,
        Method(inputs=lambda cache, standard: (standard(SIDE),), input_shapes=((3, SIDE, SIDE), (1,))),
    )
    with pytest.raises(ValueError, match=r"built inputs of per-clip shapes \(\(3, 16, 16\),\) for 18 clips"):
        network_inputs(make_cache(**CACHE), _config(probe), torch.device("cpu"))


def test_flops_count_the_declared_inputs(probe: str) -> None:
    # two linear layers to 5 classes, a multiply-add 2 FLOPs: 2 * (768 * 5 + 16 * 5) per clip, batch 2
    assert count_flops(probe, batch=2, num_classes=5) == 2 * 2 * (3 * SIDE * SIDE * 5 + SIDE * 5)


def test_a_method_declares_inputs_with_their_shapes() -> None:
    with pytest.raises(ValueError, match="inputs and their input_shapes together"):
        Method(inputs=probe_inputs)
