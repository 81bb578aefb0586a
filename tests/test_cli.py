"""The command line entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import pamer
from pamer.cli import app
from pamer.config import SHIPPED

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"pamer {pamer.__version__}"


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    for command in (
        "models",
        "datasets",
        "prepare",
        "loso",
        "train",
        "report",
        "compare",
        "predict",
        "demo",
        "configs",
        "spot",
    ):
        assert command in listed, f"`pamer --help` does not list {command}"


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


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_loso_workers_below_one_refused(tmp_path: Path, workers: str) -> None:
    config = SHIPPED / "paper" / "casme2.yaml"
    args = ["loso", str(config), "--executor", "process", "--workers", workers, "--out", str(tmp_path / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"--workers must be at least 1, got {workers}" in result.stderr
    assert not (tmp_path / "run").exists()
