"""Motion representations: apex - onset, TV-L1 flow + optical strain, apex spotting."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from pamer.errors import NotInstalledError
from pamer.frames import read_rgb
from pamer.preprocess.motion import difference, flow_image, optical_strain, spot_apex, tvl1_flow

needs_optflow = pytest.mark.skipif(
    not hasattr(cv2, "optflow"), reason="cv2.optflow missing: install the flow extra (opencv-contrib-python-headless)"
)


@pytest.fixture(scope="module")
def face_crop() -> np.ndarray:
    image = read_rgb(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return cv2.resize(image[100:420, 100:420], (128, 128), interpolation=cv2.INTER_AREA)


def test_difference_is_apex_minus_onset() -> None:
    onset = np.array([[0, 10], [200, 255]], np.uint8)
    apex = np.array([[5, 0], [255, 0]], np.uint8)
    out = difference(onset, apex)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[5, -10], [55, -255]])  # no uint8 wrap-around
    with pytest.raises(ValueError, match="one shape"):
        difference(onset, apex[:1])


def test_strain_of_known_flows() -> None:
    y, x = np.mgrid[0:20, 0:30].astype(np.float32)
    stretch = np.stack([0.1 * x, np.zeros_like(x)], axis=-1)  # u_x = 0.1: strain 0.1
    np.testing.assert_allclose(optical_strain(stretch), 0.1, atol=1e-6)
    shear = np.stack([0.2 * y, np.zeros_like(x)], axis=-1)  # u_y = 0.2: strain sqrt(0.2^2 / 2)
    np.testing.assert_allclose(optical_strain(shear), np.sqrt(0.02), atol=1e-6)
    rotation = np.stack([-0.3 * y, 0.3 * x], axis=-1)  # a rigid rotation does not strain
    np.testing.assert_allclose(optical_strain(rotation), 0.0, atol=1e-6)
    shift = np.ones((20, 30, 2), np.float32)  # nor does a translation
    np.testing.assert_allclose(optical_strain(shift), 0.0, atol=1e-6)


def test_flow_without_contrib_names_the_extra(monkeypatch: pytest.MonkeyPatch, face_crop: np.ndarray) -> None:
    monkeypatch.delattr(cv2, "optflow", raising=False)
    with pytest.raises(NotInstalledError, match="opencv-contrib-python-headless"):
        flow_image(face_crop, face_crop)


@needs_optflow
def test_tvl1_flow_finds_a_known_shift(face_crop: np.ndarray) -> None:
    # the apex is the onset moved 2 px right and 1 px down: flow (2, 1) away from the borders
    matrix = np.float32([[1, 0, 2], [0, 1, 1]])
    apex = cv2.warpAffine(face_crop, matrix, (128, 128), borderMode=cv2.BORDER_REFLECT)
    flow = tvl1_flow(face_crop, apex)
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(2.0, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(1.0, abs=0.25)
    image = flow_image(face_crop, apex)
    assert image.shape == (128, 128, 3)
    np.testing.assert_allclose(image[..., 2], optical_strain(image[..., :2]))
    assert np.median(image[16:-16, 16:-16, 2]) < 0.1  # a pure shift barely strains


def test_spot_apex_picks_the_largest_change_in_the_region(face_crop: np.ndarray) -> None:
    frames = [face_crop.copy() for _ in range(6)]
    for k, strength in ((1, 10), (2, 30), (3, 60), (4, 25)):
        frames[k][40:60, 40:80] = np.clip(face_crop[40:60, 40:80].astype(int) + strength, 0, 255)
    frames[5][0:10, 0:128] = 0  # a big change outside the face region (e.g. the background)
    assert spot_apex(frames) == 5
    assert spot_apex(frames, region=(20, 20, 108, 108)) == 3
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    assert spot_apex(gray, region=(20, 20, 108, 108)) == 3
    assert spot_apex(frames[:1]) == 0


def test_spot_apex_bad_input(face_crop: np.ndarray) -> None:
    with pytest.raises(ValueError, match="at least one"):
        spot_apex([])
    with pytest.raises(ValueError, match="not inside"):
        spot_apex([face_crop, face_crop], region=(0, 0, 500, 10))
    with pytest.raises(ValueError, match="frame 1"):
        spot_apex([face_crop, face_crop[:64]])
