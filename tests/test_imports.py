"""Every module a command or a user imports first works in a fresh interpreter: no import cycle hides behind the
order the test suite happens to import things in (`pamer report RUN` once failed this way in a fresh process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# the modules the CLI's commands import first, and the public entry points of the docs' Python examples
FIRST_IMPORTS = [
    "pamer.report.tables",
    "pamer.report.compare",
    "pamer.engine",
    "pamer.engine.rundir",
    "pamer.predict",
    "pamer.preprocess.pipeline",
    "pamer.demo.run",
    "pamer.spot",
]


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_engine_entry_points_load_on_first_use() -> None:
    code = "from pamer.engine import run_loso, train_final; print(run_loso.__module__, train_final.__module__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["pamer.engine.loso", "pamer.engine.final"]
