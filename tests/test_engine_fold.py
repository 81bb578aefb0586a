"""The one training loop (`fold.train_learner`) that drives one fold and the stack alike."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pamer.engine.fold as fold
from _engine import make_cache
from pamer.config import ConfigError, load_config
from pamer.engine.final import train_final
from pamer.engine.fold import (
    DivergedError,
    FoldOutput,
    compute_dtype,
    cpu_has_native_bf16,
    train_fold,
    train_learner,
)
from pamer.engine.inputs import prepare_inputs
from pamer.engine.loso import run_loso
from pamer.engine.rundir import config_hash


class ScriptedLearner:
    """Two folds whose epoch losses and test predictions follow a script (fold 1 has no test clips)."""

    def __init__(self, losses: list[list[float]]) -> None:
        self.losses = losses
        self.means, self.stds = [[0.1], [0.2]], [[1.0], [2.0]]
        self.epoch = 0
        self.predictions = 0

    def train_epoch(self) -> list[tuple[float, float]]:
        self.epoch += 1
        return [(loss, 0.5) for loss in self.losses[self.epoch - 1]]

    def predict(self) -> list[np.ndarray | None]:
        self.predictions += 1
        probs = np.zeros((2, 3))
        probs[:, self.epoch % 3] = 1.0  # the predicted class follows the epoch
        return [probs, None]

    def model(self, k: int) -> nn.Module:
        return nn.Identity()


def test_oracle_records_every_epoch_and_the_final_prediction_once() -> None:
    config = load_config(None, ["train.epochs=3", "oracle=true"])
    learner = ScriptedLearner([[1.0, 1.0]] * 3)
    first, second = train_learner(config, learner, start=time.perf_counter())
    assert learner.predictions == 3  # two oracle epochs and the final prediction, no fourth
    assert first.epoch_preds.tolist() == [[1, 1], [2, 2], [0, 0]]
    assert second.epoch_preds is None and second.probs is None  # no test clips: nothing recorded
    assert first.history == [(1.0, 0.5)] * 3 and (first.mean, second.std) == ([0.1], [2.0])


def test_divergence_stops_at_its_epoch_and_names_the_folds() -> None:
    config = load_config(None, ["train.epochs=3"])
    learner = ScriptedLearner([[1.0, 1.0], [1.0, float("nan")], [1.0, 1.0]])
    calls = []
    with pytest.raises(DivergedError, match=r"at epoch 2: the mean training loss is nan") as err:
        train_learner(config, learner, start=time.perf_counter(), on_epoch=lambda e, s: calls.append(e))
    assert err.value.positions == [1]
    assert calls == [1] and learner.epoch == 2  # nothing after the diverged epoch


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 avx512f avx512bw {extra}
bugs\t\t: sysret_ss_attrs {bug}
"""


@pytest.mark.parametrize(
    ("extra", "bug", "native"),
    [
        ("avx512_bf16", "", True),
        ("amx_bf16 amx_tile", "", True),
        ("avx512_vnni", "", False),
        ("", "avx512_bf16", False),
    ],
    ids=["avx512-bf16", "amx", "avx512 without bf16", "flag outside the flags line"],
)
def test_native_bf16_is_read_from_the_cpu_flags(
    extra: str, bug: str, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cpu_has_native_bf16(CPUINFO.format(extra=extra, bug=bug)) is native
    monkeypatch.setattr(fold, "cpu_has_native_bf16", lambda: native)
    # until AUTO_BF16 is turned on, float32 everywhere (bf16 did not show it learns the same)
    assert compute_dtype("auto", torch.device("cpu")) == compute_dtype("auto", torch.device("cuda")) == torch.float32
    monkeypatch.setattr(fold, "AUTO_BF16", True)
    expected = torch.bfloat16 if native else torch.float32
    assert compute_dtype("auto", torch.device("cpu")) == expected
    assert compute_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert compute_dtype("float32", torch.device("cuda")) == torch.float32
    assert compute_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_no_cpuinfo_means_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold, "CPUINFO", fold.Path("/nonexistent/cpuinfo"))
    assert cpu_has_native_bf16() is False


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"train.precision = 'fp16', expected 'auto', 'float32' or 'bfloat16'"):
        load_config(None, ["train.precision=fp16"])


def conv_output_dtypes(config, cache) -> tuple[set[torch.dtype], FoldOutput]:
    """The dtypes every convolution put out while fold 0 of `cache` trained and predicted, and the fold's output."""
    seen: set[torch.dtype] = set()

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            seen.add(output.dtype)

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        output = train_fold(config, cache, prepare_inputs(cache, config, torch.device("cpu")), 0)
    finally:
        handle.remove()
    return seen, output


TINY = ["model.name=pamnet_test", "train.epochs=1", "train.input_size=32", "train.batch_size=8", "train.device=cpu"]


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag)")
def test_auto_precision_trains_in_bf16_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold, "AUTO_BF16", True)  # what `auto` does once bf16 is the CPU default
    cache = make_cache(subjects=2, per_subject=6)
    weights = []
    make = fold.create_model
    monkeypatch.setattr(fold, "create_model", lambda *a, **k: weights.append(make(*a, **k)) or weights[-1])
    seen, output = conv_output_dtypes(load_config(None, [*TINY, "train.precision=auto"]), cache)
    assert seen == {torch.bfloat16}
    assert output.dtype == "bfloat16" and np.isfinite(output.probs).all()
    # autocast: the weights and batch norm's running statistics stay float32
    state = weights[0].state_dict()
    assert {v.dtype for k, v in state.items() if not k.endswith("num_batches_tracked")} == {torch.float32}
    assert any(k.endswith("running_mean") and not torch.equal(v, torch.zeros_like(v)) for k, v in state.items())


def test_bfloat16_precision_trains_in_bf16_on_any_cpu() -> None:
    seen, output = conv_output_dtypes(load_config(None, [*TINY, "train.precision=bfloat16"]), make_cache(2, 6))
    assert seen == {torch.bfloat16} and output.dtype == "bfloat16" and np.isfinite(output.probs).all()


def test_float32_precision_forces_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold, "AUTO_BF16", True)
    monkeypatch.setattr(fold, "cpu_has_native_bf16", lambda: True)  # auto would take bf16 here
    seen, output = conv_output_dtypes(load_config(None, [*TINY, "train.precision=float32"]), make_cache(2, 6))
    assert seen == {torch.float32} and output.dtype == "float32"


@pytest.mark.parametrize(
    ("precision", "native", "warned"),
    [("bfloat16", False, True), ("bfloat16", True, False), ("float32", False, False), ("auto", False, False)],
    ids=["bf16 without native bf16", "bf16 with it", "float32", "auto"],
)
def test_bf16_on_a_cpu_that_emulates_it_is_warned_before_training(
    precision: str, native: bool, warned: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(fold, "cpu_has_native_bf16", lambda: native)
    config, cache = load_config(None, [*TINY, f"train.precision={precision}"]), make_cache(2, 6)
    warning = "warning: train.precision = bfloat16 on a CPU without native bf16 (pamer found no avx512_bf16"
    run_loso(config, tmp_path / "run", cache=cache, quiet=True)
    assert (f"pamer loso: {warning}" in capsys.readouterr().err) is warned
    train_final(config, tmp_path / "model", cache=cache)
    assert (f"pamer train: {warning}" in capsys.readouterr().err) is warned
    run_loso(config, tmp_path / "run", cache=cache, quiet=True)  # the rerun trains nothing: nothing to warn of
    assert "warning" not in capsys.readouterr().err


def test_train_records_the_dtype_it_trained_in(tmp_path: Path) -> None:
    cache = make_cache(subjects=2, per_subject=6)
    out = train_final(load_config(None, [*TINY, "train.precision=float32"]), tmp_path / "f32", cache=cache)
    assert json.loads((out / "model.json").read_text())["trained_in"] == "float32"
    out = train_final(load_config(None, [*TINY, "train.precision=bfloat16"]), tmp_path / "bf16", cache=cache)
    assert json.loads((out / "model.json").read_text())["trained_in"] == "bfloat16"


def test_precision_is_recorded_by_dtype_not_by_the_config_hash() -> None:
    auto, bf16 = load_config(None, TINY), load_config(None, [*TINY, "train.precision=bfloat16"])
    assert config_hash(auto) == config_hash(bf16)
    # a run directory written before train.precision existed: its config hash is the one computed now
    values = auto.to_dict()
    del values["train"]["precision"], values["train"]["device"], values["train"]["threads"], values["data"]["cache"]
    before = hashlib.blake2b(json.dumps(values, sort_keys=True).encode(), digest_size=16).hexdigest()
    assert config_hash(auto) == before
