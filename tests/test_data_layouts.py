"""Release layouts: a root pointing at an unpacked release reads as the flat tree does, for every reader.

Trees are built from the REAL sheets (`_trees.build_tree`); the release trees carry the junk that copies made on
macOS and Windows carry (`._img46.jpg`, `.DS_Store`, `Thumbs.db`, `__MACOSX/`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _trees import RELEASE_FOLDERS, build_tree
from pamer.cli import app
from pamer.data import DatasetError, DatasetIndex, read
from pamer.data._layout import TREE_ORDER

runner = CliRunner()
PARTS = ("casme2", "samm", "smic")
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
FEW = ("sub01/EP02_01f", "sub01/EP03_02", "sub02/EP01_11f", "sub05/EP09_05f", "sub26/EP18_50", "sub17/EP13_06")


@pytest.fixture(scope="module")
def flat(annotations_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Today's trees: the frames beside the sheet (casme2/, samm/, smic/HS/, smic-e/HS/)."""
    root = tmp_path_factory.mktemp("flat")
    build_tree("composite", annotations_dir, root)
    build_tree("smic-e", annotations_dir, root / "smic-e")
    return root


@pytest.fixture(scope="module")
def release(annotations_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same clips as the datasets' owners ship them, with junk: casme2/CASME2_RAW_selected/sub01/...,
    samm/SAMM/006/..., smic/HS/s1/micro/..., smic-e/SMIC_HS_E/s01/s1_ne_01/..."""
    root = tmp_path_factory.mktemp("release")
    build_tree("composite", annotations_dir, root, layout="release", junk=True)
    build_tree("smic-e", annotations_dir, root / "smic-e", layout="release", junk=True)
    return root


def facts(index: DatasetIndex) -> list[tuple]:
    """What a reader found for each clip, with frame file names (their folders differ between layouts)."""
    return [
        (s.subject, s.clip, s.label, s.onset, s.apex, s.offset, s.apex_source, s.flags, [p.name for p in s.frames])
        for s in index.samples
    ]


@pytest.mark.parametrize(
    ("name", "protocol", "samples", "subjects"),
    [
        ("casme2", "all", 255, 26),
        ("casme2", None, 246, 26),
        ("samm", "all", 159, 29),
        ("samm", None, 136, 27),
        ("smic-e", None, 157, 16),
        ("smic", None, 164, 16),
    ],
)
def test_release_reads_as_the_flat_tree(
    flat: Path, release: Path, name: str, protocol: str | None, samples: int, subjects: int
) -> None:
    expected, got = read(name, flat / name, protocol), read(name, release / name, protocol)
    assert (len(got), len(got.subjects)) == (samples, subjects)
    assert facts(got) == facts(expected)
    assert [(p.clip, p.kind) for p in got.problems] == [(p.clip, p.kind) for p in expected.problems]
    assert got.frame_trees == {name: release / name / RELEASE_FOLDERS[name]}
    assert not got.notes  # __MACOSX/ mirrors every clip folder, and is never taken for a frame tree
    assert all("__MACOSX" not in str(p) and not p.name.startswith(".") for s in got.samples for p in s.frames)


def test_smic_e_release_pads_the_subject_folder_not_the_clip(release: Path) -> None:
    """The sheet's Subject 1 and Filename s1_ne_01 are the folder SMIC_HS_E/s01/s1_ne_01."""
    clips = {s.clip: s for s in read("smic-e", release / "smic-e").samples}
    first, twentieth = clips["s1_ne_01"], clips["s20_ne_01"]
    assert (first.subject, first.frames[0].parent.parent.name) == ("s1", "s01")
    assert (twentieth.subject, twentieth.onset_path.name) == ("s20", "image17581039.jpg")


def test_composite_of_releases(flat: Path, release: Path) -> None:
    expected = read("composite", {p: flat / p for p in PARTS})
    got = read("composite", {p: release / p for p in PARTS})
    assert (len(got), len(got.subjects), got.class_counts()) == (442, 68, expected.class_counts())
    assert facts(got) == facts(expected)
    assert got.frame_trees == {p: release / p / RELEASE_FOLDERS[p] for p in PARTS}
    assert read("composite", release).frame_trees == got.frame_trees  # one folder holding casme2/, samm/, smic/


@pytest.mark.parametrize(
    ("frames_dir", "cropped", "first"),
    [
        ("CASME2_RAW", False, "img46.jpg"),
        ("Cropped", True, "reg_img46.jpg"),
        ("", False, "img46.jpg"),  # the frames in ROOT itself, beside the sheet
        ("CASME2_RAW_selected/CASME2_RAW_selected", False, "img46.jpg"),  # unpacked into a folder of its name
    ],
)
def test_casme2_releases(annotations_dir: Path, tmp_path: Path, frames_dir: str, cropped: bool, first: str) -> None:
    root = build_tree("casme2", annotations_dir, tmp_path, clips=FEW, frames_dir=frames_dir, cropped=cropped)
    index = read("casme2", root, "all")
    assert sorted(f"{s.subject}/{s.clip}" for s in index.samples) == sorted(FEW)
    assert index.frame_trees == {"casme2": tmp_path / frames_dir} and not index.notes
    clip = next(s for s in index.samples if s.clip == "EP02_01f")
    assert clip.onset_path == tmp_path / frames_dir / "sub01" / "EP02_01f" / first


@pytest.fixture
def raw_and_cropped(annotations_dir: Path, tmp_path: Path) -> Path:
    """CASME2_RAW_selected/ and Cropped/ side by side beside the sheet, the same clips in both."""
    root = build_tree("casme2", annotations_dir, tmp_path / "CASME2", clips=FEW, layout="release")
    return build_tree("casme2", annotations_dir, root, clips=FEW, layout="release", cropped=True)


def test_raw_and_cropped_side_by_side_takes_raw_and_says_so(raw_and_cropped: Path) -> None:
    root = raw_and_cropped
    index = read("casme2", root)
    assert index.frame_trees == {"casme2": root / "CASME2_RAW_selected"}
    assert index.samples[0].onset_path.name.startswith("img")
    [note] = index.notes
    assert f"taken from CASME2_RAW_selected (6 clips) in {root}, because {TREE_ORDER[2]}" in note
    assert "also holding clips: Cropped (6 clips)" in note and "--frames" in note


def test_frames_option_overrides(raw_and_cropped: Path) -> None:
    root = raw_and_cropped
    index = read("casme2", root, frames=root / "Cropped")
    assert index.frame_trees == {"casme2": root / "Cropped"} and not index.notes
    assert all(p.name.startswith("reg_img") for s in index.samples for p in s.frames)
    with pytest.raises(DatasetError, match=r"none of the 255 clip folders of CASME2-coding-20140508.xlsx .* found in"):
        read("casme2", root, frames=root / "Cropped" / "sub01")
    with pytest.raises(DatasetError, match=r"CASME II frame folder .*nowhere \(--frames\) does not exist"):
        read("casme2", root, frames=root / "nowhere")


def test_the_tree_holding_most_clips_is_taken(annotations_dir: Path, tmp_path: Path) -> None:
    """A partial raw copy loses to a complete cropped one: the count comes first."""
    root = build_tree("casme2", annotations_dir, tmp_path, clips=FEW[:2], layout="release")
    build_tree("casme2", annotations_dir, root, clips=FEW, layout="release", cropped=True)
    index = read("casme2", root, "all")
    assert index.frame_trees == {"casme2": root / "Cropped"} and len(index) == 6
    assert f"because {TREE_ORDER[0]}" in index.notes[0] and "CASME2_RAW_selected (2 clips)" in index.notes[0]


def test_smic_takes_the_high_speed_recording_and_raw_frames(annotations_dir: Path, tmp_path: Path) -> None:
    clips = ["s1_ne_01", "s1_po_01", "s20_ne_01"]
    e = build_tree("smic-e", annotations_dir, tmp_path / "e", clips=clips, layout="release", frames_dir="SMIC_VIS_E")
    build_tree("smic-e", annotations_dir, e, clips=clips, layout="release")
    index = read("smic-e", e)
    assert index.frame_trees == {"smic-e": e / "SMIC_HS_E"} and f"because {TREE_ORDER[1]}" in index.notes[0]

    hs = build_tree("smic", annotations_dir, tmp_path / "hs", clips=clips, frames_dir="SMIC_all_cropped/HS")
    build_tree("smic", annotations_dir, hs, clips=clips, frames_dir="SMIC_all_raw/HS")
    index = read("smic", hs)
    assert index.frame_trees == {"smic": hs / "SMIC_all_raw" / "HS"} and len(index) == 3
    assert f"because {TREE_ORDER[2]}" in index.notes[0]
    assert read("smic", hs / "SMIC_all_raw" / "HS").frame_trees == {"smic": hs / "SMIC_all_raw" / "HS"}


def test_folder_names_match_ignoring_case(annotations_dir: Path, tmp_path: Path) -> None:
    root = build_tree("casme2", annotations_dir, tmp_path, clips=FEW[:2], layout="release")
    (root / "CASME2_RAW_selected" / "sub01").rename(root / "CASME2_RAW_selected" / "SUB01")
    assert len(read("casme2", root)) == 2


def check(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["datasets", "check", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_check_prints_the_frame_tree_and_the_choice(raw_and_cropped: Path) -> None:
    root = str(raw_and_cropped)
    code, output = check("casme2", "--root", root)
    assert code == 0, output
    assert f"frames: {raw_and_cropped / 'CASME2_RAW_selected'}\n" in output
    assert "note: CASME II frames taken from CASME2_RAW_selected" in output
    code, output = check("casme2", "--root", root, "--frames", f"{raw_and_cropped / 'Cropped'}", "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["frame_trees"] == {"casme2": str(raw_and_cropped / "Cropped")} and summary["notes"] == []


def test_composite_sheet_and_frames_per_part(release: Path, tmp_path: Path) -> None:
    parts = {p: tmp_path / p for p in PARTS}
    for part in PARTS:
        shutil.copytree(release / part, parts[part], symlinks=True)
    sheet = tmp_path / "sheets" / CASME2_SHEET
    sheet.parent.mkdir()
    (parts["casme2"] / CASME2_SHEET).rename(sheet)
    roots = [f"--root={p}={parts[p]}" for p in PARTS]
    code, output = check("composite", *roots)
    assert code == 2 and "no CASME II coding sheet" in output and "--sheet" in output
    samm_frames = parts["samm"] / "SAMM"
    code, output = check("composite", *roots, f"--sheet=casme2={sheet}", f"--frames=samm={samm_frames}", "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert (summary["samples"], summary["subjects"]) == (442, 68)
    assert summary["frame_trees"] == {p: str(parts[p] / RELEASE_FOLDERS[p]) for p in PARTS}
    code, output = check("composite", *roots, f"--sheet=casme2={sheet}", "--frames=samm=" + str(parts["samm"]))
    assert code == 2 and f"found in the frame folder {parts['samm']} (--frames)" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["composite", "--sheet", "x.xlsx"],
            "composite takes --sheet PART=PATH with PART in casme2, samm; got 'x.xlsx'",
        ),
        (["composite", "--sheet", "smic=x.xlsx"], "composite takes --sheet PART=PATH with PART in casme2, samm"),
        (["composite", "--frames", "casme2=a", "--frames", "casme2=b"], "composite takes --frames casme2=PATH once"),
        (["composite", "--frames", "smic-e=a"], "composite takes --frames PART=PATH with PART in casme2, samm, smic"),
        (["casme2", "--sheet", "a.xlsx", "--sheet", "b.xlsx"], "casme2 takes one --sheet PATH, got 2"),
        (["casme2", "--frames", "a", "--frames", "b"], "casme2 takes one --frames PATH, got 2"),
        (["smic", "--sheet", "x.xlsx"], "--sheet does not apply to smic (it has no sheet)"),
    ],
)
def test_bad_sheet_and_frames_options(release: Path, args: list[str], message: str) -> None:
    name, options = args[0], args[1:]
    roots = [f"--root={p}={release / p}" for p in PARTS] if name == "composite" else ["--root", str(release / name)]
    code, output = check(name, *roots, *options)
    assert code == 2 and message in output
