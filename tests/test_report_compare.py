"""Reports placed by label protocol, per-dataset metrics of composite runs, and `pamer compare`'s statistics.

Run directories are written by the engine's own functions (`_runs.write_run`) from chosen predictions, so every
number below is checked against a computation made here by hand.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from typer.testing import CliRunner

from _engine import make_cache
from _runs import config_for, full_size_clips, write_run
from pamer.cli import app
from pamer.data.labels import CASME2_5CLASS, MEGC2019_SMIC
from pamer.engine.loso import label_protocol
from pamer.engine.metrics import confusion_matrix, scores
from pamer.engine.rundir import fold_text, values_hash
from pamer.report.bootstrap import draw_counts, interval, metric_values, subject_confusions
from pamer.report.compare import compare_tables
from pamer.report.tables import ReportError, compare_runs, run_report

MEGC = MEGC2019_SMIC.classes
CASME = CASME2_5CLASS.classes
CASME_CLIPS = 246  # CASME II under the 5-class protocol, in full: what the paper's column stands for
COMPOSITE = {"dataset": "composite", "protocol": "megc2019"}


def _clips(subjects: int, n: int, classes: int, correct: float, seed: int) -> tuple[list, np.ndarray, np.ndarray]:
    """`n` clips of `subjects` subjects: their subjects, true labels and predictions right with probability
    `correct`, else a random class."""
    rng = np.random.default_rng(seed)
    names = full_size_clips(subjects, n)
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
    clips: int = CASME_CLIPS,
) -> dict:
    """A run on a cache of `clips` clips of `subjects` subjects (by default CASME II 5-class in full: 246);
    `pred_seed` varies only the predictions (another training seed)."""
    names, true, pred = _clips(subjects, clips, len(classes), correct, data_seed)
    if pred_seed is not None:
        _, _, pred = _clips(subjects, clips, len(classes), correct, 1000 + pred_seed)
        rng = np.random.default_rng(1000 + pred_seed)
        pred = np.where(rng.random(len(true)) < correct, true, pred)
    cache = make_cache(names, labels=true, classes=classes, size=4, config={"dataset": dataset, "protocol": protocol})
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
        return make_cache(["a"], labels=[0], classes=classes, size=4, config={"dataset": dataset, "protocol": protocol})

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
    parts = {"casme2": (4, 145), "samm": (4, 133), "smic": (3, 164)}  # subjects, clips: the official list in full
    subjects, datasets = [], []
    for part, (count, clips) in parts.items():
        subjects += [f"{part}_{name}" for name in full_size_clips(count, clips)]
        datasets += [part] * clips
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, len(subjects))
    pred = np.where(rng.random(len(true)) < 0.6, true, rng.integers(0, 3, len(true)))
    cache = make_cache(subjects, labels=true, classes=MEGC, size=4, config=COMPOSITE, datasets=datasets)
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
    assert "| samm | 133 |" in run_report(metrics)


# ---------------------------------------------------------------------------------------------------------------
# pamer compare: bootstrap, seeds, paired differences, placement


def test_per_dataset_numbers_that_the_fold_files_do_not_give_are_refused(tmp_path: Path) -> None:
    """`pamer report` prints a composite run's per-part UF1 / UAR from metrics.json: an edited SAMM UF1 of 0.99 was
    printed beside the published 0.6588 although the fold files give another number."""
    metrics, _ = _composite(tmp_path / "c")
    metrics["by_dataset"]["samm"]["uf1"] = 0.99
    (tmp_path / "c" / "metrics.json").write_text(json.dumps(metrics))
    for read in (compare_runs, compare_tables):
        with pytest.raises(ReportError, match=r"the fold files give by_dataset.samm.uf1 0\.\d{6}, metrics.json 0\.99"):
            read([tmp_path / "c"])


def _outward(low: float, high: float, sign: str = "") -> str:
    """An interval as compare prints it: two decimals, rounded away from the value."""
    return f"[{math.floor(low * 100 + 1e-9) / 100:{sign}.2f}, {math.ceil(high * 100 - 1e-9) / 100:{sign}.2f}]"


def _printed_intervals_hold_their_values(text: str) -> None:
    """Every `value [low, high]` compare prints holds its value as printed (0.805 beside [0.74, 0.80] did not)."""
    found = re.findall(r"([+-]?\d\.\d{3})(?: ± \S+ \(\d+ seeds\))? \[([+-]?\d\.\d{2}), ([+-]?\d\.\d{2})\]", text)
    assert found
    for value, low, high in found:
        assert float(low) <= float(value) <= float(high), (value, low, high)


def test_bootstrap_equals_a_direct_computation_and_contains_the_estimate(tmp_path: Path) -> None:
    metrics = _run(tmp_path / "r", sets=("model.name=pamnet",))
    names, true, pred = _clips(8, CASME_CLIPS, 5, 0.7, 0)
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
    assert f"{cell['value']:.3f} {_outward(cell['ci_low'], cell['ci_high'])} (reported 0.880)" in text
    _printed_intervals_hold_their_values(text)
    assert "| MADFN (reported only) |" in text


def test_vectorised_bootstrap_equals_a_plain_loop() -> None:
    """2000 draws of 68 subjects from per-subject confusion matrices equal, draw by draw, scoring the clips of the
    drawn subjects one draw at a time; pooling every subject once gives the run's own numbers."""
    names, true, pred = _clips(68, 476, 3, 0.6, 5)
    order = sorted(set(names))
    confusions = subject_confusions(np.asarray(names), true, pred, order, 3)
    counts = draw_counts(len(order))
    assert counts.shape == (2000, 68) and (counts.sum(axis=1) == 68).all()
    draws = metric_values(confusions, counts)
    direct = _direct_draws(names, true, pred, 3)
    for metric in ("accuracy", "f1_macro", "uar"):
        assert draws[metric].shape == (2000,) and np.ptp(draws[metric]) > 0
        np.testing.assert_allclose(draws[metric], direct[metric], rtol=0, atol=1e-12)
    whole = metric_values(confusions)
    assert whole["accuracy"] == pytest.approx(accuracy_score(true, pred), abs=1e-12)
    assert whole["f1_macro"] == pytest.approx(f1_score(true, pred, average="macro"), abs=1e-12)
    assert whole["uar"] == pytest.approx(balanced_accuracy_score(true, pred), abs=1e-12)


def test_interval_shrinks_with_more_subjects(tmp_path: Path) -> None:
    _run(tmp_path / "few", subjects=6, clips=36)  # subsets: listed under other runs, with their intervals
    _run(tmp_path / "many", subjects=60, clips=360)
    for metric in ("accuracy", "f1_macro"):
        frames = {r: _csv([tmp_path / r]) for r in ("few", "many")}
        few, many = (frames[r][frames[r]["metric"] == metric].iloc[0] for r in ("few", "many"))
        assert few["table"] == many["table"] == "other runs"
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
    assert f"{cell['diff']:+.3f} {_outward(low, high, '+')}" in text
    _printed_intervals_hold_their_values(text)


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
    assert f"{full['value']:.3f} {_outward(full['ci_low'], full['ci_high'])} (reported 0.7353)" in text
    _printed_intervals_hold_their_values(text)
    assert "| method | Full UF1 | Full UAR | SMIC UF1 | SMIC UAR | CASME II UF1 | CASME II UAR | SAMM UF1 |" in text


def test_damaged_or_missing_run_files_are_named(tmp_path: Path) -> None:
    _run(tmp_path / "r")
    fold = sorted((tmp_path / "r" / "folds").glob("*.csv"))[0]
    table = pd.read_csv(fold, dtype=str, keep_default_na=False).drop(columns="digest")
    table.loc[0, "pred"] = CASME[(CASME.index(table.loc[0, "pred"]) + 1) % 5]
    table.to_csv(fold, index=False)  # a hand edit that drops the digest
    with pytest.raises(ReportError, match=f"{fold} has no digest column"):
        compare_tables([tmp_path / "r"])
    fold.write_text(fold_text(table).replace(",0.0,", ",0.00,", 1))  # stamped, then one cell edited
    with pytest.raises(ReportError, match=f"{fold}: its content does not match the digest"):
        compare_tables([tmp_path / "r"])
    fold.write_text(fold_text(table))  # restamped, but pred is not the most probable class
    with pytest.raises(ReportError, match="pred column is not the most probable class"):
        compare_tables([tmp_path / "r"])
    table.loc[0, "pred"] = "sadness"
    fold.write_text(fold_text(table))
    with pytest.raises(ReportError, match=f"{fold}: column pred holds 'sadness'"):
        compare_tables([tmp_path / "r"])
    fold.unlink()
    with pytest.raises(ReportError, match=f"no fold file {fold}"):
        compare_tables([tmp_path / "r"])
    (tmp_path / "r" / "config.yaml").unlink()
    with pytest.raises(ReportError, match="config.yaml: not a readable run configuration"):
        compare_tables([tmp_path / "r"])
    with pytest.raises(ReportError, match="nothing does not exist"):
        compare_tables([tmp_path / "nothing"])
    with pytest.raises(ReportError, match="no run directories"):
        compare_tables([])


def test_a_config_or_model_edited_after_the_run_is_refused(one_run: Path, tmp_path: Path) -> None:
    """A copy of a run whose config.yaml says seed 1 was pooled with the original as a second seed (`± 0.000 (2
    seeds)`); a metrics.json naming another network set the run beside that network's published number."""
    copy = shutil.copytree(one_run, tmp_path / "copy")
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("seed: 0", "seed: 1"))
    with pytest.raises(ReportError, match=f"{config}: not the configuration the run's fold files were computed with"):
        compare_tables([one_run, copy])
    # a run of an older pamer, whose config.yaml has no `oracle` yet (its folds hashed without it), still reads
    values = yaml.safe_load((one_run / "config.yaml").read_text())
    del values["oracle"]
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    old, new = json.loads((copy / "provenance.json").read_text())["config_hash"], values_hash(values)
    for fold in (copy / "folds").glob("*.csv"):
        table = pd.read_csv(fold, dtype=str, keep_default_na=False).drop(columns="digest")
        fold.write_text(fold_text(table.assign(config_hash=table["config_hash"].replace(old, new))))
    (copy / "provenance.json").write_text(json.dumps({"config_hash": new}))
    assert compare_runs([copy]) == compare_runs([one_run]).replace(str(one_run), str(copy))
    shutil.copyfile(one_run / "config.yaml", config)
    shutil.copytree(one_run / "folds", copy / "folds", dirs_exist_ok=True)
    shutil.copyfile(one_run / "provenance.json", copy / "provenance.json")
    metrics = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({**metrics, "model": "pamnet_msc"}))
    result = CliRunner().invoke(app, ["compare", str(copy)])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {copy / 'metrics.json'}: model is 'pamnet_msc', the run's config.yaml trained 'pamnet': rerun "
        "`pamer loso` into this directory to rewrite metrics.json"
    )


def test_designed_peers_show_their_mark_beside_the_published_number(tmp_path: Path) -> None:
    from pamer.data.labels import SMIC_3CLASS

    _run(tmp_path / "lbp", sets=("model.name=lbp_attention",))
    _run(tmp_path / "madfn", sets=("model.name=madfn",))
    _run(
        tmp_path / "smic", SMIC_3CLASS.classes, "smic", "3class", sets=("model.name=madfn_image",), clips=164
    )  # SMIC-HS in full
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
    assert bad.exit_code != 0 and "missing does not exist" in bad.output and "Traceback" not in bad.output
    # the folder that holds the runs, given for the runs: they are named, with how to pass them
    bad = runner.invoke(app, ["compare", str(tmp_path)])
    assert bad.exit_code != 0 and "no metrics.json" in bad.output
    assert "it holds run directories (a" in " ".join(bad.output.split()) and f"{tmp_path}/*" in bad.output
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
    labels = rng.integers(0, 3, len(subjects))
    cache = make_cache(subjects, labels=labels, classes=MEGC, size=16, config=COMPOSITE, datasets=datasets)
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


# ---------------------------------------------------------------------------------------------------------------
# no silently wrong number: placement by the dataset in full, checked metrics.json, the fold plan's files only


def test_a_subset_or_the_synthetic_set_never_fills_a_published_column(tmp_path: Path) -> None:
    """The demo's synthetic run (read by the CASME II reader, 10 clips) once sat beside "reported 0.880", and 11
    of the composite's 442 clips in the MEGC2019 Full column."""
    _run(tmp_path / "demo", subjects=5, clips=10, sets=("model.name=pamnet", "data.dataset=synthetic"))
    _run(tmp_path / "big-demo", sets=("model.name=pamnet", "data.dataset=synthetic"))  # even with 246 clips
    _run(tmp_path / "half", subjects=4, clips=123, sets=("model.name=pamnet",))
    subjects = [f"{p}_{i}" for p in ("casme2", "samm", "smic") for i in range(2) for _ in range(2)][:11]
    rng = np.random.default_rng(0)
    htnet = {"dataset": "htnet", "protocol": "megc2019"}
    labels = rng.integers(0, 3, 11)
    cache = make_cache(subjects, labels=labels, classes=MEGC, size=4, config=htnet, datasets=[s[:-2] for s in subjects])
    write_run(tmp_path / "htnet", cache, rng.integers(0, 3, 11), config_for("model.name=ststnet"))
    runs = [tmp_path / name for name in ("demo", "big-demo", "half", "htnet")]
    frame = _csv(runs)
    assert set(frame["table"]) == {"other runs"} and frame["reported"].isna().all()
    notes = frame.drop_duplicates("run_dirs").set_index("run_dirs")["note"]
    assert notes[str(tmp_path / "demo")] == notes[str(tmp_path / "big-demo")]
    assert "synthetic demo set" in notes[str(tmp_path / "demo")]
    assert "not CASME II in full: 123 clips, the column stands for its 246" in notes[str(tmp_path / "half")]
    assert (
        "not the MEGC2019 composite in full: 11 clips, the column stands for its 442" in notes[str(tmp_path / "htnet")]
    )
    report = compare_runs(runs)
    assert "## MEGC2019" not in report and "| this paper | pamnet | pamer, last epoch |" not in report
    for name in ("demo", "half", "htnet"):
        assert sum(line.startswith(f"| {tmp_path / name} |") for line in report.splitlines()) == 1


def _bad_metrics() -> list:
    good = {"dataset": "casme2", "model": "pamnet", "accuracy": 0.5, "f1_macro": 0.5, "uar": 0.5}
    return [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not JSON text (binary bytes, not UTF-8)"),
        (b"3", "holds int 3, expected a JSON object"),
        (b'"all fine"', "holds str 'all fine', expected a JSON object"),
        ({**good, "accuracy": "high"}, "accuracy is 'high', expected a number within 0..1"),
        ({"classes": None}, "classes is None, expected a list of two or more distinct class names"),
        ({"per_fold": {"s000": 7}}, "per_fold.s000. is 7, expected an object of accuracy, f1_macro"),
        ({"uar": 1.5}, "uar is 1.5, expected a number within 0..1"),
    ]


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "r"
    _run(out, sets=("model.name=pamnet",))
    return out


@pytest.mark.parametrize("command", ["compare", "report"])
@pytest.mark.parametrize(("content", "message"), _bad_metrics(), ids=lambda v: None)
def test_cli_says_one_line_for_a_bad_metrics_json(one_run: Path, tmp_path: Path, command, content, message) -> None:

    run = shutil.copytree(one_run, tmp_path / "run")
    if isinstance(content, dict):
        metrics = json.loads((run / "metrics.json").read_text())
        content = json.dumps({**metrics, **content}).encode()
    (run / "metrics.json").write_bytes(content)
    result = CliRunner().invoke(app, [command, str(run)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.strip() == f"error: {run / 'metrics.json'}: {message}"


@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_file_given_for_a_run_names_its_folder(one_run: Path, command: str) -> None:
    """`pamer compare runs/*/metrics.json` said `runs/r/metrics.json: no metrics.json`."""
    result = CliRunner().invoke(app, [command, str(one_run / "metrics.json")])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {one_run / 'metrics.json'} is a file, expected the run directory of a finished `pamer loso`: "
        f"pass its folder {one_run}"
    )


def test_other_files_in_folds_are_ignored_and_named(one_run: Path, tmp_path: Path) -> None:
    """A stray copy `folds/s000-old.csv` made `compare` refuse forever; only the fold plan's files are read."""

    run = shutil.copytree(one_run, tmp_path / "run")
    clean = compare_tables([run])
    stray = run / "folds" / "s000-old.csv"
    shutil.copyfile(run / "folds" / "s000.csv", stray)
    (run / "folds" / "notes.txt").write_text("my notes\n")
    assert compare_tables([run]) == clean
    notes: list[str] = []
    assert compare_tables([run], notes=notes) == clean
    assert notes == [f"{p}: not a fold file of the run's plan; ignored" for p in (run / "folds" / "notes.txt", stray)]
    for command in ("compare", "report"):
        result = CliRunner().invoke(app, [command, str(run)])
        assert result.exit_code == 0, result.output
        assert f"note: {stray}: not a fold file of the run's plan; ignored" in result.stderr


def test_bootstrap_uses_the_engines_metrics_and_gives_the_numbers_it_gave() -> None:
    """One metric definition (`engine.metrics.scores_of`): the bootstrap's numbers on a fixed case are those the
    bootstrap's own copy of the definition gave (recorded from main at ac08562), and a draw of every subject once
    is the engine's `scores` of the pooled matrix."""
    rng = np.random.default_rng(11)
    n = 90
    subjects = np.array([f"s{i % 9}" for i in range(n)])
    true = rng.integers(0, 4, n)
    pred = np.where(rng.random(n) < 0.6, true, rng.integers(0, 4, n))
    pred[true == 3] = 0  # a class never predicted: its F1 is 0, and it is still in the mean
    order = sorted(set(subjects))
    confusions = subject_confusions(subjects, true, pred, order, 4)
    point = metric_values(confusions)
    draws = metric_values(confusions, draw_counts(len(order), 2000, 0))
    recorded = {
        "accuracy": (0.5333333333333333, (0.4552777777777783, 0.6111111111111112), 1067.6999999999998),
        "f1_macro": (0.5081792318634424, (0.4429759402595353, 0.5501445506653839), 1011.3585595525897),
        "uar": (0.5772597254004577, (0.5012623106060606, 0.6354173484910397), 1151.9917333650646),
    }
    pooled = scores(confusion_matrix(true, pred, 4))
    for metric, (value, (low, high), total) in recorded.items():
        assert float(point[metric]) == pytest.approx(value, rel=1e-14) == pooled[metric]
        assert interval(draws[metric]) == pytest.approx((low, high), rel=1e-14)
        assert float(draws[metric].sum()) == pytest.approx(total, rel=1e-12)
