"""Reports: measured runs land in the paper's table cells, oracle rows are labelled, pictures are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pamer.report.plots import plot_attention, plot_confusion
from pamer.report.tables import PAPER, ReportError, compare_runs, run_report


def _run(path: Path, model: str, dataset: str, accuracy: float, f1: float, oracle: float | None = None) -> Path:
    path.mkdir(parents=True)
    metrics = {
        "dataset": dataset,
        "model": model,
        "accuracy": accuracy,
        "f1_macro": f1,
        "uf1": f1,
        "uar": 0.5,
        "classes": ["a", "b"],
        "per_fold": {"s1": {"n": 3, "accuracy": accuracy, "f1_macro": f1}},
        "per_fold_mean": {"accuracy": accuracy, "f1_macro": f1},
    }
    if oracle is not None:
        metrics["oracle"] = {
            "note": "best epoch on the test subject",
            "accuracy": oracle,
            "f1_macro": oracle,
            "uar": 0.6,
        }
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_runs_fill_their_rows_and_columns(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / "d", "pamnet", "casme2", 0.7123, 0.6544, oracle=0.8011),
        _run(tmp_path / "a", "pamnet_backbone", "samm", 0.5, 0.4),
        _run(tmp_path / "x", "resnet18", "composite", 0.6, 0.55),
    ]
    text = compare_runs(runs)
    lines = text.splitlines()
    # pamnet measures Table 2 "this paper", Table 3 D and Table 4 F, in the CASME II column only
    measured = [line for line in lines if line.startswith("| ") and "| pamer, last epoch |" in line]
    assert "| this paper | pamnet | pamer, last epoch |  | 0.712 / 0.654 |  |" in measured
    assert "| D | pamnet | pamer, last epoch |  | 0.712 / 0.654 |  |" in measured
    assert "| F | pamnet | pamer, last epoch |  | 0.712 / 0.654 |  |" in measured
    assert "| A | pamnet_backbone | pamer, last epoch |  |  | 0.500 / 0.400 |" in measured
    oracle = [line for line in lines if "ORACLE" in line and line.startswith("| D ")]
    assert oracle == ["| D | pamnet | " + "pamer ORACLE: best epoch chosen on the test subject (optimistic, not a "
                      "result) |  | 0.801 / 0.801 |  |"]  # fmt: skip
    assert "| D | pamnet | paper | 0.826 / 0.817 | 0.880 / 0.864 | 0.787 / 0.761 |" in lines
    assert "| LBP+attention |  | paper | 0.812 / - | 0.745 / - | - / - |" in lines
    assert any(line.startswith(f"| {tmp_path / 'x'} | composite | resnet18 | 0.600 | 0.550 |") for line in lines)
    csv = compare_runs(runs, "csv").splitlines()
    assert csv[0] == "table,row,network,source,dataset,accuracy,f1,run"
    assert f"Table 3,D,pamnet,pamer, last epoch,casme2,0.7123,0.6544,{tmp_path / 'd'}" in [
        line.replace('"', "") for line in csv
    ]


def test_paper_numbers_are_the_specs() -> None:
    assert PAPER["Table 2"]["this paper"] == {"smic": (0.826, 0.817), "casme2": (0.880, 0.864), "samm": (0.787, 0.761)}
    assert PAPER["Table 3"]["D"] == PAPER["Table 4"]["F"] == PAPER["Table 2"]["this paper"]
    assert PAPER["Table 4"]["I"]["casme2"] == (0.831, 0.797)


def test_bad_run_dirs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=f"{tmp_path}: no metrics.json"):
        compare_runs([tmp_path])
    (tmp_path / "metrics.json").write_text("{")
    with pytest.raises(ReportError, match="not valid JSON"):
        compare_runs([tmp_path])
    with pytest.raises(ReportError, match="unknown format 'xlsx'"):
        compare_runs([], "xlsx")


def test_run_report_labels_oracle(tmp_path: Path) -> None:
    run = _run(tmp_path / "r", "pamnet", "smic", 0.5, 0.4, oracle=0.9)
    text = run_report(json.loads((run / "metrics.json").read_text()))
    assert "| accuracy (pooled, eq. 11) | 0.5000 |" in text
    assert "ORACLE" in text and "Paper, Table 2 row this paper: accuracy / F1 = 0.826 / 0.817." in text


def test_pictures_are_written(tmp_path: Path) -> None:
    import matplotlib.image

    path = plot_confusion(np.array([[3, 1, 0], [0, 2, 2], [1, 0, 0]]), ["neg", "pos", "sur"], tmp_path / "c.png")
    assert matplotlib.image.imread(path).shape[0] > 100
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    motion = rng.normal(size=(3, 32, 32)).astype(np.float32)
    maps = [rng.random((1, s, s)) for s in (16, 8, 4, 1)]  # a 1 x 1 map (tiny input) must draw too
    image = matplotlib.image.imread(plot_attention(face, motion, maps, tmp_path / "a.png"))
    assert image.shape[1] > 2 * image.shape[0]  # face, motion and four maps side by side
