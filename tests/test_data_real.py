"""Acceptance: the readers on frame trees built from the datasets' REAL sheets reproduce the published counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from _trees import SAMM_SHORT_CLIPS, build_tree
from pamer.data import DatasetIndex, read


@pytest.fixture(scope="module")
def trees(annotations_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """casme2/, samm/, smic/ (the composite's parts) and smic-e/ under one folder, built once."""
    root = tmp_path_factory.mktemp("real-trees")
    build_tree("composite", annotations_dir, root)
    build_tree("smic-e", annotations_dir, root / "smic-e")
    return root


def subjects(index: DatasetIndex) -> int:
    return len({s.subject for s in index.samples})


def by_clip(index: DatasetIndex) -> dict[str, object]:
    return {s.clip: s for s in index.samples}


def test_casme2_all_emotions(trees: Path) -> None:
    index = read("casme2", trees / "casme2", "all")
    assert (len(index), subjects(index)) == (255, 26)
    assert Counter(s.emotion for s in index.samples) == {
        "others": 99,
        "disgust": 63,
        "happiness": 32,
        "repression": 27,
        "surprise": 25,
        "sadness": 7,
        "fear": 2,
    }


def test_casme2_paper_5class(trees: Path) -> None:
    index = read("casme2", trees / "casme2")
    assert index.classes == ("happiness", "disgust", "surprise", "repression", "others")
    assert (len(index), subjects(index)) == (246, 26)
    assert index.class_counts() == {"happiness": 32, "disgust": 63, "surprise": 25, "repression": 27, "others": 99}
    assert {s.subject for s in index.samples} == {f"sub{i:02d}" for i in range(1, 27)}


def test_casme2_apex_slash_is_the_middle_frame(trees: Path) -> None:
    index = read("casme2", trees / "casme2")
    clip = by_clip(index)["EP12_01f"]
    assert (clip.subject, clip.onset, clip.apex, clip.offset) == ("sub04", 261, 291, 321)
    assert clip.apex_source == "middle" and "apex-missing" in clip.flags
    assert clip.apex_path.name == "img291.jpg" and clip.onset_path.name == "img261.jpg"
    [problem] = [p for p in index.problems if p.clip == "casme2/sub04/EP12_01f"]
    assert problem.kind == "apex-missing" and "'/'" in problem.detail and "291" in problem.detail


def test_casme2_apex_equal_to_onset_is_reported(trees: Path) -> None:
    index = read("casme2", trees / "casme2")
    clip = by_clip(index)["EP09_05f"]
    assert (clip.onset, clip.apex, clip.apex_source) == (69, 96, "middle")
    [problem] = [p for p in index.problems if p.clip == "casme2/sub05/EP09_05f"]
    assert problem.kind == "apex-at-onset" and "69" in problem.detail
    # every other clip keeps the sheet's apex
    assert sum(s.apex_source == "annotated" for s in index.samples) == 244
    assert len(index.problems) == 2


def test_casme2_frames_sorted_numerically_and_cropped_names(annotations_dir: Path, tmp_path: Path) -> None:
    root = build_tree("casme2", annotations_dir, tmp_path, clips=["sub01/EP02_01f"], cropped=True, frames="all")
    [clip] = read("casme2", root).samples  # EP02_01f of sub01: happiness, onset 46, apex 59, offset 86
    assert clip.frame_numbers == list(range(46, 87))
    assert [p.name for p in clip.frames[:3]] == ["reg_img46.jpg", "reg_img47.jpg", "reg_img48.jpg"]
    assert clip.apex_path.name == "reg_img59.jpg"


def test_samm_all_emotions(trees: Path) -> None:
    index = read("samm", trees / "samm", "all")
    assert (len(index), subjects(index)) == (159, 29)
    assert Counter(s.emotion for s in index.samples) == {
        "Anger": 57,
        "Other": 26,
        "Happiness": 26,
        "Surprise": 15,
        "Contempt": 12,
        "Disgust": 9,
        "Fear": 8,
        "Sadness": 6,
    }


def test_samm_paper_5class(trees: Path) -> None:
    index = read("samm", trees / "samm")
    assert index.classes == ("happiness", "anger", "contempt", "surprise", "other")
    assert (len(index), subjects(index)) == (136, 27)
    assert index.class_counts() == {"anger": 57, "contempt": 12, "happiness": 26, "surprise": 15, "other": 26}


def test_samm_padding_varies_and_frames_found_by_number(trees: Path) -> None:
    index = read("samm", trees / "samm", "all")
    clips = by_clip(index)
    assert clips["006_1_2"].onset_path.name == "006_05562.jpg"  # the layout named in the README
    widths = {len(s.onset_path.stem.split("_")[1]) for s in index.samples}
    assert widths == {4, 5}
    assert all(s.subject == s.clip[:3] and len(s.subject) == 3 for s in index.samples)


def test_samm_clips_without_frames_up_to_the_apex(trees: Path) -> None:
    """028_4_1 and 032_3_1 ship no frame at the apex: the nearest frame stands in, reported with the numbers."""
    index = read("samm", trees / "samm")
    clips = by_clip(index)
    for name in SAMM_SHORT_CLIPS:
        clip = clips[name]
        assert "apex-frame-missing" in clip.flags
        assert clip.apex == clip.frame_numbers[-1] and clip.apex_path.exists()
        kinds = {(p.kind, p.detail.split(": ")[1].split()[0]) for p in index.problems if p.clip.endswith(name)}
        assert kinds == {("missing-frame", "apex"), ("missing-frame", "offset")}
    assert {p.clip.split("/")[-1] for p in index.problems} == set(SAMM_SHORT_CLIPS)
    assert "1113" in next(p.detail for p in index.problems if p.clip.endswith("028_4_1"))


def test_smic_hs_tree(trees: Path) -> None:
    index = read("smic", trees / "smic")
    assert index.classes == ("positive", "negative", "surprise")
    assert (len(index), subjects(index)) == (164, 16)
    assert index.class_counts() == {"negative": 70, "positive": 51, "surprise": 43}
    assert not index.problems
    for clip in index.samples:
        assert clip.onset == clip.frame_numbers[0] and clip.offset == clip.frame_numbers[-1]
        assert clip.apex == (clip.onset + clip.offset) // 2 and clip.apex_source == "middle"


def test_smic_root_may_be_the_hs_folder(trees: Path) -> None:
    assert len(read("smic", trees / "smic" / "HS")) == 164


def test_smic_e_sheet(trees: Path) -> None:
    index = read("smic-e", trees / "smic-e")
    assert (len(index), subjects(index)) == (157, 16)
    assert index.class_counts() == {"positive": 51, "negative": 66, "surprise": 40}
    clip = by_clip(index)["s20_ne_01"]
    assert (clip.subject, clip.onset, clip.offset) == ("s20", 17581039, 17581055)
    assert clip.apex == 17581047 and clip.apex_source == "middle"
    assert clip.onset_path.name == "image17581039.jpg"
    assert "more-intervals" in by_clip(index)["s9_sur_01"].flags
    assert not index.problems


def test_composite_is_exactly_the_official_megc2019_list(annotations_dir: Path, trees: Path) -> None:
    index = read("composite", {part: trees / part for part in ("casme2", "samm", "smic")})
    assert index.classes == ("negative", "positive", "surprise")
    gt = pd.read_csv(annotations_dir / "combined_3class_gt.csv", header=None, names=["dataset", "subject", "clip", "y"])

    def official(row: pd.Series) -> tuple[str, str, str, str]:
        subject, clip = str(row.subject), str(row.clip)
        if row.dataset == "samm":
            subject = subject.zfill(3)
        if row.dataset == "smic":  # the list zero-pads SMIC names (s01_ne_01), the folders do not (s1_ne_01)
            subject = f"s{int(subject[1:])}"
            clip = "_".join([subject, *clip.split("_")[1:]])
        return row.dataset, subject, clip, index.classes[int(row.y)]

    expected = Counter(official(row) for row in gt.itertuples())
    got = Counter((s.dataset, s.subject, s.clip, s.label) for s in index.samples)
    assert got == expected
    assert (len(index), subjects(index)) == (442, 68)
    per_part = Counter(s.dataset for s in index.samples)
    assert per_part == {"casme2": 145, "samm": 133, "smic": 164}


def test_composite_single_folder_root(trees: Path) -> None:
    # one folder holding casme2/, samm/, smic/ (here with smic-e/ beside them) instead of three roots
    index = read("composite", trees)
    assert (len(index), index.class_counts()) == (442, {"negative": 250, "positive": 109, "surprise": 83})
