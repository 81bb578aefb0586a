"""One run, one execution: a run decides how its folds execute once, records it, and every rerun resumes so, on the
defaults users get (no pinned threads); a SIGKILLed run resumes; a killed pool leaves nothing in /dev/shm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import pamer.engine.executors as executors
import pamer.engine.loso as loso
from _engine import make_cache, write_cache
from pamer.config import SHIPPED, load_config
from pamer.engine import RunDirError, run_loso
from pamer.engine.executors import ExecutorError, choose_executor
from pamer.workers import WorkerError, WorkerPool

CONFIG = SHIPPED / "paper" / "smic.yaml"
CLI = [sys.executable, "-c", "from pamer.cli import main; main()"]
# the defaults: no train.threads, train.device auto, executor auto
DEFAULTS = ["model.name=pamnet_test", "train.epochs=1", "train.input_size=32", "train.batch_size=4", "seed=3"]
LINUX = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process table from /proc (Linux)")


def config(*extra: str):
    return load_config(None, [*DEFAULTS, *extra])


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _record(run: Path) -> dict:
    return json.loads((run / "provenance.json").read_text())["executor_choice"]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_auto_run_resumes_a_lost_fold_as_it_began(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_threads, capsys: pytest.CaptureFixture
):
    """Two cores: `auto` takes two processes of one thread for three folds. With one fold left it used to take this
    process on both cores and refuse to mix; now the rerun adopts the record and gives identical metrics."""
    monkeypatch.setattr(executors, "available_cores", lambda: 2)
    cache = make_cache(per_subject=4, labels="every class")
    out = tmp_path / "run"
    first = run_loso(config(), out, cache=cache, quiet=True)
    record = _record(out)
    assert (record["executor"], record["workers"], record["threads"]) == ("process", 2, 1)
    (out / "folds" / "sub01.csv").unlink()
    capsys.readouterr()
    again = run_loso(config(), out, cache=cache, quiet=True)
    assert again == first
    # one fold left starts one worker process, and says so (it said 2, the run's record)
    assert "pamer loso: executor process, 1 worker processes x 1 threads, cpu float32" in capsys.readouterr().err
    assert _record(out) == record  # provenance.json keeps the choice the run started with
    table = pd.concat(pd.read_csv(p) for p in sorted((out / "folds").glob("*.csv")))
    assert set(table["threads"]) == {1} and set(table["dtype"]) == {"float32"}


def test_explicit_options_against_the_record_are_refused_with_advice_that_works(tmp_path: Path, restore_threads):
    cache = make_cache(per_subject=4, labels="every class")
    out = tmp_path / "run"
    run_loso(config(), out, "local", cache=cache, quiet=True)
    threads = _record(out)["threads"]
    assert threads == torch.get_num_threads() >= 1  # local on torch's default threads, as a number
    (out / "folds" / "sub02.csv").unlink()
    other = threads + 1
    with pytest.raises(RunDirError, match=f"asks for train.threads={other}: rerun with --set train.threads={threads} "):
        run_loso(config(f"train.threads={other}"), out, "local", cache=cache, quiet=True)
    with pytest.raises(RunDirError, match="asks for --executor stacked: rerun with --executor local .*another --out"):
        run_loso(config(), out, "stacked", cache=cache, quiet=True)
    assert not (out / "folds" / "sub02.csv").exists()  # refused before training
    run_loso(config(f"train.threads={threads}"), out, "local", cache=cache, quiet=True)  # the advice, followed
    assert (out / "folds" / "sub02.csv").is_file()


def test_a_run_that_failed_before_its_first_fold_is_not_bound_to_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_threads
) -> None:
    """`--executor ray` without Ray (or a cluster not reached) fails after the run directory recorded that choice.
    With no fold trained, nothing could mix: the record binds nothing, and another executor or the default runs."""
    cache = make_cache(per_subject=4, labels="every class")
    out = tmp_path / "run"

    def no_ray(*args, **kwargs):  # as `executors.run_folds` for ray fails where Ray is not installed
        raise ExecutorError("executor 'ray' needs Ray: pip install 'pamer[ray]'")
        yield

    with monkeypatch.context() as patch:
        patch.setattr(loso, "run_folds", no_ray)
        with pytest.raises(ExecutorError, match="needs Ray"):
            run_loso(config(), out, "ray", cache=cache, quiet=True)
    assert _record(out)["executor"] == "ray" and not list((out / "folds").glob("*.csv"))
    run_loso(config(), out, "local", cache=cache, quiet=True)  # was refused: "started as executor ray"
    assert _record(out)["executor"] == "local"
    # once a fold has trained under the record, it binds
    (out / "folds" / "sub01.csv").unlink()
    with pytest.raises(RunDirError, match="asks for --executor process: rerun with --executor local"):
        run_loso(config(), out, "process", cache=cache, quiet=True)


def test_the_decision_never_depends_on_the_folds_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every executor's threads are a number fixed by the plan's size; ray's come from the task's CPUs."""
    monkeypatch.setattr(executors, "available_cores", lambda: 4)
    for name in ("auto", "local", "process", "ray", "stacked"):
        choice = choose_executor(name, config(), 3, 26, cpus_per_fold=2.0)
        assert choice.threads >= 1 and choice.execution()["threads"] == str(choice.threads), name
    assert choose_executor("ray", config(), 3, 26, cpus_per_fold=2.0).threads == 2
    assert choose_executor("ray", config("train.threads=3"), 3, 26).threads == 3
    assert choose_executor("process", config(), 3, 26).threads == 1
    assert choose_executor("process", config(), 3, 2).threads == 2  # a two-fold plan: two processes of two threads


def test_worker_pool_runs_tasks_and_names_failures() -> None:
    """Builtins as tasks, so the workers import nothing of the tests."""
    with WorkerPool(2, int) as pool:
        assert sorted(pool.run(int, [("3",), ("1",), ("2",)])) == [1, 2, 3]
        with pytest.raises(ValueError, match="invalid literal for int") as caught:
            list(pool.run(int, [("x",)]))
        assert "Traceback" in str(caught.value.__cause__)  # the worker's own traceback
        with pytest.raises(WorkerError, match=r"ended without a result \(exit code 3"):
            list(pool.run(os._exit, [(3,)]))


@LINUX
@pytest.mark.parametrize("moment", ["starting", "working"])
def test_ctrl_c_stops_the_pool_without_a_traceback_from_each_worker(moment: str) -> None:
    """Ctrl-C in a terminal interrupts the whole process group: each worker printed a traceback of its own
    KeyboardInterrupt (two screens for `pamer loso --executor process`), starting or working; now the parent alone
    answers it and stops the pool."""
    code = (
        "import sys, time\n"
        "from pamer.workers import WorkerPool\n"
        "try:\n"
        "    with WorkerPool(2, time.sleep, (60 if sys.argv[1] == 'starting' else 0,)) as pool:\n"
        "        print('started', flush=True)\n"
        "        list(pool.run(time.sleep, [(60,), (60,)]))\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit('interrupted')\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", code, moment],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert run.stdout.readline() == "started\n"
    time.sleep(3)  # the workers are in their initializer or their task
    os.killpg(run.pid, signal.SIGINT)
    _, errors = run.communicate(timeout=60)  # the pipes close when every worker has ended
    assert errors == "interrupted\n"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _semaphores(pids: list[int]) -> set[str]:
    """The POSIX named semaphores these processes have mapped (/dev/shm/sem.*)."""
    names = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        names |= {line.split()[-1] for line in maps.splitlines() if "/dev/shm/sem." in line}
    return names


def _loso_command(cache_dir: Path, out: Path, *extra: str) -> list[str]:
    sets = [*DEFAULTS, f"data.cache={cache_dir}", *extra]
    return [*CLI, "loso", str(CONFIG), "--out", str(out), "--quiet", *[a for s in sets for a in ("--set", s)]]


@LINUX
def test_sigkill_during_start_up_leaves_no_semaphore_files(tmp_path: Path) -> None:
    """The whole process group (the resource tracker too) killed while the fold workers start: nothing of the run
    stays in /dev/shm. A process pool of concurrent.futures held five named semaphores there, left for good."""
    cache_dir = write_cache(make_cache(per_subject=4, labels="every class"), tmp_path / "cache")
    command = _loso_command(cache_dir, tmp_path / "run", "train.epochs=10000")
    run = subprocess.Popen([*command, "--executor", "process", "--workers", "2"], start_new_session=True)
    held: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None and len(_children(run.pid)) < 3:
            time.sleep(0.02)  # two workers and the resource tracker: start-up under way
        assert run.poll() is None, "the run ended before it could be killed"
        held = _semaphores([run.pid, *_children(run.pid)])
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert not held, f"the run keeps named semaphores: {sorted(held)}"
    assert not [name for name in held if Path(name).exists()]


def _kill_after_first_fold(command: list[str], folds: Path, pattern: str, total: int) -> None:
    """Start `command` and SIGKILL it (its process group) as soon as its first fold file exists; some of its `total`
    folds are then left. Not "all but one": two workers end their first folds close together, and the third fold,
    started when the first ended, can end in the same poll interval as the second (it did on CI)."""
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and run.poll() is None and not list(folds.glob(pattern)):
            time.sleep(0.02)
        assert run.poll() is None, f"finished or failed before it could be killed: {run.stderr.read().decode()}"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        run.stderr.close()
    assert 1 <= len(list(folds.glob(pattern))) < total


@LINUX
# local trains on torch's default threads (all cores): minutes when the cores are shared, so it runs with --runslow
@pytest.mark.parametrize("executor", ["process", pytest.param("local", marks=pytest.mark.slow)])
def test_sigkilled_loso_resumes(tmp_path: Path, executor: str, restore_threads) -> None:
    """`pamer loso` on the defaults, SIGKILLed once its first fold ended, rerun: it finishes, as an uninterrupted run
    with the recorded threads does."""
    cache = make_cache(per_subject=4, labels="every class")
    cache_dir = write_cache(cache, tmp_path / "cache")
    out = tmp_path / "run"
    command = [*_loso_command(cache_dir, out, "train.epochs=10"), "--executor", executor]
    _kill_after_first_fold(command, out / "folds", "*.csv", 3)
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "as the run was started" in result.stderr
    threads = _record(out)["threads"]
    same = load_config(CONFIG, [*DEFAULTS, "train.epochs=10", f"train.threads={threads}"])
    reference = run_loso(same, tmp_path / "ref", "local", cache=cache, quiet=True)
    assert _metrics(out) == reference


@LINUX
@pytest.mark.slow  # renders, aligns (dlib) and trains: about a minute on 2 busy cores
def test_sigkilled_demo_resumes(tmp_path: Path) -> None:
    """`pamer demo` with its smallest settings (three subjects, so one fold trains after the first two), SIGKILLed
    once its first fold ended, rerun: it finishes."""
    out = tmp_path / "demo"
    args = ["--subjects", "3", "--clips-per-class", "1", "--epochs", "40", "--size", "64", "--model", "pamnet_test"]
    command = [*CLI, "demo", "--out", str(out), "--quiet", *args]
    folds = out / "runs"
    _kill_after_first_fold(command, folds, "*/folds/*.csv", 3)
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (run_dir,) = folds.iterdir()
    assert _metrics(run_dir)["folds"] == 3 and len(list(run_dir.glob("folds/*.csv"))) == 3
    assert "predicts differently" not in result.stderr  # the picture's retrain ran on the run's recorded threads
