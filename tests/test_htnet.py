"""Reader `htnet` on a tree in exactly the HTNet/STSTNet MEGC2019 layout: read, cached, run through LOSO; every
missing or mismatched file reported by name."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from _htnet import APEX, FLOW, FOLDS, ROWS, apex_crop, build_htnet_tree, flow_image
from pamer.cli import app
from pamer.config import ConfigError
from pamer.data import DatasetError, read
from pamer.data.images import ImageIndex
from pamer.preprocess import load_cache, read_manifest
from pamer.preprocess.cache import CacheError
from pamer.preprocess.images import prepare_images

runner = CliRunner()
CLASSES = ("negative", "positive", "surprise")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree as published, but for one disagreeing label in the per-fold copy (fold sub01 trains on s01_ne_01,
    label 0 in the csv, from folder 2)."""
    root = build_htnet_tree(tmp_path_factory.mktemp("htnet") / "HTNet")
    wrong = root / FOLDS / "sub01" / "u_train" / "2" / "s01_s01_ne_01 .png"
    (root / FOLDS / "sub01" / "u_train" / "0" / "s01_s01_ne_01 .png").rename(wrong)
    return root


def _by_kind(index) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in index.problems:
        found.setdefault(p.kind, []).append(f"{p.clip} | {p.detail}")
    return found


def test_reads_the_published_layout(tree: Path) -> None:
    index = read("htnet", tree)
    assert isinstance(index, ImageIndex) and index.origins
    assert len(index) == len(ROWS) == 11
    assert index.subjects == ["006", "s01", "sub01", "sub02"]
    assert index.classes == CLASSES
    assert index.class_counts() == {"negative": 4, "positive": 4, "surprise": 3}
    by_clip = {s.clip: s for s in index.samples}
    # labels are the csv's codes 0, 1, 2; origins its dataset column
    assert [(by_clip[c].label, by_clip[c].dataset) for c in ("EP02_01f", "s01_ne_01", "006_3_5")] == [
        ("positive", "casme2"),
        ("negative", "smic"),
        ("surprise", "samm"),
    ]
    smic = by_clip["s01_ne_01"]
    assert smic.files["flow"] == tree / FLOW / "s01_s01_ne_01 .png"  # the space before .png
    assert smic.files["apex"] == tree / APEX / "s01_s1_ne_01.jpg"  # SMIC's imagename is not the flow name
    # the one difference is the per-fold label, named by its file; the csv's label is kept
    assert [(p.kind, p.clip) for p in index.problems] == [
        ("fold-label-mismatch", "'datasets/three_norm_u_v_os/sub01/u_train/2/s01_s01_ne_01 .png'")
    ]
    assert "the csv says 0 (negative)" in index.problems[0].detail
    assert by_clip["s01_ne_01"].label == "negative"


def _delete(*parts: str) -> Callable[[Path], None]:
    return lambda root: (root.joinpath(*parts)).unlink()


def _rename(source: tuple[str, ...], target: tuple[str, ...]) -> Callable[[Path], None]:
    def act(root: Path) -> None:
        (root.joinpath(*target)).parent.mkdir(parents=True, exist_ok=True)
        (root.joinpath(*source)).rename(root.joinpath(*target))

    return act


def _write(parts: tuple[str, ...], data: bytes) -> Callable[[Path], None]:
    def act(root: Path) -> None:
        root.joinpath(*parts).parent.mkdir(parents=True, exist_ok=True)
        root.joinpath(*parts).write_bytes(data)

    return act


def _edit_csv(old: str, new: str) -> Callable[[Path], None]:
    def act(root: Path) -> None:
        path = root / "combined_3_class2_for_optical_flow.csv"
        path.write_text(path.read_text().replace(old, new))

    return act


FLOW_DIR, APEX_DIR, FOLD_DIR = str(FLOW), str(APEX), str(FOLDS)


@pytest.mark.parametrize(
    ("damage", "kind", "named"),
    [
        (
            _delete(FLOW_DIR, "sub01_EP02_01f .png"),
            "missing-flow-image",
            "STSNet_whole_norm_u_v_os/sub01_EP02_01f .png'",
        ),
        (_delete(APEX_DIR, "s01_s1_po_01.jpg"), "missing-apex-image", "combined_datasets_whole/s01_s1_po_01.jpg'"),
        (
            _rename((FLOW_DIR, "006_006_1_2 .png"), (FLOW_DIR, "006_006_1_2.png")),
            "flow-name-variant",
            "'006_006_1_2.png' (no space)",
        ),
        (_write((FLOW_DIR, "sub09_EP01 .png"), b"x"), "unlisted-file", "STSNet_whole_norm_u_v_os/sub09_EP01 .png'"),
        (_write((FLOW_DIR, "._sub01_EP02_01f .png"), b"x"), None, None),  # macOS junk: never a file of the tree
        (_write((FOLD_DIR, "__MACOSX", "u_test", "0", "x .png"), b"x"), None, None),  # nor a fold
        (_edit_csv("smic,s01,s01_po_01,1", "smic,s01,s01_po_01,7"), "bad-label", "label '7'"),
        (_edit_csv("samm,006,006_5_9", "sam,006,006_5_9"), "unknown-dataset", "dataset 'sam'"),
        (
            _rename((FOLD_DIR, "s01", "u_test", "1", "s01_s01_po_01 .png"), (FOLD_DIR, "006", "u_test", "1", "x.png")),
            "fold-test-missing",
            "three_norm_u_v_os/s01/u_test/1/s01_s01_po_01 .png'",
        ),
        (
            _rename(
                (FOLD_DIR, "s01", "u_test", "1", "s01_s01_po_01 .png"),
                (FOLD_DIR, "006", "u_test", "1", "s01_s01_po_01 .png"),
            ),
            "fold-wrong-subject",
            "three_norm_u_v_os/006/u_test/1/s01_s01_po_01 .png'",
        ),
        (
            _write((FOLD_DIR, "sub02", "u_train", "1", "sub02_EP09_01 .png"), b"x"),
            "fold-test-clip-in-train",
            "three_norm_u_v_os/sub02/u_train/1/sub02_EP09_01 .png'",
        ),
        (
            _delete(FOLD_DIR, "006", "u_train", "0", "sub02_EP01_11f .png"),
            "fold-train-missing",
            "three_norm_u_v_os/006/u_train/0/sub02_EP01_11f .png'",
        ),
        (
            _write((FOLD_DIR, "sub02", "u_test", "0", "sub02_EP01_11f .png"), b"not the same image"),
            "fold-copy-differs",
            "three_norm_u_v_os/sub02/u_test/0/sub02_EP01_11f .png'",
        ),
        (
            _write((FOLD_DIR, "s01", "u_test", "2", "s01_s01_xx_09 .png"), b"x"),
            "fold-unknown-file",
            "s01_s01_xx_09 .png'",
        ),
        (_rename((FOLD_DIR, "sub02"), (FOLD_DIR, "sub99")), "fold-unknown-subject", "three_norm_u_v_os/sub99'"),
    ],
)
def test_each_missing_or_mismatched_file_is_named(
    tmp_path: Path, damage: Callable[[Path], None], kind: str | None, named: str | None
) -> None:
    root = build_htnet_tree(tmp_path / "HTNet")
    assert read("htnet", root).problems == []
    damage(root)
    found = _by_kind(read("htnet", root))
    if kind is None:
        assert found == {}
        return
    assert kind in found, found
    assert any(named in entry for entry in found[kind]), found[kind]


def test_a_clip_keeps_the_file_it_has_and_is_left_out_without_both(tmp_path: Path) -> None:
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    (root / FLOW / "sub01_EP02_01f .png").unlink()
    (root / FLOW / "sub02_EP09_01 .png").unlink()
    (root / APEX / "sub02_EP09_01.jpg").unlink()
    index = read("htnet", root)
    clips = {s.clip: s for s in index.samples}
    assert set(clips["EP02_01f"].files) == {"apex"}  # an apex cache still has it
    assert "EP09_01" not in clips
    found = _by_kind(index)
    assert any("casme2/sub02/EP09_01" in e and "left out" in e for e in found["no-files"])
    # the flow cache skips the clip without a flow image, naming it; the apex cache keeps it
    flow = prepare_images(index, tmp_path / "caches", "flow")
    rows = {r["clip"]: r for r in read_manifest(flow)}
    assert rows["EP02_01f"]["status"] == "skipped" and "sub01_EP02_01f .png" in rows["EP02_01f"]["problems"]
    assert len(load_cache(flow)) == len(ROWS) - 2
    assert len(load_cache(prepare_images(index, tmp_path / "caches", "apex"))) == len(ROWS) - 1
    with pytest.raises(ConfigError, match="size must be 8 to 1024 pixels, got 100000"):
        prepare_images(index, tmp_path / "caches", "apex", size=100000)


def test_wrong_roots_are_explained(tmp_path: Path) -> None:
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    with pytest.raises(DatasetError, match=r"datasets/combined_3_class2_for_optical_flow.csv; it is in .*HTNet: pass"):
        read("htnet", root / "datasets")
    with pytest.raises(DatasetError, match="absent"):
        read("htnet", tmp_path / "absent")
    (root / "combined_3_class2_for_optical_flow.csv").write_text("dataset,sub,label\ncasme2,sub01,1\n")
    with pytest.raises(DatasetError, match="no column filename_o, imagename"):
        read("htnet", root)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "combined_3_class2_for_optical_flow.csv").write_text(
        "dataset,sub,filename_o,label,apex,imagename,sub_filename\n"
    )
    with pytest.raises(DatasetError, match="neither .*STSNet_whole_norm_u_v_os nor"):
        read("htnet", empty)
    with pytest.raises(DatasetError, match="unknown protocol '5class' for htnet"):
        read("htnet", root, "5class")


def test_a_missing_folder_is_one_problem_and_its_cache_is_refused(tmp_path: Path) -> None:
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    shutil.rmtree(root / FLOW)
    index = read("htnet", root)
    assert len(index) == 11 and [(p.kind, p.clip) for p in index.problems] == [
        ("missing-folder", "'datasets/STSNet_whole_norm_u_v_os'")
    ]
    with pytest.raises(CacheError, match="none of the 11 clips of htnet has a readable flow image"):
        prepare_images(index, tmp_path / "caches", "flow")
    assert len(load_cache(prepare_images(index, tmp_path / "caches", "apex"))) == 11


def test_caches_hold_the_images_as_given(tree: Path, tmp_path: Path) -> None:
    index = read("htnet", tree)
    flow = load_cache(prepare_images(index, tmp_path, "flow", protocol="megc2019"))
    assert flow.onset is None and flow.apex is None
    assert flow.flow.shape == (11, 28, 28, 3) and flow.flow.dtype == np.float32
    assert flow.config["flow_kind"] == "normalised" and flow.config["face"] == "given"
    order = {(s, c): i for i, (s, c) in enumerate(zip(flow.subjects, flow.clips, strict=True))}
    for i, (origin, sub, clip, label, _) in enumerate(ROWS):
        k = order[(sub, clip)]
        np.testing.assert_array_equal(flow.flow[k], flow_image(label, i).astype(np.float32))  # R, G, B = u, v, strain
        assert (CLASSES[flow.labels[k]], flow.datasets[k]) == (CLASSES[label], origin)
    apex = load_cache(prepare_images(index, tmp_path, "apex", protocol="megc2019"))
    assert apex.onset is None and apex.flow is None and apex.apex.shape == (11, 224, 224, 3)
    k = apex.clips.index("s01_po_01")
    decoded = cv2.cvtColor(cv2.imread(str(tree / APEX / "s01_s1_po_01.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(apex.apex[k], decoded)
    band = apex_crop(1, 6) == 220  # the class's bright band, as written before JPEG compression
    assert apex.apex[k][band].mean() > 200 and apex.apex[k][~band].mean() < 130
    assert "flow_kind" not in apex.config
    manifest = read_manifest(prepare_images(index, tmp_path, "apex", protocol="megc2019"))
    assert {r["face"] for r in manifest} == {
        "given: the inputs are already cropped faces (or flow of them); no alignment"
    }
    # a smaller side resizes every image, said in the manifest
    small = prepare_images(index, tmp_path, "apex", size=56)
    assert load_cache(small).apex.shape == (11, 56, 56, 3)
    assert all(r["problems"].startswith("resized from 224x224") for r in read_manifest(small))
    with open(small / "problems.csv", newline="") as f:
        assert [r["kind"] for r in csv.DictReader(f)] == ["fold-label-mismatch"]


TINY = (
    "model: {name: pamnet_test}\nseed: 1\ntrain: {epochs: 1, batch_size: 4, input_size: 32, device: cpu, threads: 1}\n"
)


@pytest.mark.parametrize("representation", ["flow", "apex"])
def test_check_prepare_loso_report(tree: Path, tmp_path: Path, representation: str) -> None:
    checked = runner.invoke(app, ["datasets", "check", "htnet", "--root", str(tree), "--json"])
    assert checked.exit_code == 0, checked.output
    summary = json.loads(checked.stdout)
    assert (summary["samples"], summary["subjects"]) == (11, 4)
    assert [p["kind"] for p in summary["problems"]] == ["fold-label-mismatch"]

    prepared = runner.invoke(
        app, ["prepare", "htnet", "--root", str(tree), "--representation", representation, "--out", str(tmp_path)]
    )
    assert prepared.exit_code == 0, prepared.output
    assert "fold-label-mismatch" in prepared.stderr and "no alignment" in prepared.stderr
    cache = prepared.stdout.strip().splitlines()[-1]
    (tmp_path / "tiny.yaml").write_text(TINY)
    threads = torch.get_num_threads()
    try:
        run = runner.invoke(
            app,
            ["loso", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "run"), "-q"]
            + ["--set", f"data.cache={cache}", "--set", f"data.representation={representation}"],
        )
    finally:
        torch.set_num_threads(threads)
    assert run.exit_code == 0, run.output
    folds = pd.concat([pd.read_csv(p, dtype=str) for p in sorted((tmp_path / "run" / "folds").glob("*.csv"))])
    assert len(folds) == 11 and sorted(folds["subject"].unique()) == ["006", "s01", "sub01", "sub02"]
    origin = {(s, c): d for d, s, c, _, _ in ROWS}
    assert [origin[(s, c)] for s, c in zip(folds["subject"], folds["clip"], strict=True)] == list(folds["dataset"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["clips"] == 11 and metrics["dataset"] == "htnet"
    assert metrics["label_protocol"] == {"dataset": "htnet", "protocol": "megc2019", "classes": list(CLASSES)}
    assert {name: part["clips"] for name, part in metrics["by_dataset"].items()} == {"casme2": 5, "samm": 3, "smic": 3}
    report = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert report.exit_code == 0, report.output
    # 11 of the composite's 442 clips: listed among the other runs with the reason, never in the MEGC2019 Full column
    assert "## MEGC2019 composite" not in report.stdout
    other = [line for line in report.stdout.splitlines() if line.startswith(f"| {tmp_path / 'run'} |")]
    assert len(other) == 1 and "not the MEGC2019 composite in full: 11 clips, the column stands for its 442" in other[0]


# ---------------------------------------------------------------------------------------------------------------
# no silently wrong number: bit depth, odd images, label cells


def test_sixteen_bit_flow_images_keep_their_values_and_a_constant_one_is_named(tmp_path: Path) -> None:
    """16-bit PNGs holding 0..255 (as `np.uint16` arrays save) became an all-zero cache that `check` passed."""
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    for i, (_, sub, clip, label, _) in enumerate(ROWS):
        bgr = cv2.cvtColor(flow_image(label, i), cv2.COLOR_RGB2BGR).astype(np.uint16)
        assert cv2.imwrite(str(root / FLOW / f"{sub}_{clip} .png"), bgr)
    assert cv2.imread(str(root / FLOW / "sub01_EP02_01f .png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    blank = root / FLOW / "sub02_EP09_01 .png"
    assert cv2.imwrite(str(blank), np.full((28, 28, 3), 7, np.uint16))
    index = read("htnet", root)
    assert [(p.clip, p.kind) for p in index.problems] == [("casme2/sub02/EP09_01", "constant-image")]
    assert f"{blank}: every pixel is (7, 7, 7)" in index.problems[0].detail
    directory = prepare_images(index, tmp_path / "caches", "flow")
    cache = load_cache(directory)
    assert len(cache.labels) == 10 and "EP09_01" not in cache.clips  # the constant image is skipped, named
    skipped = [row for row in read_manifest(directory) if row["status"] == "skipped"]
    assert [row["clip"] for row in skipped] == ["EP09_01"] and "constant-image" in skipped[0]["problems"]
    for i, (_, _, clip, label, _) in enumerate(ROWS):
        if clip != "EP09_01":
            np.testing.assert_array_equal(cache.flow[cache.clips.index(clip)], flow_image(label, i))


def test_odd_images_are_named_in_check_and_not_cached_silently(tmp_path: Path) -> None:
    """A grey flow PNG became u = v = strain, a text file named .png passed `check`, and one 300 x 300 image among
    the 28 x 28 flows made every cached image 300 x 300."""
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    grey = root / FLOW / "sub01_EP02_01f .png"
    assert cv2.imwrite(str(grey), flow_image(1, 0)[..., 0])
    text = root / FLOW / "sub01_EP19_05f .png"
    text.write_text("this is not an image\n")
    big = root / FLOW / "sub01_EP11_01 .png"
    assert cv2.imwrite(str(big), cv2.resize(flow_image(2, 2), (300, 300)))
    checked = runner.invoke(app, ["datasets", "check", "htnet", "--root", str(root), "--json"])
    assert checked.exit_code == 0, checked.output
    problems = {(p["clip"], p["kind"]): p["detail"] for p in json.loads(checked.stdout)["problems"]}
    assert set(problems) == {
        ("casme2/sub01/EP02_01f", "grey-flow-image"),
        ("casme2/sub01/EP19_05f", "bad-image"),
        ("casme2/sub01/EP11_01", "odd-size"),
    }
    assert problems[("casme2/sub01/EP02_01f", "grey-flow-image")].startswith(f"{grey}: grey (R = G = B)")
    assert problems[("casme2/sub01/EP19_05f", "bad-image")].startswith(f"{text}: not a readable image")
    assert problems[("casme2/sub01/EP11_01", "odd-size")] == (
        f"{big}: 300x300, the other flow images are 28x28; prepare resizes it"
    )
    directory = prepare_images(read("htnet", root), tmp_path / "caches", "flow")
    cache = load_cache(directory)
    assert cache.flow.shape[1:] == (28, 28, 3) and len(cache.labels) == 9  # grey and text skipped, big resized
    rows = {row["clip"]: row for row in read_manifest(directory)}
    assert rows["EP02_01f"]["status"] == "skipped" and "grey-flow-image" in rows["EP02_01f"]["problems"]
    assert rows["EP19_05f"]["status"] == "skipped" and "not a readable image" in rows["EP19_05f"]["problems"]
    assert rows["EP11_01"]["status"] == "cached" and "resized from 300x300 to 28x28" in rows["EP11_01"]["problems"]
    apex = load_cache(prepare_images(read("htnet", root), tmp_path / "caches", "apex"))
    assert len(apex.labels) == 11  # the apex crops are fine: a grey crop would be too


@pytest.mark.parametrize(("cell", "label"), [("1.0", "positive"), ("2.00", "surprise"), (" 0 ", "negative")])
def test_labels_written_as_floats_are_codes_and_others_are_refused_by_row(tmp_path: Path, cell, label) -> None:
    """Labels saved as `1.0` gave "not one row found its flow image"."""
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    sheet = root / "combined_3_class2_for_optical_flow.csv"
    lines = sheet.read_text().splitlines()
    lines[1] = lines[1].replace(",1,,", f",{cell},,")  # sub01 EP02_01f, label 1
    lines[2] = lines[2].replace(",0,,", ",1.5,,")  # sub01 EP19_05f: no code
    sheet.write_text("\n".join(lines) + "\n")
    index = read("htnet", root)
    assert {s.clip: s.label for s in index.samples}["EP02_01f"] == label
    assert [(p.clip, p.kind) for p in index.problems if p.kind == "bad-label"] == [
        ("casme2/sub01/EP19_05f", "bad-label")
    ]
    assert "row 3: label '1.5' is not one of 0 = negative" in _by_kind(index)["bad-label"][0]


def test_an_apex_crop_named_by_two_rows_is_the_first_rows_only(tmp_path: Path) -> None:
    """Two rows naming one imagename (a copy-paste slip) read one crop as the apex of two clips, under two labels;
    only the crop no row named was reported."""
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    sheet = root / "combined_3_class2_for_optical_flow.csv"
    sheet.write_text(sheet.read_text().replace(",0,,sub01_EP19_05f.jpg,", ",0,,sub01_EP02_01f.jpg,"))
    index = read("htnet", root)
    clips = {s.clip: s for s in index.samples}
    assert set(clips["EP19_05f"].files) == {"flow"}  # its flow image is its own
    assert clips["EP02_01f"].files["apex"].name == "sub01_EP02_01f.jpg"
    assert _by_kind(index)["duplicate-file"] == [
        "casme2/sub01/EP19_05f | combined_3_class2_for_optical_flow.csv row 3: "
        "'datasets/combined_datasets_whole/sub01_EP02_01f.jpg' is already the apex crop of casme2/sub01/EP02_01f; "
        "not used for this clip"
    ]
    apex = load_cache(prepare_images(index, tmp_path / "caches", "apex"))
    assert "EP19_05f" not in apex.clips and len(apex.clips) == len(ROWS) - 1


def test_a_csv_saved_with_semicolons_is_read(tmp_path: Path) -> None:
    """The csv saved by Excel where the decimal mark is a comma: `no column dataset, sub, ...`."""
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    sheet = root / "combined_3_class2_for_optical_flow.csv"
    sheet.write_text(sheet.read_text().replace(",", ";"))
    index = read("htnet", root)
    assert len(index) == len(ROWS) and not index.problems
