"""The synthetic demo set: local action-unit deformations of the configured size, on real faces, read by the real
CASME II reader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import pamer.data
from pamer.demo import synthetic as syn

QUIET = {"noise": 0.0, "head_shift_px": 0.0, "head_rotation_deg": 0.0, "illumination": 0.0}
SMALL = {"subjects": 2, "clips_per_class": 1, "face_px": 128, "frames": (4, 5)}


@pytest.fixture(scope="module")
def face() -> syn.Face:
    faces, skipped = syn.load_faces(face_px=256)  # matplotlib's Grace Hopper (and the astronaut if installed)
    assert not skipped
    return faces[0]


def _motion(clip: syn.Clip) -> np.ndarray:
    """|apex - onset| summed over colour channels."""
    return np.abs(clip.frames[clip.apex].astype(np.int32) - clip.frames[0].astype(np.int32)).sum(axis=-1)


def _disc(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2


def test_builtin_face_is_found_and_scaled(face: syn.Face) -> None:
    assert face.image.shape == (384, 384, 3) and face.image.dtype == np.uint8
    assert face.width == pytest.approx(256, abs=0.5)
    # the face sits inside the canvas with room around it
    assert face.landmarks.min() > 30 and face.landmarks.max() < 384 - 30


@pytest.mark.parametrize("emotion", sorted(syn.EMOTION_AUS))
def test_deformation_is_local(face: syn.Face, emotion: str) -> None:
    aus = syn.EMOTION_AUS[emotion]
    clip = syn.render_clip(face, aus, np.random.default_rng(1), syn.SyntheticConfig(**QUIET))
    motion = _motion(clip)
    near = np.zeros(motion.shape, bool)
    for centre, _, radius in syn.au_handles(face.landmarks, aus):
        near |= _disc(motion.shape, centre, radius + 1.5)  # +1.5: bilinear sampling reaches one pixel further
    assert motion[~near].max() == 0, "pixels away from the action units changed"
    assert motion[near].max() > 30, "the action units moved nothing visible"
    # the regions are a small part of the face
    assert near.mean() < 0.12


def test_amplitude_within_configured_range(face: syn.Face) -> None:
    config = syn.SyntheticConfig(amplitude_px=(1.5, 4.0), **QUIET)
    gray = cv2.cvtColor(face.image, cv2.COLOR_RGB2GRAY)
    peaks = []
    for seed in range(6):
        emotion = sorted(syn.EMOTION_AUS)[seed % 5]
        clip = syn.render_clip(face, syn.EMOTION_AUS[emotion], np.random.default_rng(seed), config)
        size = np.linalg.norm(clip.displacement, axis=-1)
        peak = float(size.max()) * 256 / face.width
        assert peak == pytest.approx(clip.params["amplitude_px"], abs=1e-3)
        peaks.append(peak)
        # the picture really moves by that much: dense optical flow onset -> apex, projected on the field's
        # direction where the field is strong, is ~0.93 of it (the flow smooths a little)
        apex = cv2.cvtColor(clip.frames[clip.apex], cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(gray, apex, None, 0.5, 3, 5, 5, 5, 1.1, 0)
        strong = size > 0.5 * size.max()
        along = (flow[strong] * clip.displacement[strong]).sum(axis=-1) / size[strong]
        assert 0.7 <= along.mean() / size[strong].mean() <= 1.15, emotion
    assert all(1.5 <= p <= 4.0 for p in peaks)
    assert max(peaks) - min(peaks) > 0.5, "the intensity is not drawn per clip"


# region -> the emotions that must move it (the others must leave it still)
# (discs around the means of these landmark groups)
REGIONS = {
    "inner brows": (((21,), (22,)), {"surprise", "disgust", "others"}),
    "lip corners": (((48,), (54,)), {"happiness", "disgust", "repression"}),
    "chin": (((57, 8),), {"repression"}),
}


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_classes_differ_where_they_should(face: syn.Face, region: str) -> None:
    points, moving = REGIONS[region]
    mask = np.zeros(face.image.shape[:2], bool)
    for group in points:
        mask |= _disc(mask.shape, face.landmarks[list(group)].mean(axis=0), 0.03 * face.width)
    for emotion, aus in syn.EMOTION_AUS.items():
        clip = syn.render_clip(face, aus, np.random.default_rng(0), syn.SyntheticConfig(**QUIET))
        moved = _motion(clip)[mask].mean()
        if emotion in moving:
            assert moved > 2.0, f"{emotion} ({'+'.join(aus)}) does not move the {region}"
        else:
            assert moved == 0, f"{emotion} ({'+'.join(aus)}) moves the {region}"


def test_nuisances_reach_the_whole_frame(face: syn.Face) -> None:
    # head motion, illumination and noise change pixels far from the action units, so the task is not trivial
    clip = syn.render_clip(face, ("12",), np.random.default_rng(3), syn.SyntheticConfig())
    motion = _motion(clip)
    far = np.ones(motion.shape, bool)
    for centre, _, radius in syn.au_handles(face.landmarks, ("12",)):
        far &= ~_disc(motion.shape, centre, radius + 2)
    assert (motion[far] > 0).mean() > 0.5


def test_identity_variants_differ(face: syn.Face) -> None:
    subjects = syn.make_subjects([face], 3, seed=0)
    assert [s.name for s in subjects] == ["01", "02", "03"]
    assert subjects[0].image is face.image
    for s in subjects[1:]:
        assert s.image.shape == face.image.shape
        assert np.abs(s.image.astype(int) - face.image.astype(int)).mean() > 5
        assert s.landmarks.shape == (68, 2)
    assert np.abs(subjects[1].image.astype(int) - subjects[2].image.astype(int)).mean() > 5


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def test_generate_reads_as_casme2_and_is_deterministic(tmp_path: Path) -> None:
    config = syn.SyntheticConfig(**SMALL, seed=7)
    root = syn.generate(tmp_path / "a", config)
    index = pamer.data.read("casme2", root, protocol="megc2019")
    assert index.problems == []
    assert index.classes == ("negative", "positive", "surprise")
    assert index.class_counts() == {"negative": 2, "positive": 2, "surprise": 2}
    assert index.subjects == ["sub01", "sub02"]
    for s in index.samples:
        assert s.onset < s.apex < s.offset
        assert s.onset_path.is_file() and s.apex_path.is_file()
        assert len(s.frames) == s.offset - s.onset + 1
    sheet = pd.read_excel(root / syn.SHEET_NAME, dtype={"Subject": str})
    assert list(sheet.columns[[0, 1, 3, 4, 5, 7, 8]]) == [
        "Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"
    ]  # fmt: skip
    assert set(sheet["Action Units"]) == {"6+12", "1+2+5", "4+15"}

    again = syn.generate(tmp_path / "b", config)
    assert _digest(root) == _digest(again)
    other = syn.generate(tmp_path / "c", syn.SyntheticConfig(**SMALL, seed=8))
    assert _digest(root) != _digest(other)


def test_generate_keeps_a_complete_set_and_refuses_foreign_folders(tmp_path: Path) -> None:
    config = syn.SyntheticConfig(**SMALL)
    root = syn.generate(tmp_path / "set", config)
    sheet = root / syn.SHEET_NAME
    stamp = sheet.stat().st_mtime_ns
    syn.generate(root, config)
    assert sheet.stat().st_mtime_ns == stamp, "a complete set with the same settings was written again"
    syn.generate(root, syn.SyntheticConfig(**{**SMALL, "classes": 5}))
    assert pamer.data.read("casme2", root, protocol="5class").class_counts() == dict.fromkeys(
        ("happiness", "disgust", "surprise", "repression", "others"), 2
    )

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(syn.SyntheticError, match="not a synthetic set"):
        syn.generate(foreign, config)
    assert (foreign / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("a file")
    with pytest.raises(
        syn.SyntheticError, match="cannot write the synthetic set .*/set: .*file is a file, not a folder"
    ):
        syn.generate(tmp_path / "file" / "set", config)


def test_faces_folder(tmp_path: Path, faces_dir: Path) -> None:
    faces, skipped = syn.load_faces(faces_dir, face_px=128)
    assert len(faces) >= 3  # Tom Cruise, and several of the bald guys
    assert all(f.width == pytest.approx(128, abs=0.5) for f in faces)
    assert any("2007_007763" in line for line in skipped)  # its faces are under 80 pixels


def test_faces_folder_skips_junk_by_the_frame_rule(tmp_path: Path) -> None:
    """Photos are listed by `pamer.frames`' suffix and junk rule: a macOS AppleDouble copy (`._grace.jpg`) and a
    text file are no photos, so neither is read nor reported as skipped."""
    photo = syn.builtin_photos()[0]
    (tmp_path / "grace.jpg").write_bytes(photo.read_bytes())
    (tmp_path / "._grace.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "notes.txt").write_text("not a photo")
    faces, skipped = syn.load_faces(tmp_path, face_px=128)
    assert [f.name for f in faces] == ["grace"]
    assert skipped == []


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(syn.SyntheticError, match="does not exist"):
        syn.load_faces(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    cv2.imwrite(str(tmp_path / "empty" / "wall.jpg"), np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(syn.SyntheticError, match=r"no usable face in .*empty"):
        syn.load_faces(tmp_path / "empty")
    with pytest.raises(syn.SyntheticError, match="classes must be one of"):
        syn.SyntheticConfig(classes=4)
    with pytest.raises(syn.SyntheticError, match="subjects must be at least 2"):
        syn.SyntheticConfig(subjects=1)
    with pytest.raises(syn.SyntheticError, match="amplitude_px"):
        syn.SyntheticConfig(amplitude_px=(3.0, 1.0))


def test_a_frame_that_cannot_be_written_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv2, "imwrite", lambda *args, **kwargs: False)  # what OpenCV returns on a full disk
    with pytest.raises(syn.SyntheticError, match=r"cannot write the frame .*img\d+\.jpg"):
        syn.generate(tmp_path / "set", syn.SyntheticConfig(subjects=2, clips_per_class=1))
