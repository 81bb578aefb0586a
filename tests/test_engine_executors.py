"""`--executor auto`: what it picks for which network and machine, that it says so, and that it predicts the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pamer.engine.executors as executors
from _engine import make_cache, tiny_config
from pamer.config import load_config
from pamer.engine import run_loso
from pamer.engine.executors import ExecutorChoice, ExecutorError, choose_executor


def test_auto_runs_a_tiny_network_one_fold_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "available_cores", lambda: 4)
    choice = choose_executor("auto", tiny_config("train.threads=0"), 3, 26)
    assert (choice.executor, choice.workers, choice.threads) == ("process", 4, 1)
    assert "small network" in choice.reason and "GFLOP" in choice.reason
    # fewer folds than cores: one process per fold
    assert choose_executor("auto", tiny_config("train.threads=0"), 3, 3).workers == 3
    # an explicit train.threads is kept: two processes of two threads
    choice = choose_executor("auto", tiny_config("train.threads=2"), 3, 26)
    assert (choice.executor, choice.workers, choice.threads) == ("process", 2, 2)


def test_auto_runs_a_large_network_on_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "available_cores", lambda: 4)
    config = load_config(None, ["model.name=pamnet", "train.input_size=112", "train.device=cpu"])
    choice = choose_executor("auto", config, 3, 26)
    assert (choice.executor, choice.threads) == ("local", 4)
    assert "all threads on one fold" in choice.describe()


def test_auto_stacks_the_folds_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "device_for", lambda config: torch.device("cuda"))
    monkeypatch.setattr(executors, "device_name", lambda device: "cuda Test GPU")
    monkeypatch.setattr(executors, "stack_size", lambda config, device, in_chans, classes, folds: min(folds, 20))
    choice = choose_executor("auto", tiny_config(), 3, 68)
    assert (choice.executor, choice.stack) == ("stacked", 20)
    assert (choice.device, choice.dtype) == ("cuda Test GPU", "float32")  # what its fold files must record
    assert choice.describe().startswith("executor stacked, 20 folds at once on ")
    assert "cuda Test GPU float32 (CUDA" in choice.describe()


def test_unknown_executor_is_refused() -> None:
    expected = r"unknown executor 'gpu'; expected one of auto, local, process, ray, stacked"
    with pytest.raises(ExecutorError, match=expected):
        choose_executor("gpu", tiny_config(), 3, 3)


def test_auto_says_what_it_chose_and_predicts_as_local(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cache = make_cache()
    run_loso(tiny_config(), tmp_path / "local", "local", cache=cache, quiet=True)
    capfd.readouterr()
    run_loso(tiny_config(), tmp_path / "auto", cache=cache, quiet=True)  # the default executor
    line = capfd.readouterr().err.splitlines()[0]
    provenance = json.loads((tmp_path / "auto" / "provenance.json").read_text())
    choice = provenance["executor_choice"]
    assert provenance["executor"] == "auto" and choice["executor"] in ("local", "process")
    assert line.startswith(f"pamer loso: executor {choice['executor']}") and choice["reason"] in line
    for path in sorted((tmp_path / "local" / "folds").glob("*.csv")):  # train.threads=1 in both runs
        assert (tmp_path / "auto" / "folds" / path.name).read_text() == path.read_text(), path.name


def test_the_choice_is_described_with_the_threads_it_runs_on() -> None:
    """A classic method records 0 torch threads (its numpy threads are not torch's): it was 'on 0 threads'."""
    classic = ExecutorChoice("local", device="cpu", dtype="float64", reason="classic method")
    assert classic.describe() == "executor local, one fold at a time on numpy's threads, cpu float64 (classic method)"
    assert ExecutorChoice("process", workers=2, threads=1).describe() == (
        "executor process, 2 worker processes x 1 threads, cpu float32"
    )
