"""LOSO engine on a tiny synthetic cache: fold separation, metrics, executors, resume, oracle, train, CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from typer.testing import CliRunner

from _engine import CLASSES, make_cache, tiny_config, write_cache
from pamer.config import SHIPPED
from pamer.engine import RunDirError, run_loso, train_final
from pamer.engine.fold import fold_plan
from pamer.preprocess.cache import Cache, CacheError


@pytest.fixture(scope="module")
def cache() -> Cache:
    return make_cache()


@pytest.fixture(scope="module")
def local_run(cache: Cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local")
    run_loso(tiny_config(), out, "local", cache=cache, quiet=True)
    return out


def _folds(run: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in sorted((run / "folds").glob("*.csv"))], ignore_index=True)


def test_no_subject_on_both_sides_of_a_fold() -> None:
    subjects = ["b", "a", "c", "a", "b", "c", "c"]
    plan = fold_plan(subjects)
    assert [s for s, _, _ in plan] == ["a", "b", "c"]
    tested = np.concatenate([test for _, _, test in plan])
    assert sorted(tested) == list(range(len(subjects)))  # every clip tested exactly once
    for subject, train, test in plan:
        assert {subjects[i] for i in test} == {subject}
        assert subject not in {subjects[i] for i in train}
        assert len(train) + len(test) == len(subjects)


def test_run_directory_and_metrics_match_sklearn(local_run: Path, cache: Cache) -> None:
    for name in ("config.yaml", "provenance.json", "metrics.json", "confusion.png", "report.md"):
        assert (local_run / name).is_file(), name
    table = _folds(local_run)
    expected_columns = ["clip", "subject", "true", "pred", *[f"prob_{c}" for c in CLASSES]]
    expected_columns += ["cache_fingerprint", "config_hash", "device", "dtype", "threads", "digest"]
    assert list(table.columns) == expected_columns
    assert set(table["device"]) == {"cpu"} and set(table["dtype"]) == {"float32"} and set(table["threads"]) == {1}
    assert sorted(table["clip"]) == sorted(cache.clips)
    truth = dict(zip(cache.clips, (CLASSES[i] for i in cache.labels), strict=True))
    assert (table["true"] == table["clip"].map(truth)).all()
    probs = table[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-9)
    assert (table["pred"] == np.array(CLASSES)[probs.argmax(1)]).all()
    m = json.loads((local_run / "metrics.json").read_text())
    assert "oracle" not in m
    assert abs(m["accuracy"] - accuracy_score(table["true"], table["pred"])) < 1e-12
    assert abs(m["f1_macro"] - f1_score(table["true"], table["pred"], average="macro")) < 1e-12
    assert m["uf1"] == m["f1_macro"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when a class is predicted but never true
        uar = balanced_accuracy_score(table["true"], table["pred"])
    assert abs(m["uar"] - uar) < 1e-12
    assert set(m["per_fold"]) == set(cache.subjects)
    prov = json.loads((local_run / "provenance.json").read_text())
    assert prov["seed"] == 3 and prov["torch"] == torch.__version__


def test_process_executor_gives_the_same_predictions(local_run: Path, cache: Cache, tmp_path: Path) -> None:
    cache_dir = write_cache(cache, tmp_path / "cache")  # workers load it from disk themselves
    run_loso(tiny_config(f"data.cache={cache_dir}"), tmp_path, "process", workers=2, quiet=True)
    for path in sorted((local_run / "folds").glob("*.csv")):
        assert (tmp_path / "folds" / path.name).read_text() == path.read_text(), path.name
    assert (tmp_path / "metrics.json").read_text() == (local_run / "metrics.json").read_text()


@pytest.mark.slow  # a local Ray cluster takes ~40 s to start on 2 cores
def test_ray_executor_gives_the_same_predictions(local_run: Path, cache: Cache, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    try:
        run_loso(tiny_config(), tmp_path, "ray", cache=cache, quiet=True)
    finally:
        ray.shutdown()
    for path in sorted((local_run / "folds").glob("*.csv")):
        assert (tmp_path / "folds" / path.name).read_text() == path.read_text(), path.name


def test_killed_run_resumes_to_identical_metrics(
    local_run: Path, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pamer.engine.executors as executors

    real = executors.run_fold
    calls = []

    def dies_after_first_fold(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # as if killed while the second fold trains
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(executors, "run_fold", dies_after_first_fold)
    with pytest.raises(KeyboardInterrupt):
        run_loso(tiny_config(), tmp_path, "local", cache=cache, quiet=True)
    assert len(list((tmp_path / "folds").glob("*.csv"))) == 1
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.setattr(executors, "run_fold", real)
    run_loso(tiny_config(), tmp_path, "local", cache=cache, quiet=True)
    assert (tmp_path / "metrics.json").read_text() == (local_run / "metrics.json").read_text()
    assert json.loads((tmp_path / "provenance.json").read_text())["folds_trained_last_invocation"] == 2


def test_other_config_or_cache_is_refused(local_run: Path, cache: Cache) -> None:
    with pytest.raises(RunDirError, match=r"train\.epochs: 2 in the directory, 3 now"):
        run_loso(tiny_config("train.epochs=3"), local_run, cache=cache, quiet=True)
    other = make_cache(seed=1)
    with pytest.raises(RunDirError, match="other contents"):
        run_loso(tiny_config(), local_run, cache=other, quiet=True)


def test_oracle_is_separate_and_never_replaces_the_headline(local_run: Path, cache: Cache, tmp_path: Path) -> None:
    m = run_loso(tiny_config("oracle=true", "train.epochs=2"), tmp_path, cache=cache, quiet=True)
    plain = json.loads((local_run / "metrics.json").read_text())
    for key in ("accuracy", "f1_macro", "uf1", "uar", "per_fold", "confusion"):
        assert m[key] == plain[key], key  # recording per-epoch predictions does not change the last epoch's
    oracle = m["oracle"]
    assert "test subject" in oracle["note"]
    assert oracle["accuracy"] >= m["accuracy"]
    assert set(oracle["best_epoch"]) == set(cache.subjects)
    table = _folds(tmp_path)
    assert (table["pred_e2"] == table["pred"]).all()  # the last epoch column is the headline prediction
    assert "ORACLE" in (tmp_path / "report.md").read_text()


def test_train_final_writes_a_loadable_checkpoint(cache: Cache, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from pamer.models import create_model
    from pamer.preprocess.network_input import model_input

    out = train_final(tiny_config(), tmp_path / "model", cache=cache)
    card = json.loads((out / "model.json").read_text())
    keys = {"model", "num_classes", "classes", "input_size", "mean", "std", "representation", "preprocess"}
    assert keys | {"pamer_version"} <= set(card)
    assert card["classes"] == list(CLASSES) and card["input_size"] == 32 and card["preprocess"] == cache.config
    model = create_model(card["model"], num_classes=card["num_classes"], **card["model_args"])
    model.load_state_dict(load_file(str(out / "model.safetensors")))
    model.eval()
    x = model_input(cache.onset[:4], cache.apex[:4], input_size=32, mean=card["mean"], std=card["std"])
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    assert probs.shape == (4, 3) and torch.isfinite(probs).all()
    # training is seeded: a second run gives the same weights
    again = train_final(tiny_config(), tmp_path / "again", cache=cache)
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_cli_loso_report_and_errors(cache: Cache, tmp_path: Path) -> None:
    from pamer.cli import app

    cache_dir = write_cache(cache, tmp_path / "caches" / "synthetic-abc")
    config = SHIPPED / "paper" / "smic.yaml"
    sets = ["model.name=pamnet_test", "train.epochs=1", "train.input_size=32", "train.batch_size=8"]
    sets += ["train.threads=1", f"data.cache={cache_dir.parent}"]  # the prepare --out folder of one cache
    args = ["loso", str(config), "--out", str(tmp_path / "run"), "--quiet"] + [a for s in sets for a in ("--set", s)]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "| A | pamnet_backbone | paper | 0.653 / 0.552 |" in result.output
    assert "pamnet_test" in result.output  # listed among the other runs
    result = runner.invoke(app, ["report", str(tmp_path / "run"), "--format", "csv"])
    assert result.output.startswith("table,row,network,source,dataset,accuracy,f1,run")

    bad = runner.invoke(app, ["loso", str(config), "--set", "train.epoch=1"])
    assert bad.exit_code != 0
    assert "unknown key 'train.epoch'; did you mean 'train.epochs'?" in bad.output
    assert "Traceback" not in bad.output
    missing = runner.invoke(app, ["loso", str(config), "--set", f"data.cache={tmp_path / 'nothing'}"])
    assert missing.exit_code != 0 and "nothing" in missing.output
    train_args = ["train", str(config), "--out", str(tmp_path / "m"), "--set", f"data.cache={cache_dir}"]
    bad_model = runner.invoke(app, [*train_args, "--set", "model.name=pamnet_tset"])
    assert bad_model.exit_code != 0 and "pamnet_tset" in bad_model.output
    assert runner.invoke(app, ["report", str(tmp_path)]).exit_code != 0


def test_flow_representation_and_class_weights(cache: Cache) -> None:
    from pamer.engine.fold import fit
    from pamer.engine.inputs import prepare_inputs

    config = tiny_config("data.representation=flow", "train.class_weights=true", "train.epochs=1")
    with pytest.raises(CacheError, match="has no flow field"):
        prepare_inputs(cache, config, torch.device("cpu"))
    rng = np.random.default_rng(0)
    flow_cache = Cache(**{**cache.__dict__, "flow": rng.normal(size=cache.onset.shape).astype(np.float32)})
    inputs = prepare_inputs(flow_cache, config, torch.device("cpu"))
    assert inputs.shape == (len(cache), 3, 32, 32)
    result = fit(config, inputs, cache.labels, 3, np.arange(12), np.arange(12, 18), seed=0)
    assert result.probs.shape == (6, 3) and np.isfinite(result.probs).all()


def test_training_without_augmentation_skips_the_warp(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every augmentation off (the peers' recipes) the warp would only copy: fit skips it, and trains to the
    same model as through identity warps (bilinear sampling at the pixel centres returns the pixels)."""
    import pamer.engine.fold as fold
    from pamer.engine.inputs import prepare_inputs

    config = tiny_config("augment.hflip=0", "augment.rotation=0", "augment.crop_scale=1", "train.epochs=2")
    inputs = prepare_inputs(cache, config, torch.device("cpu"))
    args = (config, inputs, cache.labels, 3, np.arange(12), np.arange(12, 18))
    real_warp, calls = fold.warp, []
    monkeypatch.setattr(fold, "warp", lambda *a, **k: calls.append(1) or real_warp(*a, **k))
    skipped = fold.fit(*args, seed=0)
    assert not calls
    monkeypatch.setattr(fold.AugmentConfig, "active", property(lambda self: True))
    warped = fold.fit(*args, seed=0)
    assert calls  # the same run through the (identity) warp
    np.testing.assert_allclose(skipped.probs, warped.probs, atol=1e-6)


@pytest.mark.gpu
def test_cuda_run_trains_with_bf16_and_channels_last(tmp_path: Path) -> None:
    """The CUDA path (bf16 autocast, channels_last) runs every fold and gives a probability row per clip."""
    cache = make_cache()
    metrics = run_loso(
        tiny_config("train.device=cuda", "train.precision=bfloat16"), tmp_path / "gpu", "local", cache=cache, quiet=True
    )
    probs = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "gpu" / "folds").glob("*.csv")))
    columns = [f"prob_{c}" for c in CLASSES]
    assert np.allclose(probs[columns].sum(axis=1), 1.0, atol=1e-6)
    assert sorted(probs["clip"]) == sorted(cache.clips)
    assert 0.0 <= metrics["accuracy"] <= 1.0
