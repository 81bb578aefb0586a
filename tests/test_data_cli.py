"""`pamer datasets check` on the real sheets' trees and on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _trees import build_tree
from pamer.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trees(annotations_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree("composite", annotations_dir, tmp_path_factory.mktemp("cli-trees"))


def test_check_json(trees: Path) -> None:
    result = runner.invoke(app, ["datasets", "check", "samm", "--root", str(trees / "samm"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary) == {
        "dataset",
        "samples",
        "subjects",
        "classes",
        "aus",
        "aus_coded",
        "problems",
        "frame_trees",
        "notes",
    }
    assert (summary["frame_trees"], summary["notes"]) == ({"samm": str(trees / "samm")}, [])
    assert (summary["dataset"], summary["samples"], summary["subjects"]) == ("samm", 136, 27)
    assert summary["classes"] == {"happiness": 26, "anger": 57, "contempt": 12, "surprise": 15, "other": 26}
    assert {p["clip"] for p in summary["problems"]} == {"samm/028/028_4_1", "samm/032/032_3_1"}
    assert all(set(p) == {"clip", "kind", "detail"} for p in summary["problems"])


def test_check_report(trees: Path) -> None:
    result = runner.invoke(app, ["datasets", "check", "casme2", "--root", str(trees / "casme2"), "--protocol", "all"])
    assert result.exit_code == 0, result.output
    assert "255 samples, 26 subjects" in result.output
    assert "sadness" in result.output and "apex-missing" in result.output and "sub04/EP12_01f" in result.output


def test_check_composite(trees: Path) -> None:
    args = ["datasets", "check", "composite", "--json"]
    for part in ("casme2", "samm", "smic"):
        args += ["--root", f"{part}={trees / part}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["samples"], summary["subjects"]) == (442, 68)
    assert summary["classes"] == {"negative": 250, "positive": 109, "surprise": 83}


def test_check_report_prints_paths_with_brackets_as_they_are(annotations_dir: Path, tmp_path: Path) -> None:
    # `[copy]` is rich markup: the problem table printed `no folder old /sub02/EP01_11f` for `old [copy]/sub02/...`
    root = build_tree("casme2", annotations_dir, tmp_path / "old [copy]", clips=["sub01/EP02_01f"])
    (root / "sub01" / "EP02_01f" / "img59.jpg").unlink()  # the apex
    result = runner.invoke(app, ["datasets", "check", "casme2", "--root", str(root)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"no folder {root / 'sub02' / 'EP01_11f'}; left out" in result.output
    assert "apex 59 has no file" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["casme2", "--root", "/nonexistent/casme2"], "CASME II root /nonexistent/casme2 does not exist"),
        (["casme", "--root", "."], "unknown dataset 'casme'"),
        (["samm", "--root", "{casme2}"], "no SAMM FACS codes sheet"),
        (["samm", "--root", "{samm}", "--protocol", "7class"], "unknown protocol '7class' for samm"),
        (["composite", "--root", "casme2={casme2}"], "composite needs --root samm=PATH, --root smic=PATH"),
        (["composite", "--root", "{casme2}"], "composite takes --root PART=PATH"),
        (["casme2", "--root", "{casme2}", "--root", "{samm}"], "casme2 takes one --root PATH, got 2"),
        (["smic", "--root", "{smic}", "--sheet", "x.xlsx"], "--sheet does not apply to smic"),
    ],
)
def test_bad_input_is_one_clear_error(trees: Path, args: list[str], message: str) -> None:
    args = [a.format(**{p: trees / p for p in ("casme2", "samm", "smic")}) for a in args]
    result = runner.invoke(app, ["datasets", "check", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught error
