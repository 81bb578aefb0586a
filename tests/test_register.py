"""Registration (`pamer.preprocess.register`): the similarity fit by hand, a known head motion undone, and the
motion image of real videos (../shared/datasets/videos) showing less of the head's outline after registration."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from _spotting import Event, expression_frames
from pamer.preprocess.register import RegisterError, face_points, register_pair, similarity

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "videos"


def test_similarity_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (6, 2))
    angle, scale, shift = np.deg2rad(7.0), 1.1, np.array([3.0, -2.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rotation.T + shift
    matrix = similarity(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-12)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-10)


def test_similarity_of_two_points_is_exact_and_refuses_one() -> None:
    # (0,0)->(1,1), (1,0)->(1,3): a quarter turn anticlockwise (y down) scaled by 2, then a shift
    matrix = similarity(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 3.0]]))
    np.testing.assert_allclose(matrix, [[0.0, -2.0, 1.0], [2.0, 0.0, 1.0]], atol=1e-12)
    with pytest.raises(ValueError, match="coincide"):
        similarity(np.zeros((3, 2)), np.ones((3, 2)))


def _face() -> np.ndarray:
    return expression_frames(1, (), drift_px=0, drift_deg=0, noise=0)[0]


def test_a_known_head_motion_is_undone() -> None:
    face = _face()
    h, w = face.shape[:2]
    centre = (w / 2, h / 2)
    head = cv2.getRotationMatrix2D(centre, 4.0, 1.04)
    head[:, 2] += (5.0, -3.0)
    moved = cv2.warpAffine(face, head, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    registered, registration = register_pair(face, moved)
    # the registration undoes the head motion: every landmark of the face (160 px wide) goes back home
    points = face_points(face)
    mapped = points @ head[:, :2].T + head[:, 2]  # where the head motion took them
    back = mapped @ registration.matrix[:, :2].T + registration.matrix[:, 2]
    assert np.abs(back - points).max() < 0.25
    assert registration.residual_px < 0.1
    inside = cv2.fillConvexPoly(np.zeros((h, w), np.uint8), cv2.convexHull(points.astype(np.int32)), 1) > 0
    before = np.abs(moved.astype(float) - face).mean(axis=2)[inside].mean()
    after = np.abs(registered.astype(float) - face).mean(axis=2)[inside].mean()
    assert after < 0.2 * before


def test_an_expression_is_kept_and_a_still_head_left_alone() -> None:
    # no head motion: registration must not invent any, nor remove the lip-corner pull
    onset, apex = expression_frames(8, (Event(1, 7, 7, ("12",), 10.0),), drift_px=0, drift_deg=0, noise=0)[::7]
    registered, registration = register_pair(onset, apex)
    points = face_points(onset)
    moved = points @ registration.matrix[:, :2].T + registration.matrix[:, 2] - points
    assert np.abs(moved).max() < 0.1  # of a pixel, anywhere on the face
    assert np.abs(registered.astype(float) - apex).mean() < 0.5


def test_no_face_is_refused() -> None:
    face = _face()
    blank = np.full_like(face, 128)
    with pytest.raises(RegisterError, match="no face found in the reference frame"):
        register_pair(blank, face)
    with pytest.raises(RegisterError, match="no face found in the frame to register"):
        register_pair(face, blank)
    with pytest.raises(RegisterError, match="one size"):
        register_pair(face, face[:-2])


@pytest.mark.parametrize("name", ["single_face.mp4", "WolfgangLanger_Pexels.mp4"])
def test_real_video_motion_images_show_less_outline_after_registration(name: str) -> None:
    """Onset and a frame a third of a second later, at twelve places in a real video with natural head motion: the
    motion energy over the face, at the nose and on the face's outline drops once the head's motion is removed (on
    average: where the head turns out of the image plane or a hand crosses the face, the outline can move more)."""
    if not VIDEOS.is_dir():
        pytest.skip(f"real face videos not found at {VIDEOS} (../shared is absent outside CI)")
    capture = cv2.VideoCapture(str(VIDEOS / name))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    energies = []
    for i in np.linspace(0, len(frames) - 9, 12).astype(int):
        onset, apex = frames[i], frames[i + 8]
        points = face_points(onset)
        face = cv2.fillConvexPoly(np.zeros(onset.shape[:2], np.uint8), cv2.convexHull(points[:27].astype(np.int32)), 1)
        nose = cv2.fillConvexPoly(np.zeros_like(face), cv2.convexHull(points[27:36].astype(np.int32)), 1)
        outline = cv2.dilate(face, np.ones((15, 15))) - cv2.erode(face, np.ones((15, 15)))
        registered, registration = register_pair(onset, apex)
        assert registration.residual_px < 0.5
        before = np.abs(apex.astype(float) - onset).mean(axis=2)
        after = np.abs(registered.astype(float) - onset).mean(axis=2)
        energies.append([[d[m > 0].mean() for m in (face, nose, outline)] for d in (before, after)])
    before, after = np.mean(energies, axis=0)
    assert (after < 0.8 * before).all(), (before, after)  # face, nose, outline
    assert after[1] < 0.5 * before[1]  # the nose, nearly rigid, most of all


def test_faces_dir_photo_registers_onto_itself(faces_dir: Path) -> None:
    from pamer.frames import read_rgb

    photo = next(p for p in sorted(faces_dir.iterdir()) if p.suffix.lower() in (".jpg", ".png"))
    image = read_rgb(photo)
    if face_points(image) is None:
        pytest.skip(f"no face found in {photo}")
    _, registration = register_pair(image, image)
    np.testing.assert_allclose(registration.matrix, [[1, 0, 0], [0, 1, 0]], atol=0.01)
    assert registration.residual_px < 0.01
