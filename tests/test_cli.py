"""The command line entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import pamer
from pamer.cli import app
from pamer.config import SHIPPED

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"pamer {pamer.__version__}"


# every command and sub-command: a new one must be added here, and each must be listed by its group's --help
COMMANDS = {
    (): {"models", "datasets", "prepare", "loso", "train", "report", "compare", "predict", "demo", "configs", "spot"},
    ("datasets",): {"check"},
    ("spot",): {"video", "score", "evaluate"},
}


@pytest.mark.parametrize("group", list(COMMANDS), ids=lambda group: " ".join(("pamer", *group)))
def test_help_lists_every_command(group: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*group, "--help"])
    assert result.exit_code == 0
    # a command's row starts at the panel's border; its wrapped help and the options' rows do not
    rows = [line for line in result.output.splitlines() if line.startswith("│ ") and line[2] not in " -"]
    listed = {line.split()[1] for line in rows}
    registered = typer.main.get_command(app)
    for name in group:
        registered = registered.commands[name]
    assert listed == COMMANDS[group] == set(registered.commands)


def test_a_refusal_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PamerError` (every refusal) -> `error: ...`, exit 2; anything else is a bug and propagates."""
    import pamer.cli.configs as configs_cli

    result = runner.invoke(app, ["configs", "no/such"])
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: config file no/such does not exist") and result.stderr.count("\n") == 1

    def broken() -> dict:
        raise KeyError("a bug")

    monkeypatch.setattr(configs_cli, "shipped_configs", broken)
    result = runner.invoke(app, ["configs"])
    assert isinstance(result.exception, KeyError) and "error:" not in result.output


# each command that once caught ValueError, ImportError or OSError itself: the library function it calls there, and
# arguments that reach that call (prepare reads an empty index first)
CALLS = {
    "datasets check": ("pamer.data:read", ["datasets", "check", "casme2", "--root", "root"]),
    "prepare": ("pamer.preprocess.pipeline:prepare", ["prepare", "casme2", "--root", "root", "--out", "out"]),
    "prepare htnet": (
        "pamer.preprocess.images:prepare_images",
        ["prepare", "htnet", "--root", "root", "--out", "out", "--representation", "flow"],
    ),
    "loso": ("pamer.engine:run_loso", ["loso", str(SHIPPED / "paper" / "casme2.yaml"), "--out", "run"]),
    "train": ("pamer.engine:train_final", ["train", str(SHIPPED / "paper" / "casme2.yaml"), "--out", "m", "-q"]),
    "report": ("pamer.report.tables:compare_runs", ["report", "run"]),
    "compare": ("pamer.report.compare:compare_tables", ["compare", "run"]),
    "predict": ("pamer.predict:check_picture_path", ["predict", "m", "--frames", "f", "--picture", "p.png"]),
    "spot video": ("pamer.spot.source:open_source", ["spot", "video", "clip.mp4"]),
    "spot score": ("pamer.spot.intervals_csv:read_intervals", ["spot", "score", "truth.csv", "predicted.csv"]),
    "spot evaluate": ("pamer.spot.evaluate:read_spotting", ["spot", "evaluate", "casme-sq", "--root", "root"]),
    "demo": ("pamer.demo.run:run_demo", ["demo", "--out", "demo", "--quiet"]),
}


@pytest.mark.parametrize("command", list(CALLS))
@pytest.mark.parametrize("bug", [ValueError, ImportError, OSError, KeyError])
def test_a_bug_in_any_command_keeps_its_traceback(
    command: str, bug: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No command turns an exception other than a `PamerError` into a message: a bug propagates (the installed
    `pamer` prints its traceback), a refusal is one line."""
    import importlib

    import pamer.data
    from pamer.data.images import ImageIndex
    from pamer.errors import PamerError

    target, args = CALLS[command]
    module, name = target.split(":")
    if command.startswith("prepare"):
        index = ImageIndex("htnet", ("a",)) if command == "prepare htnet" else pamer.data.DatasetIndex("casme2", ("a",))
        monkeypatch.setattr(pamer.data, "read", lambda *args, **kwargs: index)

    def raises(error: Exception):
        def call(*args, **kwargs):
            raise error

        return call

    monkeypatch.setattr(importlib.import_module(module), name, raises(bug("a bug")))
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and type(result.exception) is bug, result.output
    assert "error:" not in result.output

    monkeypatch.setattr(importlib.import_module(module), name, raises(PamerError("a refusal")))
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr == "error: a refusal\n"


FAILING_ALLOCATIONS = """
import json, cv2, numpy as np, torch
failed = {}
for name, allocate in (
    ("python", lambda: bytearray(2**60)),
    ("torch cpu", lambda: torch.empty(2**50, dtype=torch.uint8)),
    ("opencv", lambda: cv2.resize(np.zeros((8, 8, 3), np.uint8), (1_000_000, 1_000_000))),
):
    try:
        allocate()
    except Exception as err:
        failed[name] = [f"{type(err).__module__}.{type(err).__qualname__}", str(err)]
print(json.dumps(failed))
"""


@pytest.fixture(scope="module")
def failed_allocations() -> dict[str, Exception]:
    """The errors of allocations that really fail (Python's, torch's CPU allocator, OpenCV's: terabytes and more,
    beyond any machine), and the error torch raises when a GPU's memory runs out (no GPU here to fill).

    The allocations fail in a child process: a failed one leaves glibc's heap changed for the rest of the process
    (its later large blocks are mapped), which the tests of `engine.allocator` would then see.
    """
    import cv2
    import torch

    child = subprocess.run([sys.executable, "-c", FAILING_ALLOCATIONS], capture_output=True, text=True, check=True)
    failed = json.loads(child.stdout)
    kinds = {"python": MemoryError, "torch cpu": RuntimeError, "opencv": cv2.error}
    assert {name: kind for name, (kind, _) in failed.items()} == {
        "python": "builtins.MemoryError",
        "torch cpu": "builtins.RuntimeError",
        "opencv": "cv2.error",
    }, failed  # each allocation did fail, with the error of its library
    errors: dict[str, Exception] = {name: kinds[name](text) for name, (_, text) in failed.items()}
    errors["cuda"] = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    return errors


@pytest.mark.parametrize("command", ["loso", "demo"])
def test_a_failed_allocation_is_one_line(
    command: str, failed_allocations: dict[str, Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings too large for the machine are not a bug: one line naming the allocation and what to lower."""
    import importlib

    module, name = CALLS[command][0].split(":")
    for error in failed_allocations.values():

        def call(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(importlib.import_module(module), name, call)
        result = runner.invoke(app, CALLS[command][1])
        assert result.exit_code == 2, (error, result.output)
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: out of memory (") and "lower train.batch_size or the input size" in line
        assert (str(error).strip().splitlines() or [type(error).__name__])[0] in line
    # a RuntimeError that is not about memory is a bug, and keeps its traceback

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(importlib.import_module(module), name, bug)
    result = runner.invoke(app, CALLS[command][1])
    assert result.exit_code == 1 and type(result.exception) is RuntimeError


def test_the_installed_command_prints_a_bugs_traceback(tmp_path: Path) -> None:
    code = (
        "import pamer.report.compare as compare; compare.compare_tables = lambda *a, **k: {}['a bug']; "
        "from pamer.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code, "compare", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "KeyError: 'a bug'" in result.stderr
    assert "error:" not in result.stderr


def test_every_error_class_is_a_pamer_error() -> None:
    import importlib
    import pkgutil

    from pamer.errors import PamerError

    found = []
    for info in pkgutil.walk_packages(pamer.__path__, "pamer."):
        if info.name.startswith("pamer.cli"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            # every error class; not a carrier such as workers.RemoteTraceback (a worker's traceback as a cause)
            if (
                isinstance(value, type)
                and issubclass(value, Exception)
                and value.__name__.endswith("Error")
                and value.__module__ == info.name
            ):
                found.append(value)
                assert issubclass(value, PamerError), f"{info.name}.{value.__name__} is not a PamerError"
    assert len(found) >= 13


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stack", "0"], "--stack must be at least 1, got 0"),
        (["--executor", "ray", "--cpus-per-fold", "0"], "--cpus-per-fold must be > 0"),
        (["--executor", "ray", "--gpus-per-fold", "-1"], "--gpus-per-fold >= 0, got 1.0 and -1.0"),
        # an option of another executor, which used to be ignored without a word
        (["--address", "10.0.0.1:6379"], "--address applies to --executor ray, not to --executor auto"),
        (["--executor", "local", "--cpus-per-fold", "2"], "--cpus-per-fold applies to --executor ray, not to"),
        (["--executor", "process", "--gpus-per-fold", "0.5"], "--gpus-per-fold applies to --executor ray"),
        (["--executor", "process", "--stack", "2"], "--stack applies to --executor auto or stacked, not to"),
        (["--executor", "local", "--workers", "2"], "--workers applies to --executor auto or process, not to"),
        (["--executor", "bogus", "--address", "x"], "unknown executor 'bogus'"),
    ],
)
def test_loso_executor_options_checked_before_the_work(tmp_path: Path, args: list[str], message: str) -> None:
    config = SHIPPED / "paper" / "casme2.yaml"
    result = runner.invoke(app, ["loso", str(config), *args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_loso_workers_below_one_refused(tmp_path: Path, workers: str) -> None:
    config = SHIPPED / "paper" / "casme2.yaml"
    args = ["loso", str(config), "--executor", "process", "--workers", workers, "--out", str(tmp_path / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"--workers must be at least 1, got {workers}" in result.stderr
    assert not (tmp_path / "run").exists()
