"""Composite bookkeeping: each cached clip keeps its dataset of origin, from `pamer prepare composite` through the
cache to the fold files of `pamer loso`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from typer.testing import CliRunner

from _trees import build_tree
from pamer.cli import app
from pamer.preprocess import load_cache

runner = CliRunner()
# three MEGC2019 clips of each part, one per class
CLIPS = (
    "sub01/EP02_01f",
    "sub01/EP19_05f",
    "sub02/EP11_01",
    "006/006_1_2",
    "006/006_3_5",
    "007/007_6_1",
    "s1/s1_ne_01",
    "s1/s1_po_01",
    "s2/s2_sur_01",
)


def test_composite_origins_reach_the_fold_files(annotations_dir: Path, tmp_path: Path) -> None:
    root = build_tree("composite", annotations_dir, tmp_path / "composite", clips=CLIPS)
    roots = [arg for part in ("casme2", "samm", "smic") for arg in ("--root", f"{part}={root / part}")]
    prepared = runner.invoke(app, ["prepare", "composite", *roots, "--out", str(tmp_path), "--size", "32", "--quiet"])
    assert prepared.exit_code == 0, prepared.output
    cache_dir = prepared.stdout.strip().splitlines()[-1]
    cache = load_cache(cache_dir)
    assert len(cache) == len(CLIPS)
    # subjects are named as their parts name them: sub01 (CASME II), 006 (SAMM), s1 (SMIC)
    origin = {"sub01": "casme2", "sub02": "casme2", "006": "samm", "007": "samm", "s1": "smic", "s2": "smic"}
    assert cache.datasets == [origin[s] for s in cache.subjects]

    (tmp_path / "tiny.yaml").write_text(
        "model: {name: pamnet_test}\ntrain: {epochs: 1, batch_size: 4, input_size: 16, device: cpu, threads: 1}\n"
    )
    threads = torch.get_num_threads()
    try:
        run = runner.invoke(
            app,
            ["loso", str(tmp_path / "tiny.yaml"), "--set", f"data.cache={cache_dir}", "--out", str(tmp_path / "run")],
        )
    finally:
        torch.set_num_threads(threads)
    assert run.exit_code == 0, run.output
    folds = pd.concat([pd.read_csv(p, dtype=str) for p in sorted((tmp_path / "run" / "folds").glob("*.csv"))])
    expected = dict(zip(zip(cache.subjects, cache.clips, strict=True), cache.datasets, strict=True))
    assert sorted(set(folds["dataset"])) == ["casme2", "samm", "smic"]
    assert [expected[(s, c)] for s, c in zip(folds["subject"], folds["clip"], strict=True)] == list(folds["dataset"])


def test_a_single_dataset_cache_names_no_origins(annotations_dir: Path, tmp_path: Path) -> None:
    root = build_tree("casme2", annotations_dir, tmp_path / "casme2", clips=CLIPS[:3])
    prepared = runner.invoke(app, ["prepare", "casme2", "--root", str(root), "--out", str(tmp_path), "--quiet"])
    assert prepared.exit_code == 0, prepared.output
    assert load_cache(prepared.stdout.strip().splitlines()[-1]).datasets is None
