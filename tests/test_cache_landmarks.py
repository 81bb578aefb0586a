"""What every cache holds beside the images: the clip-by-AU table and the 68 landmarks of onset and apex."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import openpyxl
import pytest

import pamer.data
from pamer.data.samples import ActionUnit as AU
from pamer.demo import synthetic
from pamer.frames import read_rgb
from pamer.preprocess import CacheError, load_cache, prepare, read_manifest
from pamer.preprocess.cache import au_table
from pamer.preprocess.face import FaceAligner, detect_faces, rescale_points, steady_landmarks
from pamer.preprocess.images import prepare_images

SIZE = 128


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic CASME II-style clips (2 subjects x 3 classes x 1 clip); one clip's AU cell says `?`."""
    config = synthetic.SyntheticConfig(subjects=2, clips_per_class=1, classes=3, face_px=128, frames=(4, 4))
    root = synthetic.generate(tmp_path_factory.mktemp("syn") / "casme2", config)
    book = openpyxl.load_workbook(root / synthetic.SHEET_NAME)
    sheet = book.active
    column = [c.value for c in sheet[1]].index("Action Units") + 1
    sheet.cell(row=2, column=column, value="?")  # the first clip: AUs not identified
    book.save(root / synthetic.SHEET_NAME)
    return root


@pytest.fixture(scope="module")
def index(root: Path) -> pamer.data.DatasetIndex:
    return pamer.data.read("casme2", root, "megc2019")


@pytest.fixture(scope="module")
def prepared(index, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(index, tmp_path_factory.mktemp("caches"), size=SIZE, progress=False)


@pytest.fixture(scope="module")
def cached(prepared: Path):
    return load_cache(prepared)


def test_au_table_matches_the_samples(index, cached) -> None:
    samples = {(s.subject, s.clip): s for s in index.samples}
    coded = [s for s in index.samples if s.aus is not None]
    assert len(coded) == len(index) - 1  # the `?` clip
    # the synthetic sheet writes each class's AUs (`synthetic.EMOTION_AUS`): the table must hold exactly those
    expected_names = sorted({int(au) for s in coded for au in synthetic.EMOTION_AUS[s.emotion]})
    assert cached.au_names == tuple(str(n) for n in expected_names)
    assert cached.aus.dtype == np.float32 and cached.aus.shape == (len(cached), len(expected_names))
    for row, subject, clip in zip(cached.aus, cached.subjects, cached.clips, strict=True):
        sample = samples[subject, clip]
        if sample.aus is None:
            assert np.isnan(row).all() and sample.au_string == "?"
            continue
        wanted = {str(au) for au in synthetic.EMOTION_AUS[sample.emotion]}
        assert {name for name, v in zip(cached.au_names, row, strict=True) if v == 1} == wanted
        assert set(row.tolist()) <= {0.0, 1.0}


def test_landmarks_are_where_dlib_finds_them_on_the_crops(cached) -> None:
    points = cached.landmarks
    assert points.dtype == np.float32 and points.shape == (len(cached), 2, 68, 2)
    assert not np.isnan(points).any()  # every synthetic clip shows a face
    for i in range(len(cached)):
        for which, crop in ((0, cached.onset[i]), (1, cached.apex[i])):
            boxes = detect_faces(crop)
            assert boxes, f"clip {cached.clips[i]}: dlib finds no face on the cached crop"
            direct = steady_landmarks(crop, boxes[0])
            error = np.linalg.norm(points[i, which] - direct, axis=1)
            # within a few pixels on a face of about 90 px (the stored points are fitted at the frames' resolution,
            # dlib's on the small crop; the jaw contour 0-16 is the least certain); a scale, shift or axis error of
            # the stored points would be tens of pixels
            inner = error[17:]
            assert np.median(error) < 2.5 and inner.mean() < 3 and inner.max() < 8, (cached.clips[i], which, error)
        # the eyes are level (the alignment) and the right eye is on the image's left
        right, left = points[i, 0, 36:42].mean(axis=0), points[i, 0, 42:48].mean(axis=0)
        assert right[0] < left[0] and abs(right[1] - left[1]) < 3


def test_manifest_names_the_landmarks(prepared: Path) -> None:
    assert {r["landmarks"] for r in read_manifest(prepared)} == {"onset, apex"}


def test_an_edited_au_cell_makes_a_new_cache(index, tmp_path: Path) -> None:
    first = prepare(index, tmp_path, size=48, progress=False)
    samples = list(index.samples)
    samples[1] = dataclasses.replace(samples[1], aus=None, au_string="?")
    second = prepare(dataclasses.replace(index, samples=samples), tmp_path, size=48, progress=False)
    assert first != second
    assert np.isnan(load_cache(second).aus[1]).all() and not np.isnan(load_cache(first).aus[1]).any()


def test_an_older_cache_format_is_refused(prepared: Path, tmp_path: Path) -> None:
    copy = tmp_path / "old"
    shutil.copytree(prepared, copy)
    meta = json.loads((copy / "cache.json").read_text())
    meta["format"] = 2
    (copy / "cache.json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="made in cache format 2, this pamer reads format 3; rerun `pamer prepare`"):
        load_cache(copy)


def _grace() -> np.ndarray:
    image = read_rgb(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return image[60:420, 50:460]  # a loose face crop, 410 x 360


def test_ready_made_apex_crops_with_and_without_a_face(tmp_path: Path) -> None:
    face = _grace()
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    # no face, but not one colour (a constant image is skipped as a problem of its own)
    cv2.imwrite(str(tmp_path / "blank.png"), np.random.default_rng(0).integers(0, 256, (90, 80, 3), dtype=np.uint8))
    rows = [["s1", "a", "pos", "face.png", "6+12"], ["s2", "b", "neg", "blank.png", ""]]
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["subject", "clip", "label", "file", "aus"], *rows])
    index = pamer.data.read("images", tmp_path)
    directory = prepare_images(index, tmp_path / "caches", "apex", size=64)
    data = load_cache(directory)
    assert data.clips == ["a", "b"] and data.landmarks.shape == (2, 2, 68, 2)
    assert np.isnan(data.landmarks[:, 0]).all()  # no onset
    assert np.isnan(data.landmarks[1, 1]).all()  # no face on the blank crop
    # where dlib finds them on the crop itself, scaled to the cached 64 x 64 (aspect not kept, as the image)
    expected = steady_landmarks(face, detect_faces(face)[0])
    expected = (expected + 0.5) * [64 / face.shape[1], 64 / face.shape[0]] - 0.5
    assert np.median(np.linalg.norm(data.landmarks[0, 1] - expected, axis=1)) < 1.0
    manifest = {r["clip"]: r["landmarks"] for r in read_manifest(directory)}
    assert manifest["a"].startswith("apex: ") and manifest["b"] == f"none: no face found in {tmp_path / 'blank.png'}"
    assert data.au_names == ("6", "12") and data.aus[0].tolist() == [1.0, 1.0] and np.isnan(data.aus[1]).all()


def test_ready_made_flow_without_apex_crops_and_without_aus(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)  # flow-like noise: a constant image is skipped as a problem of its own
    cv2.imwrite(str(tmp_path / "f1.png"), rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "f2.png"), rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    (tmp_path / "labels.csv").write_text("subject,clip,label,file\ns1,a,pos,f1.png\ns2,b,neg,f2.png\n")
    index = pamer.data.read("images", tmp_path)
    data = load_cache(prepare_images(index, tmp_path / "caches", "flow"))
    assert np.isnan(data.landmarks).all() and data.landmarks.shape == (2, 2, 68, 2)
    assert data.aus is None and data.au_names is None


def test_htnet_flow_cache_takes_the_apex_crops_landmarks(tmp_path: Path) -> None:
    """The MEGC2019 folders: the flow image (28 px) gets the landmarks of its clip's apex crop, scaled to 28 px,
    as the HTNet authors' code takes them; a clip without its apex crop keeps NaN, named in the manifest."""
    flow_dir = tmp_path / "datasets" / "STSNet_whole_norm_u_v_os"
    apex_dir = tmp_path / "datasets" / "combined_datasets_whole"
    flow_dir.mkdir(parents=True)
    apex_dir.mkdir(parents=True)
    face = _grace()
    cv2.imwrite(str(apex_dir / "sub01_EP02_01f.jpg"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    for name in ("sub01_EP02_01f .png", "006_006_1_2 .png"):
        cv2.imwrite(str(flow_dir / name), np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8))
    (tmp_path / "combined_3_class2_for_optical_flow.csv").write_text(
        "dataset,sub,filename_o,label,apex,imagename,sub_filename\n"
        "casme2,sub01,EP02_01f,1,,sub01_EP02_01f.jpg,\n"
        "samm,006,006_1_2,0,,006_006_1_2.jpg,\n"
    )
    index = pamer.data.read("htnet", tmp_path)
    assert all(s.aus is None for s in index.samples) and index.au_counts() is None
    directory = prepare_images(index, tmp_path / "caches", "flow")
    data = load_cache(directory)
    assert data.flow.shape[1:3] == (28, 28) and data.aus is None
    k, other = data.clips.index("EP02_01f"), data.clips.index("006_1_2")
    decoded = read_rgb(apex_dir / "sub01_EP02_01f.jpg")
    expected = steady_landmarks(decoded, detect_faces(decoded)[0])
    expected = (expected + 0.5) * [28 / face.shape[1], 28 / face.shape[0]] - 0.5
    # dlib's points on the apex crop, scaled to the flow image: within a pixel of 28 (the stored fit pads the crop
    # for the detector, so its box differs a little); unscaled or transposed points would be far outside
    error = np.linalg.norm(data.landmarks[k, 1] - expected, axis=1)
    assert np.median(error) < 0.3 and error.max() < 1.0
    assert np.isnan(data.landmarks[other]).all() and np.isnan(data.landmarks[:, 0]).all()
    manifest = {r["clip"]: r["landmarks"] for r in read_manifest(directory)}
    assert manifest == {"EP02_01f": f"apex: {apex_dir / 'sub01_EP02_01f.jpg'}", "006_1_2": "none: no apex crop"}


def test_resized_transform_and_rescaled_points_agree() -> None:
    """A point of the frame lands at the same place of the 128 px crop whether mapped directly or through the same
    crop square made at 300 px and scaled back, pixel centres to pixel centres (as cv2.resize maps them)."""
    aligner = FaceAligner(size=128)
    transform = aligner.fit([_grace()])
    big = transform.resized(300)
    assert big.size == 300 and big.centre == transform.centre and big.side == transform.side
    points = np.random.default_rng(0).uniform(0, 350, (50, 2))

    def mapped(t):
        return points @ t.matrix[:, :2].T + t.matrix[:, 2]

    np.testing.assert_allclose(rescale_points(mapped(big), (300, 300), (128, 128)), mapped(transform), atol=1e-9)
    # by hand: pixel 0 of a 2 px image covers the first half of a 4 px image, whose pixel centres are 0..3
    np.testing.assert_allclose(rescale_points(np.array([[0.0, 1.0]]), (2, 2), (4, 4)), [[0.5, 2.5]])
    # the crop made at 300 px, shrunk to 128, is the 128 px crop (up to resampling)
    frame = _grace()
    shrunk = cv2.resize(big.apply(frame), (128, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - transform.apply(frame).astype(int)).mean() < 6


def test_au_table_of_a_mixed_composite() -> None:
    """SMIC clips (not coded) beside CASME II/SAMM ones: NaN rows; a clip coded with no AU: a row of zeros."""
    table, names = au_table([None, (AU(4), AU(12, "L", "B")), (), (AU(12, "R"),)])
    assert names == ("4", "12")
    np.testing.assert_array_equal(table, [[np.nan, np.nan], [1, 1], [0, 0], [0, 1]])
    assert table.dtype == np.float32
    assert au_table([None, None]) == (None, None)
