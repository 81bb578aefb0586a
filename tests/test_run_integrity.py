"""Run integrity: no silently wrong number, no lost work. Each run file pamer reads back is checked against what
it must hold and refused by name; a diverging training stops; outputs are checked before the work."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import pamer.engine.executors as executors
import pamer.engine.final as final
from _engine import CLASSES, make_cache, write_cache
from pamer.checkpoint import CheckpointError, load_checkpoint
from pamer.cli import app
from pamer.config import SHIPPED, ConfigError, load_config
from pamer.engine import RunDirError, run_loso, train_final
from pamer.engine.fold import DivergedError
from pamer.engine.inputs import device_for
from pamer.engine.metrics import pooled_metrics
from pamer.engine.rundir import fold_file, fold_text, source_version
from pamer.preprocess.cache import Cache
from pamer.report.compare import compare_tables
from pamer.report.tables import ReportError, compare_runs

NEXT = {c: CLASSES[(i + 1) % len(CLASSES)] for i, c in enumerate(CLASSES)}
CONFIG = SHIPPED / "paper" / "smic.yaml"
runner = CliRunner()


SETTINGS = [
    "model.name=pamnet_test",
    "train.epochs=1",
    "train.input_size=32",
    "train.batch_size=4",
    "train.threads=1",
    "train.device=cpu",
    "seed=3",
]


def config(*extra: str):
    return load_config(None, [*SETTINGS, *extra])


def cli_sets(cache_dir: Path, *extra: str) -> list[str]:
    return [a for s in [*SETTINGS, f"data.cache={cache_dir}", *extra] for a in ("--set", s)]


@pytest.fixture(scope="module")
def cache() -> Cache:
    return make_cache(per_subject=4, labels="every class")


@pytest.fixture(scope="module")
def cache_dir(cache: Cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cache(cache, tmp_path_factory.mktemp("caches") / "synthetic-abc")


@pytest.fixture(scope="module")
def finished(cache: Cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    run_loso(config(), out, "local", cache=cache, quiet=True)
    return out


@pytest.fixture
def one_fold_then_killed(monkeypatch: pytest.MonkeyPatch):
    """Make the next `run_loso` die (as if killed) after its first fold; returns a function that undoes it."""
    real = executors.run_fold
    calls = []

    def dies_after_first_fold(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(executors, "run_fold", dies_after_first_fold)
    return lambda: monkeypatch.setattr(executors, "run_fold", real)


def _fail(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), f"traceback instead of a message: {result.exception!r}"
    return result.stderr


# ---------------------------------------------------------------------------- 1. resume on another cache


def test_resume_on_a_reprepared_cache_is_refused(cache: Cache, tmp_path: Path, one_fold_then_killed) -> None:
    """Killed after one fold, the cache prepared again with other pixels (same clips, same folder name), rerun:
    refused, naming both fingerprints, instead of mixing folds of two caches."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_loso(config(), out, "local", cache=cache, quiet=True)
    one_fold_then_killed()
    first = json.loads((out / "provenance.json").read_text())["cache_fingerprint"]  # written before the first fold
    (fold,) = (out / "folds").glob("*.csv")
    assert set(pd.read_csv(fold)["cache_fingerprint"]) == {first}
    other = make_cache(per_subject=4, labels="every class", seed=1)  # the same clips, subjects and labels; other pixels
    with pytest.raises(RunDirError, match=rf"other contents \(fingerprint {first}\).*\(fingerprint [0-9a-f]{{32}}\)"):
        run_loso(config(), out, "local", cache=other, quiet=True)
    # even without provenance.json, each fold file says which cache it was computed from
    (out / "provenance.json").unlink()
    with pytest.raises(RunDirError, match=rf"fold file {fold} was computed with cache_fingerprint {first}, this run"):
        run_loso(config(), out, "local", cache=other, quiet=True)
    assert len(list((out / "folds").glob("*.csv"))) == 1  # refused before training any fold


def test_fold_file_of_another_configuration_is_refused(finished: Path, cache: Cache, tmp_path: Path) -> None:
    run = shutil.copytree(finished, tmp_path / "run")
    (run / "config.yaml").unlink()
    (run / "provenance.json").unlink()
    with pytest.raises(RunDirError, match=r"sub00\.csv was computed with config_hash [0-9a-f]+, this run has"):
        run_loso(config("augment.hflip=0"), run, "local", cache=cache, quiet=True)


def test_resume_takes_the_same_cache_under_another_spelling(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trailing slash, a relative path or a moved copy of the cache was refused as "another configuration";
    caches are compared by content, so each resumes with the same numbers, and another content is still refused."""
    out = tmp_path / "run"
    first = run_loso(config(f"data.cache={cache_dir}"), out, "local", quiet=True)
    moved = shutil.copytree(cache_dir, tmp_path / "elsewhere" / "copy")
    monkeypatch.chdir(cache_dir.parent)
    for spelling in (f"{cache_dir}/", cache_dir.name, str(moved)):
        fold_file(out, "sub01").unlink()
        again = run_loso(config(f"data.cache={spelling}"), out, "local", quiet=True)
        assert again["per_fold"] == first["per_fold"] and again["accuracy"] == first["accuracy"], spelling
    other = write_cache(make_cache(per_subject=4, labels="every class", seed=1), tmp_path / "other")
    with pytest.raises(RunDirError, match="was run on a cache with other contents"):
        run_loso(config(f"data.cache={other}"), out, "local", quiet=True)


def test_a_second_loso_into_a_run_being_written_is_refused(
    finished: Path, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `pamer loso` started into one --out each trained every fold (twice the time) and overwrote each other's
    provenance.json and fold files; the second is now refused at once, by name, and the run resumes once the first
    is gone (the lock goes with its process, however it ends). A file system without locks runs unguarded."""
    run = shutil.copytree(finished, tmp_path / "run")
    fold_file(run, "sub01").unlink()
    before = {p.name: p.read_bytes() for p in (run / "folds").iterdir()}
    with open(run / ".loso.lock", "a") as other:  # what the other invocation holds while it runs
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunDirError, match=f"another `pamer loso` is writing the run {run} right now"):
            run_loso(config(), run, "local", cache=cache, quiet=True)
        assert {p.name: p.read_bytes() for p in (run / "folds").iterdir()} == before  # nothing trained or written
    again = run_loso(config(), run, "local", cache=cache, quiet=True)
    assert again == json.loads((finished / "metrics.json").read_text())
    run_loso(config(), run, "local", cache=cache, quiet=True)  # a finished invocation released the lock

    def no_locks(*_: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    fold_file(run, "sub01").unlink()
    assert run_loso(config(), run, "local", cache=cache, quiet=True) == again


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_code_version_is_read_without_rewriting_the_checkouts_git_index(tmp_path: Path) -> None:
    """provenance.json's `git` came from `git describe --dirty`, which rewrites the index of the checkout pamer runs
    from (an editable install: the user's): a run killed meanwhile left `.git/index.lock`, and the next commit
    failed. The same version is now read without writing there."""
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
        return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "first")
    commit = git("describe", "--always")
    os.utime(repo / "code.py", ns=(1, 1))  # the same content, other file times: git's index must be refreshed
    index = (repo / ".git" / "index").stat().st_mtime_ns
    assert source_version(repo) == commit
    assert (repo / ".git" / "index").stat().st_mtime_ns == index
    (repo / "code.py").write_text("x = 2\n")
    assert source_version(repo) == f"{commit}-dirty"
    assert source_version(tmp_path) == ""  # not a checkout


# ---------------------------------------------------------------------------- 2. non-finite training


def test_diverging_training_stops_by_fold_and_epoch(cache: Cache, tmp_path: Path) -> None:
    with pytest.raises(DivergedError, match=r"fold 1 \(test subject sub00\): training diverged at epoch 1: .* nan"):
        run_loso(config("train.lr=1e20"), tmp_path / "run", "local", cache=cache, quiet=True)
    assert not list((tmp_path / "run" / "folds").glob("*.csv")) and not (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(DivergedError, match="pamer train: training diverged at epoch 1.*no model written"):
        train_final(config("train.lr=1e20"), tmp_path / "model", cache=cache)
    assert not (tmp_path / "model" / "model.safetensors").exists()


def test_diverging_stacked_training_names_its_folds(cache: Cache, tmp_path: Path) -> None:
    with pytest.raises(DivergedError, match=r"fold 1 \(test subject sub00\), fold 2 .*: training diverged at epoch 1"):
        run_loso(config("train.lr=1e20"), tmp_path / "run", "stacked", cache=cache, quiet=True)
    assert not list((tmp_path / "run" / "folds").glob("*.csv"))


def test_diverging_training_cli_names_fold_and_epoch(cache_dir: Path, tmp_path: Path) -> None:
    sets = cli_sets(cache_dir, "train.lr=1e20")
    # local: folds in plan order (with auto's two worker processes either fold may diverge first)
    error = _fail(["loso", str(CONFIG), "--out", str(tmp_path / "run"), "--executor", "local", "--quiet", *sets])
    assert "fold 1 (test subject sub00): training diverged at epoch 1" in error and "nan" in error


# ---------------------------------------------------------------------------- 3. damaged or edited fold files


def _edit_first_fold(run: Path, change) -> Path:
    """Apply `change` to fold sub00's table and write it back stamped with a fresh digest (as if pamer had written
    it), so the checks behind the digest are what refuses it; `change` returning None leaves the file empty."""
    path = run / "folds" / "sub00.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns="digest")
    changed = change(table)
    path.write_text("" if changed is None else fold_text(changed))
    return path


def _negative(table: pd.DataFrame) -> pd.DataFrame:
    """Probabilities that still sum to 1 and give `pred`, one of them negative."""
    probs = [c for c in table if c.startswith("prob_")]
    values = np.zeros((len(table), len(probs)))
    top = table["pred"].map({c.removeprefix("prob_"): i for i, c in enumerate(probs)}).to_numpy()
    values[np.arange(len(values)), top] = 1.5
    values[np.arange(len(values)), (top + 1) % len(probs)] = -0.5
    return table.assign(**{c: [str(float(v)) for v in values[:, i]] for i, c in enumerate(probs)})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.iloc[:-1], r"holds 3 clips, .*sub00 has 4 \(missing clip009\)"),
        (lambda t: None, "is empty"),
        (lambda t: t.assign(true="happiness"), "column true holds 'happiness', not a class"),
        (lambda t: t.assign(pred=t["pred"].map(NEXT)), "pred column is not the most probable"),
        (lambda t: t.assign(prob_negative="nan"), "not a finite number within 0..1"),
        (_negative, "not a finite number within 0..1"),
        (lambda t: t.drop(columns="config_hash"), "lacks the columns config_hash"),
        (lambda t: t.assign(true=t["true"][::-1].to_numpy()), "true labels are not"),
    ],
    ids=["rows-deleted", "empty", "label-not-a-class", "pred-edited", "nan", "negative", "no-stamp", "labels-shuffled"],
)
def test_damaged_fold_file_is_refused_by_name(finished: Path, cache: Cache, tmp_path: Path, change, message) -> None:
    run = shutil.copytree(finished, tmp_path / "run")
    path = _edit_first_fold(run, change)
    with pytest.raises(RunDirError, match=f"fold file {path}.*{message}.*delete it to train fold sub00 again"):
        run_loso(config(), run, "local", cache=cache, quiet=True)


def test_corrupt_run_files_are_refused_by_name(finished: Path, cache: Cache, cache_dir: Path, tmp_path: Path) -> None:
    run = shutil.copytree(finished, tmp_path / "run")
    (run / "provenance.json").write_text('{"cache_fingerprint": "abc", ')
    with pytest.raises(RunDirError, match=r"provenance\.json is damaged \(JSONDecodeError"):
        run_loso(config(), run, "local", cache=cache, quiet=True)
    (run / "provenance.json").write_text("[]")
    (run / "config.yaml").unlink()  # the run was made with an in-memory cache; the CLI names cache_dir
    error = _fail(["loso", str(CONFIG), "--out", str(run), "--quiet", *cli_sets(cache_dir)])
    assert "provenance.json is damaged" in error


def test_a_self_consistent_hand_edit_is_refused_by_the_resume_and_the_reports(
    finished: Path, cache: Cache, tmp_path: Path
) -> None:
    """Swap prob_<true> and prob_<pred> and set pred = true (metrics.json recomputed to match): every check of the
    content passes, so only the digest pamer wrote can tell; the resume, `compare` and `report` refuse it."""
    run = shutil.copytree(finished, tmp_path / "run")
    path = run / "folds" / "sub00.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    row = 0
    true, pred = table.loc[row, "true"], table.loc[row, "pred"]
    if true == pred:  # a right prediction: make it wrong the same way
        true = NEXT[pred]
    probs = table.loc[row, [f"prob_{true}", f"prob_{pred}"]].to_numpy()
    table.loc[row, [f"prob_{true}", f"prob_{pred}"]] = probs[::-1]
    table.loc[row, "pred"] = true
    table.to_csv(path, index=False)  # as a spreadsheet saves it: every other cell, the digest too, unchanged
    folds = pd.concat(pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted((run / "folds").glob("*.csv")))
    index = {c: i for i, c in enumerate(CLASSES)}
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(pooled_metrics(folds["true"].map(index), folds["pred"].map(index), folds["subject"], CLASSES))
    (run / "metrics.json").write_text(json.dumps(metrics))
    message = f"fold file {path}: its content does not match the digest pamer wrote with it"
    with pytest.raises(RunDirError, match=message):
        run_loso(config(), run, "local", cache=cache, quiet=True)
    for report in (compare_tables, compare_runs):
        with pytest.raises(ReportError, match=message):
            report([run])


# ---------------------------------------------------------------------------- 6. mixed devices


def test_resume_that_would_mix_thread_counts_needs_an_option(cache: Cache, tmp_path: Path, one_fold_then_killed):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_loso(config(), out, "local", cache=cache, quiet=True)
    one_fold_then_killed()
    threads = torch.get_num_threads()
    try:
        with pytest.raises(RunDirError, match="asks for train.threads=2: rerun with --set train.threads=1 "):
            run_loso(config("train.threads=2"), out, "local", cache=cache, quiet=True)
        assert len(list((out / "folds").glob("*.csv"))) == 1  # refused before training
        # a run of an older pamer has no record: its fold files are what the new folds are checked against
        provenance = json.loads((out / "provenance.json").read_text())
        (out / "provenance.json").write_text(
            json.dumps({k: v for k, v in provenance.items() if k != "executor_choice"})
        )
        advice = "rerun with --set train.device=cpu --set train.threads=1 to train the rest as the finished folds"
        with pytest.raises(
            RunDirError, match=f"would mix cpu float32 with 1 threads and cpu float32 with 2 .*{advice}"
        ):
            run_loso(config("train.threads=2"), out, "local", cache=cache, quiet=True)
        (out / "provenance.json").write_text(json.dumps(provenance))
        run_loso(config("train.threads=2"), out, "local", cache=cache, quiet=True, allow_mixed_devices=True)
    finally:
        torch.set_num_threads(threads)
    table = pd.concat(pd.read_csv(p) for p in sorted((out / "folds").glob("*.csv")))
    assert table.groupby("subject")["threads"].first().tolist() == [1, 2, 2]  # each fold records its own
    assert set(table["device"]) == {"cpu"} and set(table["dtype"]) == {"float32"}
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["executor_choice"]["threads"] == 1  # the choice the run started with
    assert provenance["executor_choice_last_invocation"]["threads"] == 2


# ---------------------------------------------------------------------------- 7. pamer train's output


def test_train_reuses_its_own_model_and_refuses_another_without_force(
    cache: Cache, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = train_final(config(), tmp_path / "model", cache=cache)
    first = (out / "model.safetensors").read_bytes()
    with monkeypatch.context() as patched:  # the same command again: its model is the result, nothing trains
        patched.setattr(final, "fit", lambda *a, **k: pytest.fail("trained again"))
        capsys.readouterr()
        assert train_final(config(), out, cache=cache) == out
        assert "holds this configuration's model of this cache already; reused" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match=f"{out} already holds a model .* of another configuration or cache"):
        train_final(config("seed=5"), out, cache=cache)
    args = ["train", str(CONFIG), "--out", str(out), "--quiet", *cli_sets(cache_dir, "seed=4")]
    assert "already holds a model" in _fail(args)
    assert (out / "model.safetensors").read_bytes() == first
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").read_bytes() != first  # seed 4 replaced seed 3's model
    second = (out / "model.safetensors").read_bytes()
    again = runner.invoke(app, args)  # the exact rerun of that command reuses it
    assert again.exit_code == 0, again.output
    assert "reused" in again.stderr and (out / "model.safetensors").read_bytes() == second
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "model.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask, name  # not safetensors' 0600


def test_train_checks_its_output_before_training(
    cache: Cache, tmp_path: Path, read_only_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(final, "fit", lambda *a, **k: pytest.fail("trained before checking the output folder"))
    with pytest.raises(CheckpointError, match=f"cannot write the model into {read_only_dir}: cannot write into"):
        train_final(config(), read_only_dir, cache=cache)
    (tmp_path / "file").write_text("a file")
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'file'} is a file, not a folder"):
        train_final(config(), tmp_path / "file" / "model", cache=cache)


def test_train_on_a_cache_not_found_leaves_no_folder_and_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data.cache is looked for from the current folder (a config's own folder is not its root); the
    message said only the path as written, and the refused train left an empty --out behind."""
    monkeypatch.chdir(tmp_path)
    sets = ["--set", "data.cache=caches/smic-x"]
    message = _fail(["train", str(CONFIG), "--out", "model", "--quiet", *sets])
    assert f"caches/smic-x: no such cache directory, looked for from the current folder as {tmp_path}" in message
    assert not (tmp_path / "model").exists()


def test_model_json_edited_after_training_is_refused(cache: Cache, tmp_path: Path) -> None:
    out = train_final(config(), tmp_path / "model", cache=cache)
    card = json.loads((out / "model.json").read_text())
    assert load_checkpoint(out)[1].input_size == 32
    for edit in ({"input_size": 64}, {"classes": ["negative", "surprise", "positive"]}, {"std": [1.0, 1.0, 1.0]}):
        (out / "model.json").write_text(json.dumps({**card, **edit}))
        with pytest.raises(CheckpointError, match=r"model\.json does not describe .*model\.safetensors"):
            load_checkpoint(out)


# ---------------------------------------------------------------------------- tracebacks that became messages


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only torch")
def test_cuda_device_on_a_cpu_only_torch(cache: Cache, cache_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.device = 'cuda': torch sees no CUDA device here"):
        run_loso(config("train.device=cuda"), tmp_path / "run", "local", cache=cache, quiet=True)
    assert not (tmp_path / "run").exists()
    sets = cli_sets(cache_dir, "train.device=cuda")
    assert "no CUDA device" in _fail(["loso", str(CONFIG), "--out", str(tmp_path / "run"), "--quiet", *sets])
    assert "no CUDA device" in _fail(["train", str(CONFIG), "--out", str(tmp_path / "m"), "--quiet", *sets])


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks a machine without an Apple GPU")
def test_a_device_torch_knows_but_that_is_not_here_is_named(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train.device=mps on Linux (or meta) was a traceback from torch when the network moved to it."""
    for device, message in (("mps", "torch sees no MPS"), ("meta", "not a device pamer runs on")):
        sets = cli_sets(cache_dir, f"train.device={device}")
        assert f"train.device = '{device}'" in _fail(["train", str(CONFIG), "--out", str(tmp_path / "m"), *sets])
        assert message in _fail(["loso", str(CONFIG), "--out", str(tmp_path / "run"), "--quiet", *sets])
    # a CUDA index past the machine's devices (cuda:3 on a machine of one GPU)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"train.device = 'cuda:3': this machine has 1 CUDA device\(s\)"):
        device_for(config("train.device=cuda:3"))
    assert device_for(config("train.device=cuda:0")) == torch.device("cuda:0")


def test_a_model_option_torch_refuses_is_named(cache_dir: Path, tmp_path: Path) -> None:
    """model.args={drop_rate: 20} (a percentage) was a ValueError traceback from torch's nn.Dropout."""
    for args, message in (
        ("{drop_rate: 20}", "dropout probability has to be between 0 and 1, but got 20"),
        ("{widths: [-1, 8, 8, 8]}", "Trying to create tensor with negative dimension -1"),
    ):
        sets = cli_sets(cache_dir, f"model.args={args}")
        for command in (["train", str(CONFIG), "--out", str(tmp_path / "m")], ["loso", str(CONFIG), "--quiet"]):
            error = _fail([*command, "--out", str(tmp_path / command[0]), *sets])
            assert error.startswith("error: model.args {") and f"for 'pamnet_test': {message}" in error, error
    assert "'pamnet_test' has no option 'dropout'" in _fail(
        ["train", str(CONFIG), "--out", str(tmp_path / "m"), *cli_sets(cache_dir, "model.args={dropout: 0.5}")]
    )


def test_loso_into_a_folder_that_cannot_take_it(cache: Cache, tmp_path: Path, read_only_dir: Path) -> None:
    with pytest.raises(RunDirError, match=f"cannot use {read_only_dir / 'run'} as a run directory: cannot create"):
        run_loso(config(), read_only_dir / "run", "local", cache=cache, quiet=True)
    (tmp_path / "file").write_text("a file")
    with pytest.raises(RunDirError, match=f"{tmp_path / 'file'} is a file, not a folder"):
        run_loso(config(), tmp_path / "file", "local", cache=cache, quiet=True)


def test_loso_into_a_folder_of_other_files_is_refused(cache: Cache, tmp_path: Path) -> None:
    """A user's own report.md in --out was replaced by the run's without a word; files of other names stay."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.md").write_text("my own notes")
    (notes / "todo.txt").write_text("mine too")
    with pytest.raises(
        RunDirError, match=r"notes holds report.md but no config.yaml, provenance.json or fold file: not a pamer run"
    ):
        run_loso(config(), notes, "local", cache=cache, quiet=True)
    assert (notes / "report.md").read_text() == "my own notes"
    (notes / "report.md").rename(notes / "my-report.md")
    run_loso(config(), notes, "local", cache=cache, quiet=True)
    assert (notes / "metrics.json").is_file() and (notes / "todo.txt").read_text() == "mine too"


@pytest.mark.parametrize(
    ("command", "written", "limit"),
    [
        ("loso", "provenance.json", 400),  # config.yaml (~320 bytes) fits, provenance.json does not
        ("loso", "confusion.png", 20_000),  # the fold files and metrics.json fit, the picture (~50 kB) does not
        ("train", "model.safetensors", 20_000),
    ],
)
def test_a_write_that_fails_midway_is_named(
    cache_dir: Path, tmp_path: Path, command: str, written: str, limit: int
) -> None:
    """A disk that fills up: every file beyond a size fails to write (a process file-size limit stands in for the
    full disk; both end in an OSError from write). The confusion matrix's picture was a traceback, and left half a
    PNG behind."""
    code = (
        f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.getrlimit("
        "resource.RLIMIT_FSIZE)[1])); from pamer.cli import main; main()"
    )
    out = tmp_path / "out"
    args = [command, str(CONFIG), "--out", str(out), "--quiet", *cli_sets(cache_dir)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot write {out / written}: the file is too large" in result.stderr
    assert not (out / written).exists() and not list(out.glob(".*.tmp"))  # no half file
