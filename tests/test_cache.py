"""`prepare` / `load_cache` / `pamer prepare` on a CASME II frame tree built from the real sheet with real faces."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest
from typer.testing import CliRunner

import pamer.data
from _trees import FrameSpec, build_tree
from pamer.cli import app
from pamer.frames import read_rgb
from pamer.preprocess import CacheError, load_cache, pipeline, prepare, read_manifest
from pamer.preprocess.face import FaceAligner, detect_faces

# two subjects, six clips of the real CASME II sheet, each showing one case
NORMAL, TILTED, FACE_AT_APEX = "EP04_03", "EP19_05f", "EP19_06f"  # sub01
NO_FACE, CORRUPT, MISSING = "EP01_11f", "EP02_04f", "EP09_01"  # sub02
CLIPS = (NORMAL, TILTED, FACE_AT_APEX, NO_FACE, CORRUPT, MISSING)
TILT = 12.0


def _rotate(image: np.ndarray, angle: float) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h))


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    image = read_rgb(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return cv2.resize(image, (256, 300), interpolation=cv2.INTER_AREA)  # a face of about 110 px


def _writer(grace: np.ndarray, tom: np.ndarray):
    blank = np.full_like(grace, 100)

    def write(path: Path, spec: FrameSpec) -> None:
        if spec.clip == CORRUPT and spec.role == "onset":
            path.write_bytes(b"\xff\xd8\xff\xe0 cut off")
            return
        if spec.clip == NO_FACE or (spec.clip == FACE_AT_APEX and spec.role != "apex"):
            image = blank
        elif spec.clip == MISSING:
            image = tom
        else:
            image = _rotate(grace, TILT) if spec.clip == TILTED else grace.copy()
            if spec.role == "apex":  # a local movement: the eyebrows of the onset, brightened
                image[95:110, 80:180] = np.clip(image[95:110, 80:180].astype(int) + 60, 0, 255)
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    return write


@pytest.fixture(scope="module")
def tree(tmp_path_factory, annotations_dir: Path, faces_dir: Path, grace: np.ndarray):
    """The tree's root and its index; MISSING's apex file is deleted after reading, as if lost meanwhile."""
    tom = read_rgb(faces_dir / "Tom_Cruise_avp_2014_4.jpg")
    tom = cv2.resize(tom, (200, 284), interpolation=cv2.INTER_AREA)
    root = build_tree(
        "casme2", annotations_dir, tmp_path_factory.mktemp("casme2"), clips=CLIPS, write_frame=_writer(grace, tom)
    )
    index = pamer.data.read("casme2", root)
    assert sorted(s.clip for s in index.samples) == sorted(CLIPS) and len(index.subjects) == 2
    sample = next(s for s in index.samples if s.clip == MISSING)
    sample.apex_path.unlink()
    return root, index


@pytest.fixture(scope="module")
def prepared(tree, tmp_path_factory) -> Path:
    return prepare(tree[1], tmp_path_factory.mktemp("caches"), size=128, progress=False)


def _rows(directory: Path) -> dict[str, dict[str, str]]:
    return {row["clip"]: row for row in read_manifest(directory)}


def test_cache_holds_aligned_faces_and_the_manifest_every_clip(tree, prepared: Path) -> None:
    _, index = tree
    data = load_cache(prepared)
    assert data.clips == [NORMAL, TILTED, FACE_AT_APEX, NO_FACE]  # the index's order, skipped clips left out
    assert data.subjects == ["sub01", "sub01", "sub01", "sub02"]
    assert data.onset.shape == data.apex.shape == (4, 128, 128, 3) and data.onset.dtype == np.uint8
    assert data.flow is None and data.labels.dtype == np.int64
    by_clip = {s.clip: s for s in index.samples}
    assert [data.classes[i] for i in data.labels] == [by_clip[c].label for c in data.clips]
    assert data.classes == index.classes
    assert data.config["size"] == 128 and data.config["dataset"] == "casme2"
    for i in range(3):  # the apex crops show a face, and onset and apex differ (the brightened eyebrows)
        assert detect_faces(data.apex[i]), data.clips[i]
        assert (data.onset[i] != data.apex[i]).any()

    rows = _rows(prepared)
    assert set(rows) == set(CLIPS)
    assert {"subject", "clip", "label", "status", "face", "angle_deg", "problems"} <= set(rows[NORMAL])
    normal, tilted = rows[NORMAL], rows[TILTED]
    assert normal["status"] == "cached" and normal["face"] == "found" and normal["problems"] == ""
    assert normal["face_frame"] == normal["onset_frame"] == "31"
    assert float(tilted["angle_deg"]) == pytest.approx(float(normal["angle_deg"]) - TILT, abs=1.5)
    assert rows[FACE_AT_APEX]["face"] == "found" and rows[FACE_AT_APEX]["face_frame"] == "71"
    assert "no face in the onset frame img36.jpg" in rows[FACE_AT_APEX]["problems"]
    assert rows[NO_FACE]["status"] == "cached" and rows[NO_FACE]["face"] == "none"
    assert "no face found in frames 46, 91, 68" in rows[NO_FACE]["problems"]
    assert rows[CORRUPT]["status"] == "skipped" and "img31.jpg" in rows[CORRUPT]["problems"]
    assert rows[MISSING]["status"] == "skipped" and "img56.jpg" in rows[MISSING]["problems"]
    assert not (prepared / "parts").exists()


def test_cache_holds_landmarks_in_crop_pixels_and_the_sheets_aus(tree, prepared: Path) -> None:
    _, index = tree
    data = load_cache(prepared)
    rows = _rows(prepared)
    i = {clip: k for k, clip in enumerate(data.clips)}
    points = data.landmarks
    for clip in (NORMAL, TILTED):
        assert not np.isnan(points[i[clip]]).any() and rows[clip]["landmarks"] == "onset, apex"
        # in the levelled crop the eyes are level, also for the clip filmed 12 degrees tilted (points of the
        # frame itself would show the tilt); the right eye is on the image's left, the chin below the nose
        for which in (0, 1):
            right, left = points[i[clip], which, 36:42].mean(axis=0), points[i[clip], which, 42:48].mean(axis=0)
            tilt = np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0]))
            assert abs(tilt) < 4 and right[0] < left[0], (clip, which, tilt)  # dlib on a 110 px face
            assert points[i[clip], which, 8, 1] > points[i[clip], which, 30, 1]
            assert points[i[clip], which].min() >= 0 and points[i[clip], which].max() < 128
    # the apex of NORMAL differs from its onset by its brightened eyebrows only: the same face, the same box
    assert np.abs(points[i[NORMAL], 1] - points[i[NORMAL], 0]).mean() < 2
    # a face only from the apex on: the onset crop shows none, so it gets no points (never points placed on nothing)
    assert np.isnan(points[i[FACE_AT_APEX], 0]).all() and not np.isnan(points[i[FACE_AT_APEX], 1]).any()
    assert rows[FACE_AT_APEX]["landmarks"] == "apex: no face found in the aligned onset img36.jpg"
    assert np.isnan(points[i[NO_FACE]]).all() and rows[NO_FACE]["landmarks"].startswith("none: no face found in")
    # the AU table: the real sheet's coding of the cached clips, AU numbers on either side
    samples = {s.clip: s for s in index.samples}
    numbers = {clip: {u.number for u in samples[clip].aus} for clip in data.clips}
    assert data.au_names == tuple(str(n) for n in sorted(set().union(*numbers.values())))
    for clip, row in zip(data.clips, data.aus, strict=True):
        assert {int(data.au_names[k]) for k in np.flatnonzero(row == 1)} == numbers[clip]
        assert set(row.tolist()) <= {0.0, 1.0}


def test_crops_use_the_clip_transform(tree, prepared: Path) -> None:
    _, index = tree
    sample = next(s for s in index.samples if s.clip == TILTED)
    onset, apex = read_rgb(sample.onset_path), read_rgb(sample.apex_path)
    transform = FaceAligner(size=128).fit([onset, apex])
    data = load_cache(prepared)
    i = data.clips.index(TILTED)
    np.testing.assert_array_equal(data.onset[i], transform.apply(onset))
    np.testing.assert_array_equal(data.apex[i], transform.apply(apex))


def test_interrupted_prepare_resumes_to_the_same_cache(tree, prepared: Path, tmp_path: Path, monkeypatch) -> None:
    _, index = tree
    real_align, calls = pipeline.align_clip, []

    def dies_on_third_clip(task, config):
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C or a kill does between two clips
        return real_align(task, config)

    monkeypatch.setattr(pipeline, "align_clip", dies_on_third_clip)
    with pytest.raises(KeyboardInterrupt):
        prepare(index, tmp_path, size=128, progress=False)
    directory = tmp_path / prepared.name
    assert len(list((directory / "parts").glob("*.safetensors"))) == 2
    with pytest.raises(CacheError, match="unfinished"):
        load_cache(directory)
    # a crash in the middle of writing a part leaves only a temp file, which is never read
    (directory / "parts" / ".000002.safetensors.tmp").write_bytes(b"torn")
    monkeypatch.setattr(pipeline, "align_clip", real_align)
    assert prepare(index, tmp_path, size=128, progress=False) == directory
    for name in ("arrays.safetensors", "manifest.csv", "cache.json"):
        assert (directory / name).read_bytes() == (prepared / name).read_bytes(), name


def test_finished_cache_is_not_redone(tree, prepared: Path, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "align_clip", lambda task, config: pytest.fail("a finished cache was aligned again"))
    assert prepare(tree[1], prepared.parent, size=128, progress=False) == prepared


def test_another_configuration_gets_another_directory(tree, prepared: Path, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "align_clip", lambda task, config: pytest.fail("stop"))
    with pytest.raises(pytest.fail.Exception):
        prepare(tree[1], prepared.parent, size=96, progress=False)
    assert len([p for p in prepared.parent.iterdir() if p.name.startswith("casme2-")]) == 2


def test_the_key_holds_where_the_frames_are_not_how_the_root_was_spelled(
    tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Chosen(Exception):
        pass

    def chosen(directory: Path):  # stop where prepare would start writing: the directory its key names
        raise Chosen(directory)

    def directory(root: Path) -> Path:
        with pytest.raises(Chosen) as stopped:
            prepare(pamer.data.read("casme2", root), tmp_path / "caches", size=128, progress=False)
        return stopped.value.args[0]

    monkeypatch.setattr(pipeline, "_sole_writer", chosen)
    root = tree[0]
    absolute = directory(root)
    monkeypatch.chdir(root.parent)  # the same copy, reached by a relative --root: the same cache
    assert directory(Path(root.name)) == absolute
    # another copy, reached by the same relative --root from its own folder, is another dataset: another cache
    shutil.copytree(root, tmp_path / "elsewhere" / root.name)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert directory(Path(root.name)) != absolute


def test_load_cache_errors(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="size=128.*size=224"):
        load_cache(prepared, expect={"size": 224})
    assert len(load_cache(prepared, expect={"size": 128, "representation": "diff"})) == 4
    with pytest.raises(CacheError, match=f"pass one of {prepared.name}"):
        load_cache(prepared.parent)
    with pytest.raises(CacheError, match="no such cache"):
        load_cache(tmp_path / "nowhere")
    with pytest.raises(CacheError, match="not a pamer cache"):
        load_cache(tmp_path)

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    meta = json.loads((copy / "cache.json").read_text())
    (copy / "cache.json").write_text(json.dumps({**meta, "format": 0}))
    with pytest.raises(CacheError, match="format 0"):
        load_cache(copy)
    (copy / "cache.json").write_text(json.dumps({**meta, "config": {**meta["config"], "size": 64}}))
    with pytest.raises(CacheError, match="does not match its key"):
        load_cache(copy)
    (copy / "cache.json").write_text(json.dumps(meta))
    (copy / "arrays.safetensors").write_bytes((prepared / "arrays.safetensors").read_bytes()[:5000])
    with pytest.raises(CacheError, match="arrays.safetensors"):
        load_cache(copy)


def test_bad_prepare_arguments(tree, tmp_path: Path) -> None:
    _, index = tree
    with pytest.raises(ValueError, match="representation"):
        prepare(index, tmp_path, representation="optical")
    with pytest.raises(ValueError, match="workers"):
        prepare(index, tmp_path, workers=0)
    with pytest.raises(ValueError, match="margin"):
        prepare(index, tmp_path, margin=5)
    with pytest.raises(ValueError, match="no clips"):
        prepare(pamer.data.DatasetIndex("casme2", index.classes), tmp_path)


def test_missing_frame_number_is_reported(tree, tmp_path: Path) -> None:
    _, index = tree
    sample = next(s for s in index.samples if s.clip == NORMAL)
    broken = pamer.data.Sample(**{**vars(sample), "apex": 10_000})
    small = pamer.data.DatasetIndex("casme2", index.classes, [broken])
    with pytest.raises(CacheError, match="none of the 1 clips of casme2 could be cached.*no file for frame 10000"):
        prepare(small, tmp_path, size=64, progress=False)
    (directory,) = tmp_path.iterdir()  # no cache.json, but the manifest says why
    rows = _rows(directory)
    assert rows[NORMAL]["status"] == "skipped" and "no file for frame 10000" in rows[NORMAL]["problems"]


def test_flow_cache(tree, tmp_path: Path) -> None:
    if not hasattr(cv2, "optflow"):
        pytest.skip("cv2.optflow missing: install the flow extra (opencv-contrib-python-headless)")
    _, index = tree
    small = pamer.data.DatasetIndex("casme2", index.classes, [s for s in index.samples if s.clip == NORMAL])
    data = load_cache(prepare(small, tmp_path, size=64, representation="flow", progress=False))
    assert data.flow.shape == (1, 64, 64, 3) and data.flow.dtype == np.float32
    assert np.abs(data.flow[0, ..., :2]).max() > 0.1  # the eyebrows moved


def test_cli_prepare(tree, tmp_path: Path) -> None:
    root, _ = tree
    runner = CliRunner()
    args = ["prepare", "casme2", "--root", str(root), "--out", str(tmp_path), "--size", "64", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    directory = Path(result.stdout.strip().splitlines()[-1])
    assert load_cache(directory).onset.shape[1:] == (64, 64, 3)
    assert "img31.jpg" in result.stderr and "clips cached" in result.stderr
    bad = runner.invoke(app, ["prepare", "casme2", "--root", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "error:" in bad.stderr and "Traceback" not in bad.output
    bad = runner.invoke(app, [*args, "--representation", "optical"])
    assert bad.exit_code == 2 and "optical" in bad.stderr


def test_junk_beside_the_frames_is_never_a_frame(annotations_dir: Path, grace: np.ndarray, tmp_path: Path) -> None:
    """A copy made on macOS carries `._img46.jpg` (an AppleDouble header, not an image) beside every frame, plus
    `.DS_Store`, `Thumbs.db` and `__MACOSX/`: every clip is still cached from its real frames, with no problem."""
    clips = (NORMAL, TILTED)
    root = build_tree(
        "casme2", annotations_dir, tmp_path / "casme2", clips=clips, write_frame=_writer(grace, grace), junk=True
    )
    assert (root / "sub01" / NORMAL / "._img31.jpg").is_file()  # the onset's junk twin, sorted before it
    args = ["prepare", "casme2", "--root", str(root), "--out", str(tmp_path / "caches"), "--size", "64", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = _rows(Path(result.stdout.strip().splitlines()[-1]))
    assert {clip: row["status"] for clip, row in rows.items()} == dict.fromkeys(clips, "cached")
    assert all(row["face"] == "found" and not row["problems"] for row in rows.values()), rows


def test_prepare_reads_a_release_layout(annotations_dir: Path, grace: np.ndarray, tmp_path: Path) -> None:
    """The sheet beside CASME2_RAW_selected/ and Cropped/ (with junk): the raw tree is taken, said and recorded;
    --frames takes the other."""
    clips, write = (NORMAL, TILTED), _writer(grace, grace)
    root = build_tree("casme2", annotations_dir, tmp_path / "CASME2", clips=clips, write_frame=write, layout="release")
    build_tree(
        "casme2", annotations_dir, root, clips=clips, write_frame=write, layout="release", cropped=True, junk=True
    )
    args = ["prepare", "casme2", "--root", str(root), "--out", str(tmp_path / "caches"), "--size", "64", "--quiet"]
    for frames, taken in ((None, "CASME2_RAW_selected"), (root / "Cropped", "Cropped")):
        result = CliRunner().invoke(app, args + ([] if frames is None else ["--frames", str(frames)]))
        assert result.exit_code == 0, result.output
        assert f"frames: {root / taken}\n" in result.stderr
        assert ("note: CASME II frames taken from CASME2_RAW_selected" in result.stderr) == (frames is None)
        directory = Path(result.stdout.strip().splitlines()[-1])
        assert json.loads((directory / "cache.json").read_text())["frame_trees"] == {"casme2": str(root / taken)}
        assert {row["status"] for row in _rows(directory).values()} == {"cached"} and len(_rows(directory)) == 2


@pytest.mark.slow
def test_killed_prepare_process_resumes(annotations_dir: Path, grace: np.ndarray, faces_dir: Path, tmp_path: Path):
    """The real thing: `pamer prepare --workers 2` killed with SIGKILL part way, rerun, compared byte for byte."""
    tom = cv2.resize(read_rgb(faces_dir / "Tom_Cruise_avp_2014_4.jpg"), (200, 284), interpolation=cv2.INTER_AREA)
    clips = ["EP02_01f", "EP03_02", "EP04_02", "EP19_01", "EP19_03f", "EP01_11f", "EP06_01f", "EP08_04", "EP11_01"]
    root = build_tree("casme2", annotations_dir, tmp_path / "casme2", clips=clips, write_frame=_writer(grace, tom))
    command = [sys.executable, "-c", "from pamer.cli import main; main()", "prepare", "casme2", "--root", str(root)]
    command += ["--size", "96", "--quiet"]
    reference = subprocess.run([*command, "--out", str(tmp_path / "a")], capture_output=True, text=True, check=True)
    directory = Path(reference.stdout.strip().splitlines()[-1])
    total = len(read_manifest(directory))
    killed = subprocess.Popen([*command, "--out", str(tmp_path / "b"), "--workers", "2"], start_new_session=True)
    parts = tmp_path / "b" / directory.name / "parts"
    deadline = time.monotonic() + 300
    while len(list(parts.glob("*.safetensors"))) < 3 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    done = len(list(parts.glob("*.safetensors")))
    assert 3 <= done < total, "the run finished before it could be killed"
    subprocess.run([*command, "--out", str(tmp_path / "b"), "--workers", "2"], capture_output=True, check=True)
    for name in ("arrays.safetensors", "manifest.csv", "cache.json"):
        assert (tmp_path / "b" / directory.name / name).read_bytes() == (directory / name).read_bytes(), name
