"""Reports placed by label protocol, per-dataset metrics of composite runs, and `pamer compare`'s statistics.

Run directories are written by the engine's own functions (`_runs.write_run`) from chosen predictions, so every
number below is checked against a computation made here by hand.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from typer.testing import CliRunner

from _runs import config_for, tiny_cache, write_run
from pamer.data.labels import CASME2_5CLASS, MEGC2019_SMIC
from pamer.engine.loso import label_protocol
from pamer.report.bootstrap import draw_counts, metric_values, subject_confusions
from pamer.report.compare import compare_tables
from pamer.report.tables import ReportError, compare_runs, run_report

MEGC = MEGC2019_SMIC.classes
CASME = CASME2_5CLASS.classes


def _clips(
    subjects: int, per_subject: int, classes: int, correct: float, seed: int
) -> tuple[list, np.ndarray, np.ndarray]:
    """Subjects, true labels and predictions right with probability `correct`, else a random class."""
    rng = np.random.default_rng(seed)
    n = subjects * per_subject
    names = [f"s{i // per_subject:03d}" for i in range(n)]
    true = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < correct, true, rng.integers(0, classes, n))
    return names, true, pred


def _run(
    out: Path,
    classes: tuple[str, ...] = CASME,
    dataset: str | None = "casme2",
    protocol: str | None = "5class",
    subjects: int = 8,
    correct: float = 0.7,
    data_seed: int = 0,
    pred_seed: int | None = None,
    sets: tuple[str, ...] = (),
) -> dict:
    """A run on a cache of `subjects` x 6 clips; `pred_seed` varies only the predictions (another training seed)."""
    names, true, pred = _clips(subjects, 6, len(classes), correct, data_seed)
    if pred_seed is not None:
        _, _, pred = _clips(subjects, 6, len(classes), correct, 1000 + pred_seed)
        rng = np.random.default_rng(1000 + pred_seed)
        pred = np.where(rng.random(len(true)) < correct, true, pred)
    cache = tiny_cache(names, true, classes, dataset, protocol)
    return write_run(out, cache, pred, config_for(*sets))


def _direct_draws(subjects: list[str], true: np.ndarray, pred: np.ndarray, k: int, draws: int = 2000, seed: int = 0):
    """Bootstrap by hand: for each draw, concatenate the clips of the drawn subjects and score them."""
    order = sorted(set(subjects))
    where = {s: np.flatnonzero(np.asarray(subjects) == s) for s in order}
    picks = np.random.default_rng(seed).integers(0, len(order), size=(draws, len(order)))
    out = {"accuracy": [], "f1_macro": [], "uar": []}
    for row in picks:
        idx = np.concatenate([where[order[j]] for j in row])
        t, p = true[idx], pred[idx]
        tp = np.array([np.sum((t == c) & (p == c)) for c in range(k)], dtype=float)
        n_true = np.array([np.sum(t == c) for c in range(k)], dtype=float)
        n_pred = np.array([np.sum(p == c) for c in range(k)], dtype=float)
        present = n_true + n_pred > 0
        out["accuracy"].append(np.mean(t == p))
        out["f1_macro"].append(np.mean(2 * tp[present] / (n_true + n_pred)[present]))
        out["uar"].append(np.mean(tp[n_true > 0] / n_true[n_true > 0]))
    return {m: np.asarray(v) for m, v in out.items()}


def _csv(run_dirs: list[Path]) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(compare_tables(run_dirs, "csv")))


def _cell(frame: pd.DataFrame, method_prefix: str, column: str, metric: str) -> pd.Series:
    hit = frame[
        frame["method"].str.startswith(method_prefix) & (frame["column"] == column) & (frame["metric"] == metric)
    ]
    assert len(hit) == 1, hit
    return hit.iloc[0]


# ---------------------------------------------------------------------------------------------------------------
# metrics.json: label_protocol, by_dataset


def test_label_protocol_names_the_readers_default_only_for_its_classes() -> None:
    def cache(dataset: str | None, protocol: str | None, classes: tuple[str, ...]):
        return tiny_cache(["a"], [0], classes, dataset, protocol)

    assert label_protocol(cache("casme2", None, CASME)) == {
        "dataset": "casme2",
        "protocol": "5class",
        "classes": list(CASME),
    }
    assert label_protocol(cache("casme2", None, MEGC))["protocol"] is None  # not what the default reads
    assert label_protocol(cache("casme2", "megc2019", MEGC))["protocol"] == "megc2019"
    assert label_protocol(cache("composite", "megc2019", MEGC))["dataset"] == "composite"
    assert label_protocol(cache(None, None, ("a", "b"))) == {"dataset": None, "protocol": None, "classes": ["a", "b"]}


def _composite(out: Path, model: str = "ststnet", seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """A composite-shaped run: subjects of three parts, the cache recording each clip's dataset."""
    parts = {"casme2": 4, "samm": 4, "smic": 3}
    subjects, datasets = [], []
    for part, count in parts.items():
        for s in range(count):
            subjects += [f"{part}_{s}"] * 5
            datasets += [part] * 5
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, len(subjects))
    pred = np.where(rng.random(len(true)) < 0.6, true, rng.integers(0, 3, len(true)))
    cache = tiny_cache(subjects, true, MEGC, "composite", "megc2019", datasets)
    metrics = write_run(out, cache, pred, config_for(f"model.name={model}", f"seed={seed}"))
    return metrics, pd.DataFrame({"subject": subjects, "dataset": datasets, "true": true, "pred": pred})


def test_composite_run_scores_each_dataset_and_prints_the_megc2019_table(tmp_path: Path) -> None:
    metrics, clips = _composite(tmp_path / "c")
    assert set(metrics["by_dataset"]) == {"casme2", "samm", "smic"}
    for part, group in clips.groupby("dataset"):
        got = metrics["by_dataset"][part]
        assert got["clips"] == len(group)
        assert got["uf1"] == pytest.approx(f1_score(group["true"], group["pred"], average="macro"))
        assert got["f1_macro"] == got["uf1"]
        assert got["uar"] == pytest.approx(balanced_accuracy_score(group["true"], group["pred"]))
        assert got["accuracy"] == pytest.approx(accuracy_score(group["true"], group["pred"]))
    text = compare_runs([tmp_path / "c"])
    row = next(line for line in text.splitlines() if line.startswith("| STSTNet | ststnet | pamer, last epoch |"))
    by = metrics["by_dataset"]
    expected = [f"{metrics['uf1']:.4f} / {metrics['uar']:.4f}"]
    expected += [f"{by[p]['uf1']:.4f} / {by[p]['uar']:.4f}" for p in ("smic", "casme2", "samm")]
    assert row == "| STSTNet | ststnet | pamer, last epoch | " + " | ".join(expected) + f" | {tmp_path / 'c'} |"
    assert (
        "| STSTNet | ststnet | paper | 0.7353 / 0.7605 | 0.6801 / 0.7013 | 0.8382 / 0.8686 | 0.6588 / 0.6810 |  |"
        in text
    )
    assert "| Full | SMIC | CASME II | SAMM |" in text
    assert "Other runs" not in text  # a composite run is placed, not left over
    assert "| samm | 20 |" in run_report(metrics)


# ---------------------------------------------------------------------------------------------------------------
# pamer compare: bootstrap, seeds, paired differences, placement


def test_bootstrap_equals_a_direct_computation_and_contains_the_estimate(tmp_path: Path) -> None:
    metrics = _run(tmp_path / "r", sets=("model.name=pamnet",))
    names, true, pred = _clips(8, 6, 5, 0.7, 0)
    direct = _direct_draws(names, true, pred, 5)
    frame = _csv([tmp_path / "r"])
    for metric, column in (("accuracy", "accuracy"), ("f1_macro", "f1_macro")):
        cell = _cell(frame, "pamnet", "casme2", metric)
        assert cell["value"] == pytest.approx(metrics[column])
        low, high = np.percentile(direct[metric], [2.5, 97.5])
        assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high), abs=1e-12)
        assert cell["ci_low"] <= cell["value"] <= cell["ci_high"] and cell["ci_low"] < cell["ci_high"]
    assert _cell(frame, "pamnet", "casme2", "accuracy")["reported"] == 0.880
    text = compare_tables([tmp_path / "r"])
    cell = _cell(frame, "pamnet", "casme2", "accuracy")
    assert f"{cell['value']:.3f} [{cell['ci_low']:.2f}, {cell['ci_high']:.2f}] (reported 0.880)" in text
    assert "| MADFN (reported only) |" in text


def test_bootstrap_uar_and_speed() -> None:
    names, true, pred = _clips(68, 7, 3, 0.6, 5)
    order = sorted(set(names))
    confusions = subject_confusions(np.asarray(names), true, pred, order, 3)
    start = time.perf_counter()
    draws = metric_values(confusions, draw_counts(len(order)))
    assert time.perf_counter() - start < 1.0  # 2000 draws of 68 subjects, vectorised
    direct = _direct_draws(names, true, pred, 3)
    for metric in ("accuracy", "f1_macro", "uar"):
        np.testing.assert_allclose(draws[metric], direct[metric], rtol=0, atol=1e-12)


def test_interval_shrinks_with_more_subjects(tmp_path: Path) -> None:
    _run(tmp_path / "few", subjects=6)
    _run(tmp_path / "many", subjects=60)
    for metric in ("accuracy", "f1_macro"):
        few, many = (_cell(_csv([tmp_path / r]), "pamnet_test", "casme2", metric) for r in ("few", "many"))
        assert many["ci_high"] - many["ci_low"] < 0.6 * (few["ci_high"] - few["ci_low"])


def test_seeds_pool_as_mean_and_std_and_other_configs_are_other_rows(tmp_path: Path) -> None:
    runs = [_run(tmp_path / f"s{seed}", pred_seed=seed, sets=(f"seed={seed}",)) for seed in range(3)]
    _run(tmp_path / "lr", pred_seed=7, sets=("train.lr=0.01",))
    frame = _csv([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2", tmp_path / "lr"])
    pooled = _cell(frame, "pamnet_test [train.lr=0.0001]", "casme2", "accuracy")
    values = [m["accuracy"] for m in runs]
    assert pooled["value"] == pytest.approx(np.mean(values))
    assert pooled["std"] == pytest.approx(np.std(values, ddof=1))
    assert pooled["runs"] == 3 and pooled["seeds"] == "0;1;2"
    # the interval is the bootstrap of the mean over seeds: the same subject draws for the three runs
    names, true, _ = _clips(8, 6, 5, 0.7, 0)
    preds = [pd.concat(pd.read_csv(p) for p in sorted((tmp_path / f"s{s}" / "folds").glob("*.csv"))) for s in range(3)]
    per_seed = []
    for table in preds:
        order = {c: i for i, c in enumerate(CASME)}
        true_s = table["true"].map(order).to_numpy()
        per_seed.append(
            _direct_draws(list(table["subject"]), true_s, table["pred"].map(order).to_numpy(), 5)["accuracy"]
        )
    low, high = np.percentile(np.mean(per_seed, axis=0), [2.5, 97.5])
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx((low, high), abs=1e-12)
    single = _cell(frame, "pamnet_test [train.lr=0.01]", "casme2", "accuracy")
    assert single["runs"] == 1 and pd.isna(single["std"])
    text = compare_tables([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"])
    assert f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (3 seeds) [" in text


def test_paired_difference_to_the_first_row(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", sets=("model.name=pamnet",))
    b = _run(tmp_path / "b", pred_seed=3, correct=0.5, sets=("model.name=pamnet_backbone",))
    frame = _csv([tmp_path / "a", tmp_path / "b"])
    cell = _cell(frame, "pamnet_backbone", "casme2", "f1_macro")
    assert cell["diff"] == pytest.approx(b["f1_macro"] - a["f1_macro"])
    assert cell["diff_to"].startswith("pamnet (Table 2: this paper)")
    assert cell["reported"] == 0.598  # Table 3 row A, CASME II F1
    direct = {}
    for name in ("a", "b"):
        table = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / name / "folds").glob("*.csv")))
        order = {c: i for i, c in enumerate(CASME)}
        direct[name] = _direct_draws(
            list(table["subject"]), table["true"].map(order).to_numpy(), table["pred"].map(order).to_numpy(), 5
        )["f1_macro"]
    low, high = np.percentile(direct["b"] - direct["a"], [2.5, 97.5])
    assert (cell["diff_low"], cell["diff_high"]) == pytest.approx((low, high), abs=1e-12)
    assert pd.isna(_cell(frame, "pamnet (", "casme2", "f1_macro")["diff"])  # the first row is the reference
    text = compare_tables([tmp_path / "a", tmp_path / "b"])
    assert "### Paired difference to the first row, pamnet (Table 2: this paper)" in text
    assert f"{cell['diff']:+.3f} [{low:+.2f}, {high:+.2f}]" in text


def test_mismatched_protocol_lands_under_other_runs(tmp_path: Path) -> None:
    _run(tmp_path / "five", sets=("model.name=pamnet",))
    _run(tmp_path / "three", MEGC, "casme2", "megc2019", sets=("model.name=pamnet",))
    frame = _csv([tmp_path / "five", tmp_path / "three"])
    three = frame[frame["run_dirs"] == str(tmp_path / "three")]
    assert set(three["table"]) == {"other runs"}
    assert set(three["metric"]) == {"accuracy", "f1_macro", "uar"}
    assert three["note"].str.contains("none of the published columns").all()
    assert (three["ci_low"] <= three["value"]).all() and (three["value"] <= three["ci_high"]).all()
    text = compare_tables([tmp_path / "five", tmp_path / "three"])
    assert "## Other runs" in text and f"| {tmp_path / 'three'} | pamnet | casme2 megc2019 (negative" in text


def test_composite_columns_and_published_megc2019(tmp_path: Path) -> None:
    metrics, _ = _composite(tmp_path / "c")
    frame = _csv([tmp_path / "c"])
    full = _cell(frame, "ststnet", "full", "uf1")
    assert full["value"] == pytest.approx(metrics["uf1"]) and full["reported"] == 0.7353
    assert _cell(frame, "ststnet", "full", "uar")["reported"] == 0.7605
    samm = _cell(frame, "ststnet", "samm", "uar")
    assert samm["value"] == pytest.approx(metrics["by_dataset"]["samm"]["uar"]) and samm["reported"] == 0.6810
    assert samm["ci_low"] <= samm["value"] <= samm["ci_high"]
    assert "LBP-TOP (reported only)" in set(frame["method"])
    text = compare_tables([tmp_path / "c", tmp_path / "c" / ".." / "c"])  # one run named twice is one run
    assert "Other runs" not in text
    assert f"{full['value']:.3f} [{full['ci_low']:.2f}, {full['ci_high']:.2f}] (reported 0.7353)" in text
    assert "| method | Full UF1 | Full UAR | SMIC UF1 | SMIC UAR | CASME II UF1 | CASME II UAR | SAMM UF1 |" in text


def test_damaged_or_missing_run_files_are_named(tmp_path: Path) -> None:
    _run(tmp_path / "r")
    fold = sorted((tmp_path / "r" / "folds").glob("*.csv"))[0]
    table = pd.read_csv(fold, dtype=str, keep_default_na=False)
    table.loc[0, "pred"] = CASME[(CASME.index(table.loc[0, "pred"]) + 1) % 5]
    table.to_csv(fold, index=False)
    with pytest.raises(ReportError, match="changed after the run"):
        compare_tables([tmp_path / "r"])
    table.loc[0, "pred"] = "sadness"
    table.to_csv(fold, index=False)
    with pytest.raises(ReportError, match=f"{fold}: pred holds \\['sadness'\\]"):
        compare_tables([tmp_path / "r"])
    fold.unlink()
    with pytest.raises(ReportError, match="fold files changed after the run"):
        compare_tables([tmp_path / "r"])
    (tmp_path / "r" / "config.yaml").unlink()
    with pytest.raises(ReportError, match="config.yaml: not a readable run configuration"):
        compare_tables([tmp_path / "r"])
    with pytest.raises(ReportError, match="no metrics.json"):
        compare_tables([tmp_path / "nothing"])
    with pytest.raises(ReportError, match="no run directories"):
        compare_tables([])


def test_designed_peers_show_their_mark_beside_the_published_number(tmp_path: Path) -> None:
    from pamer.data.labels import SMIC_3CLASS

    _run(tmp_path / "lbp", sets=("model.name=lbp_attention",))
    _run(tmp_path / "madfn", sets=("model.name=madfn",))
    _run(tmp_path / "smic", SMIC_3CLASS.classes, "smic", "3class", sets=("model.name=madfn_image",))
    frame = _csv([tmp_path / "lbp", tmp_path / "madfn", tmp_path / "smic"])
    mark = "[design from the paper's description, no authors' code"
    lbp = _cell(frame, "lbp_attention (Table 2: LBP+attention) " + mark, "casme2", "accuracy")
    assert lbp["reported"] == 0.745
    assert _cell(frame, "madfn (Table 2: MADFN) " + mark, "casme2", "f1_macro")["reported"] == 0.801
    smic = _cell(frame, "madfn_image (", "smic", "accuracy")
    assert smic["reported"] == 0.817
    assert mark in smic["method"] and "very likely pretrained" in smic["method"]
    assert smic["method"].endswith("without the AU fusion (no AUs coded)]")
    text = compare_tables([tmp_path / "lbp"])
    assert f"| lbp_attention (Table 2: LBP+attention) {mark}] |" in text


def test_cli_compare_writes_markdown_or_csv(tmp_path: Path) -> None:
    from pamer.cli import app

    _run(tmp_path / "a", sets=("model.name=pamnet",))
    _run(tmp_path / "b", pred_seed=1, sets=("model.name=pamnet_backbone",))
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "Paired difference to the first row" in result.output and "(reported 0.880)" in result.output
    out = tmp_path / "table.csv"
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("table,method,model,column,metric,value,std,")
    bad = runner.invoke(app, ["compare", str(tmp_path / "missing")])
    assert bad.exit_code != 0 and "no metrics.json" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["compare", str(tmp_path / "a"), "--format", "xlsx"])
    assert bad.exit_code != 0 and "unknown format 'xlsx'" in bad.output
    bad = runner.invoke(app, ["compare", str(tmp_path / "a"), "--out", str(tmp_path / "no" / "dir" / "t.md")])
    assert bad.exit_code != 0 and "t.md" in bad.output and "Traceback" not in bad.output
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["label_protocol"]["protocol"] == "5class"


def test_loso_on_a_composite_cache_writes_by_dataset_and_its_report(tmp_path: Path) -> None:
    """The whole engine path: a cache recording each clip's dataset -> fold files -> metrics.json -> report.md."""
    from pamer.engine import run_loso

    rng = np.random.default_rng(0)
    parts = ["casme2", "samm", "smic"]
    subjects = [f"{p}_0" for p in parts for _ in range(8)]  # one subject per part: three folds
    datasets = [name.split("_")[0] for name in subjects]
    cache = tiny_cache(subjects, rng.integers(0, 3, len(subjects)), MEGC, "composite", "megc2019", datasets)
    cache.onset = rng.integers(0, 255, (len(subjects), 16, 16, 3), dtype=np.uint8)
    cache.apex = cache.onset.copy()
    config = config_for("train.input_size=16", "train.batch_size=8", "train.threads=1", "train.device=cpu")
    metrics = run_loso(config, tmp_path / "run", cache=cache, quiet=True)
    folds = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "run" / "folds").glob("*.csv")))
    assert set(folds["dataset"]) == set(parts)
    assert {k: v["clips"] for k, v in metrics["by_dataset"].items()} == dict.fromkeys(parts, 8)
    for part, group in folds.groupby("dataset"):
        assert metrics["by_dataset"][part]["uar"] == pytest.approx(
            balanced_accuracy_score(group["true"], group["pred"])
        )
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["label_protocol"]["protocol"] == "megc2019"
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| part | clips | UF1 | UAR | accuracy |" in report and "| smic | 8 |" in report
