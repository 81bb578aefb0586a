"""What `pamer prepare` guarantees about its cache beyond the pixels: a damaged or edited cache is refused, a
prepare that caches nothing fails, one prepare at a time writes a cache, and its workers die with it."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import pamer.data
from pamer.cli import app
from pamer.config import SHIPPED
from pamer.demo import synthetic
from pamer.preprocess import CacheError, cache, load_cache, pipeline, prepare

runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CASME II-style tree of synthetic clips (2 subjects x 3 classes x 2 clips)."""
    config = synthetic.SyntheticConfig(subjects=2, clips_per_class=2, classes=3, face_px=128, frames=(4, 4))
    return synthetic.generate(tmp_path_factory.mktemp("syn") / "casme2", config)


@pytest.fixture(scope="module")
def index(root: Path) -> pamer.data.DatasetIndex:
    return pamer.data.read("casme2", root, "megc2019")


@pytest.fixture(scope="module")
def prepared(index, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(index, tmp_path_factory.mktemp("caches"), size=48, progress=False)


def _edit(copy: Path, change) -> None:
    meta = json.loads((copy / "cache.json").read_text())
    change(meta)
    (copy / "cache.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(classes=[m["classes"][1], m["classes"][0], *m["classes"][2:]]),  # reordered classes
        lambda m: m.update(subjects=[m["subjects"][-1]] * len(m["subjects"])),  # every clip one subject's
        lambda m: m.update(clips=sorted(m["clips"], reverse=True)),
        lambda m: m["content"].update(fields="0" * 64),
        lambda m: m.update(au_names=m["au_names"][::-1]),
    ],
    ids=["classes", "subjects", "clips", "digest", "au_names"],
)
def test_hand_edited_cache_json_is_refused(prepared: Path, tmp_path: Path, change) -> None:
    copy = tmp_path / prepared.name
    shutil.copytree(prepared, copy)
    load_cache(copy)  # the copy itself loads
    _edit(copy, change)
    with pytest.raises(CacheError, match=r"cache\.json: its classes, subjects, clips or other fields differ"):
        load_cache(copy)


@pytest.mark.parametrize("name", ["onset", "landmarks", "aus"])
def test_replaced_arrays_are_refused(prepared: Path, tmp_path: Path, name: str) -> None:
    copy = tmp_path / prepared.name
    shutil.copytree(prepared, copy)
    data = load_cache(copy)
    arrays = {"onset": data.onset, "apex": data.apex, "labels": data.labels}
    arrays.update(landmarks=data.landmarks, aus=data.aus)
    # the same shapes and labels, two clips' rows swapped (of different classes): only a digest can see it
    first, other = 0, int(np.flatnonzero(data.labels != data.labels[0])[0])
    arrays[name] = arrays[name].copy()
    arrays[name][[first, other]] = arrays[name][[other, first]]
    cache.save_arrays(copy / "arrays.safetensors", arrays)
    with pytest.raises(CacheError, match=r"arrays\.safetensors: its arrays differ from what `pamer prepare` wrote"):
        load_cache(copy)
    _edit(copy, lambda m: m.pop("content"))
    with pytest.raises(CacheError, match="no content digests"):
        load_cache(copy)


def test_prepare_that_caches_no_clip_fails(root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "casme2"
    shutil.copytree(root, broken)
    for frame in broken.rglob("*.jpg"):
        frame.write_bytes(b"\xff\xd8 not a jpeg")
    args = ["prepare", "casme2", "--root", str(broken), "--out", str(tmp_path / "out"), "--protocol", "megc2019"]
    result = runner.invoke(app, [*args, "--size", "48", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "none of the 12 clips of casme2 could be cached" in result.stderr
    assert "not a readable image" in result.stderr and "manifest.csv" in result.stderr
    (directory,) = (tmp_path / "out").iterdir()
    assert not (directory / "cache.json").exists() and (directory / "manifest.csv").is_file()
    with pytest.raises(CacheError, match="not a pamer cache"):
        load_cache(directory)


def test_a_deleted_or_edited_manifest_is_named(root: Path, tmp_path: Path) -> None:
    # the rerun of a finished prepare prints its manifest: deleted, it was a FileNotFoundError traceback
    args = ["prepare", "casme2", "--root", str(root), "--out", str(tmp_path), "--protocol", "megc2019"]
    args += ["--size", "32", "--quiet"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    manifest = Path(first.stdout.strip().splitlines()[-1]) / "manifest.csv"
    text = manifest.read_text()
    manifest.unlink()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "Traceback" not in again.output
    assert f"{manifest} is missing (deleted?); delete the cache directory and rerun `pamer prepare`" in again.stderr
    manifest.write_text(text.replace("status", "state", 1))  # saved back by a spreadsheet with a column renamed
    edited = runner.invoke(app, args)
    assert edited.exit_code == 2 and f"{manifest}: no column status (edited by hand?)" in edited.stderr
    manifest.write_text(text.replace(",cached,", ",cached", 1))  # a row one cell short: read, not a traceback
    assert runner.invoke(app, args).exit_code == 0


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_prepare_workers_below_one_refused(root: Path, tmp_path: Path, workers: str) -> None:
    args = ["prepare", "casme2", "--root", str(root), "--out", str(tmp_path), "--workers", workers, "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and f"--workers must be at least 1, got {workers}" in result.stderr
    assert not list(tmp_path.iterdir())  # refused before any work


def test_second_concurrent_prepare_is_refused_by_name(index, prepared: Path, tmp_path: Path) -> None:
    directory = tmp_path / prepared.name
    directory.mkdir()
    with open(directory / pipeline.LOCK_FILE, "a") as lock:  # what a running prepare holds
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CacheError, match=f"another `pamer prepare` is writing the cache {directory}") as error:
            prepare(index, tmp_path, size=48, progress=False)
        assert ".tmp" not in str(error.value) and "parts" not in str(error.value)
    assert prepare(index, tmp_path, size=48, progress=False) == directory  # the lock is released: it runs
    assert (directory / "arrays.safetensors").read_bytes() == (prepared / "arrays.safetensors").read_bytes()


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc; zombies count as dead)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_parent_and_check(command: list[str], ready) -> None:
    """Start `command`, SIGKILL it (the parent only, as `kill -9 PID` does) once `ready(children)` holds, and check
    that none of its worker processes outlives it."""
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and parent.poll() is None:
            workers = _children(parent.pid)
            if ready(workers):
                break
            time.sleep(0.02)
        assert parent.poll() is None, f"{command[4]} finished before it could be killed"
        assert len(workers) >= 2, f"expected two workers (and the resource tracker), found {workers}"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "workers outlived their killed parent"
    finally:
        for pid in workers:  # never leave this test's own processes behind, whatever happened
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()


CLI = [sys.executable, "-c", "from pamer.cli import main; main()"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
def test_workers_die_with_a_killed_prepare(root: Path, tmp_path: Path) -> None:
    """SIGKILL of `pamer prepare --workers 2` leaves no worker running."""
    more = synthetic.SyntheticConfig(subjects=3, clips_per_class=4, classes=3, face_px=128, frames=(4, 4))
    big = synthetic.generate(tmp_path / "casme2", more)
    command = [*CLI, "prepare", "casme2", "--root", str(big), "--out", str(tmp_path / "out"), "--protocol", "megc2019"]
    command += ["--size", "48", "--workers", "2", "--quiet"]
    # killed once the workers are at work: their first clips are written
    _kill_parent_and_check(command, lambda workers: len(list((tmp_path / "out").glob("*/parts/*.safetensors"))) >= 2)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
def test_fold_workers_die_with_a_killed_loso(prepared: Path, tmp_path: Path) -> None:
    """SIGKILL of `pamer loso --executor process` leaves no fold worker training on."""
    sets = [f"data.cache={prepared}", "model.name=pamnet_test", "train.input_size=32", "train.epochs=10000"]
    command = [*CLI, "loso", str(SHIPPED / "megc2019.yaml")]
    command += ["--out", str(tmp_path / "run"), "--executor", "process", "--workers", "2", "--quiet"]
    command += [arg for s in sets for arg in ("--set", s)]
    started = []

    def ready(workers: list[int]) -> bool:  # two fold workers (+ the resource tracker), then a moment to start
        if len(workers) >= 3 and not started:
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] > 2

    _kill_parent_and_check(command, ready)


def test_prepare_into_a_folder_that_cannot_take_it(index, read_only_dir: Path) -> None:
    with pytest.raises(CacheError, match=f"cannot write the cache under {read_only_dir}: cannot write into"):
        prepare(index, read_only_dir, size=48, progress=False)


def test_a_prepare_write_that_fails_is_named(index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("a file")
    with pytest.raises(CacheError, match=f"cannot write the cache under .*: {tmp_path / 'file'} is a file, not a"):
        prepare(index, tmp_path / "file" / "caches", size=48, progress=False)

    def disk_full(*args) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)  # the rename that ends every write of the cache
    with pytest.raises(CacheError, match=r"cannot write .*/parts/0+\.safetensors: no space left on the disk"):
        prepare(index, tmp_path / "full", size=48, progress=False)
    assert not list((tmp_path / "full").rglob("*.tmp"))  # no half-written file left behind
