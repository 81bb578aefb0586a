"""Reports: measured runs land in the paper's table cells, oracle rows are labelled, pictures are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _engine import make_cache
from _runs import config_for, full_size_clips, write_run
from pamer.data.labels import CASME2_5CLASS, MEGC2019_SMIC, PROTOCOLS, get_protocol
from pamer.report.plots import plot_attention, plot_confusion
from pamer.report.published import PAPER_COLUMNS
from pamer.report.tables import PAPER, ReportError, compare_runs, run_report


def _run(
    path: Path, model: str, dataset: str, correct: float, oracle: float | None = None, protocol: str | None = None
) -> Path:
    """A finished run of `model` on `dataset`'s `protocol` (its default when None), written by the engine's own
    functions: the dataset's full clip count where a paper column stands for it (else 40 clips), 8 subjects, each
    prediction right with probability `correct` (and after the one epoch with probability `oracle`)."""
    label = get_protocol(dataset, protocol) if dataset in PROTOCOLS else None
    classes = label.classes if label else ("a", "b")
    clips = next((c.clips for c in PAPER_COLUMNS if c.key == dataset), 40)
    rng = np.random.default_rng(len(model) + clips)
    true = rng.integers(0, len(classes), clips)
    guess = rng.integers(0, len(classes), clips)
    pred = np.where(rng.random(clips) < correct, true, guess)
    labelled = {"dataset": dataset if label else None, "protocol": label and label.name}
    cache = make_cache(full_size_clips(8, clips), labels=true, classes=classes, size=4, config=labelled)
    sets = [f"model.name={model}", f"data.dataset={dataset}"]
    oracle_preds = None
    if oracle is not None:
        sets.append("oracle=true")
        oracle_preds = np.where(rng.random(clips) < oracle, true, guess)
    write_run(path, cache, pred, config_for(*sets), oracle_preds)
    return path


def _numbers(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_runs_fill_their_rows_and_columns(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / "d", "pamnet", "casme2", 0.7, oracle=0.8),
        _run(tmp_path / "a", "pamnet_backbone", "samm", 0.5),
        _run(tmp_path / "x", "resnet18", "mmew", 0.6),
        _run(tmp_path / "old", "pamnet", "casme2", 0.6),
    ]
    old = _numbers(tmp_path / "old")
    del old["label_protocol"]  # made by an older pamer
    (tmp_path / "old" / "metrics.json").write_text(json.dumps(old))
    d, a, x = (_numbers(r) for r in runs[:3])
    text = compare_runs(runs)
    lines = text.splitlines()
    # pamnet measures Table 2 "this paper", Table 3 D and Table 4 F, in the CASME II column only
    measured = [line for line in lines if line.startswith("| ") and "| pamer, last epoch |" in line]
    pair = f"{d['accuracy']:.3f} / {d['f1_macro']:.3f}"
    assert f"| this paper | pamnet | pamer, last epoch |  | {pair} |  |" in measured
    assert f"| D | pamnet | pamer, last epoch |  | {pair} |  |" in measured
    assert f"| F | pamnet | pamer, last epoch |  | {pair} |  |" in measured
    assert f"| A | pamnet_backbone | pamer, last epoch |  |  | {a['accuracy']:.3f} / {a['f1_macro']:.3f} |" in measured
    oracle = [line for line in lines if "ORACLE" in line and line.startswith("| D ")]
    o = d["oracle"]
    assert o["accuracy"] > d["accuracy"]
    assert oracle == ["| D | pamnet | " + "pamer ORACLE: best epoch chosen on the test subject (optimistic, not a "
                      f"result) |  | {o['accuracy']:.3f} / {o['f1_macro']:.3f} |  |"]  # fmt: skip
    assert "| D | pamnet | paper | 0.826 / 0.817 | 0.880 / 0.864 | 0.787 / 0.761 |" in lines
    assert "| LBP+attention | lbp_attention | paper | 0.812 / - | 0.745 / - | - / - |" in lines
    assert any(
        line.startswith(f"| {tmp_path / 'x'} | mmew | resnet18 | {x['accuracy']:.3f} | {x['f1_macro']:.3f} |")
        for line in lines
    )
    old_lines = [line for line in lines if line.startswith(f"| {tmp_path / 'old'} |")]
    assert len(old_lines) == 1 and "no label_protocol" in old_lines[0] and "rerun the same `pamer loso`" in old_lines[0]
    assert "## MEGC2019" not in text  # no composite run, no MEGC2019 table
    csv = compare_runs(runs, "csv").splitlines()
    assert csv[0] == "table,row,network,source,dataset,accuracy,f1,run,uar"
    assert f"Table 3,D,pamnet,pamer, last epoch,casme2,{d['accuracy']},{d['f1_macro']},{tmp_path / 'd'},{d['uar']}" in [
        line.replace('"', "") for line in csv
    ]


@pytest.mark.parametrize("key", ["accuracy", "f1_macro", "uar"])
def test_oracle_numbers_that_the_fold_files_do_not_give_are_refused(tmp_path: Path, key: str) -> None:
    """`pamer report` prints the oracle's numbers: an edited oracle accuracy of 0.99 was printed as it stood."""
    run = _run(tmp_path / "d", "pamnet", "casme2", 0.7, oracle=0.8)
    assert "ORACLE" in compare_runs([run])
    numbers = _numbers(run)
    numbers["oracle"][key] = 0.99
    (run / "metrics.json").write_text(json.dumps(numbers))
    with pytest.raises(ReportError, match=rf"the fold files give oracle\.{key} 0\.\d{{6}}, metrics.json 0\.990000"):
        compare_runs([run])


def _engine_run(out: Path, classes: tuple[str, ...], protocol: str | None, *sets: str) -> dict:
    """A pamnet run on a CASME II cache read with `protocol`, its run directory written by the engine's functions."""
    rng = np.random.default_rng(0)
    subjects = full_size_clips(4, 246)  # CASME II in full under the 5-class protocol
    labels = rng.integers(0, len(classes), 246)
    cache = make_cache(
        subjects, labels=labels, classes=classes, size=4, config={"dataset": "casme2", "protocol": protocol}
    )
    return write_run(out, cache, rng.integers(0, len(classes), 246), config_for("model.name=pamnet", *sets))


def test_three_class_casme2_run_is_not_set_beside_the_papers_five_class(tmp_path: Path) -> None:
    """A CASME II run under megc2019 labels once landed beside the paper's 5-class 0.880 by its dataset name."""
    megc = _engine_run(tmp_path / "megc", MEGC2019_SMIC.classes, "megc2019", "seed=0")
    five = _engine_run(tmp_path / "five", CASME2_5CLASS.classes, None, "seed=1")  # the reader's default labels
    assert megc["dataset"] == five["dataset"] == "casme2"  # the same free-form name
    lines = compare_runs([tmp_path / "megc", tmp_path / "five"]).splitlines()
    beside = [line for line in lines if line.startswith("| this paper | pamnet | pamer, last epoch |")]
    assert beside == [
        f"| this paper | pamnet | pamer, last epoch |  | {five['accuracy']:.3f} / {five['f1_macro']:.3f} |  |"
    ]
    other = [line for line in lines if line.startswith(f"| {tmp_path / 'megc'} |")]
    assert len(other) == 1 and "megc2019" in other[0] and "none of the published columns" in other[0]
    assert megc["label_protocol"] == {
        "dataset": "casme2",
        "protocol": "megc2019",
        "classes": list(MEGC2019_SMIC.classes),
    }
    assert five["label_protocol"] == {"dataset": "casme2", "protocol": "5class", "classes": list(CASME2_5CLASS.classes)}
    report = run_report(megc)
    assert "Paper, Table 2" not in report and "Set beside no published column: casme2 protocol megc2019" in report
    assert "Paper, Table 2 row this paper: accuracy / F1 = 0.880 / 0.864." in run_report(five)


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
    run = _run(tmp_path / "r", "pamnet", "smic", 0.5, oracle=0.9)
    text = run_report(_numbers(run))
    assert f"| accuracy (pooled, eq. 11) | {_numbers(run)['accuracy']:.4f} |" in text
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


def test_a_run_named_twice_is_one_run(tmp_path: Path) -> None:
    """`pamer report runs/*/pamnet runs/casme2/*` listed the same run twice in a cell, as if two runs gave it."""
    d = _run(tmp_path / "d", "pamnet", "casme2", 0.7)
    numbers = _numbers(d)
    text = compare_runs([d, tmp_path / "." / "d", d])
    pair = f"{numbers['accuracy']:.3f} / {numbers['f1_macro']:.3f}"
    assert f"| this paper | pamnet | pamer, last epoch |  | {pair} |  |" in text.splitlines()
    assert compare_runs([d, d], "csv").count(f",{d},") == 3  # Tables 2, 3 and 4
