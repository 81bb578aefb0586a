"""The command line entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import pamer
from pamer.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"pamer {pamer.__version__}"


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_loso_workers_below_one_refused(tmp_path: Path, workers: str) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "paper" / "casme2.yaml"
    args = ["loso", str(config), "--executor", "process", "--workers", workers, "--out", str(tmp_path / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"--workers must be at least 1, got {workers}" in result.stderr
    assert not (tmp_path / "run").exists()
