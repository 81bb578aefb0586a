"""Register a frame of a real video onto a reference frame of the same face, removing the head's rigid motion.

Every motion image or flow pamer computes from a real video compares two frames of one face after the head has
moved. One alignment per clip (`pamer.preprocess.face`) suits the datasets' short, steady clips, but in real
footage the apex - onset image then shows the face's outline moving. Registration removes that motion in two
steps, as the optical-flow spotting methods do (Yu, Cai et al., MEGC2022; code
CZP-1/Facial-Expression-Spotting-Based-on-Optical-Flow-Features-MindSpore, `cas_util.py`):

1. A similarity transform (rotation, scale, translation) fitted by least squares (Umeyama 1991) from the frame's
   stable landmarks to the reference's: the inner eye corners (39, 42) and the nose bridge (27-30) of dlib's 68
   points, which facial muscles barely move. (The CZP-1 code moves its crop box by the nose flow only; the
   landmark fit adds rotation and scale, which a talking, turning head has.)
2. A refinement from the Farneback optical flow of the nose-bridge region, whose own motion is nearly rigid: a
   similarity fitted to that region's flow is undone, twice (`REFINE_STEPS`). CZP-1 moves its crop by the nose
   region's mean flow while that exceeds 1 px, at most three times; a similarity is fitted here because dlib's
   landmarks move by about a pixel with the expression itself (a lip-corner pull shifts the nose and eye points of
   the fit), an error in rotation and scale that a translation cannot undo.

What is left is reported as the residual: the magnitude of the median flow of the nose region after registration,
in the frame's pixels.

Geometry: the face crop is the square box of CZP-1's `crop_picture`: centred horizontally on the midpoint of the
inner eye corners, 8 half-distances between them wide, from 3 half-distances above them to 5 below, resized to
`size` pixels; on a 256 px crop the inner eye corners are 64 px apart (`REFERENCE_EYE_PX`), the scale that the
spotting thresholds in pixels are quoted at.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pamer.errors import PamerError
from pamer.preprocess.face import detect_faces, landmarks, to_gray

# dlib's 68 points: inner eye corners and the nose bridge, which expressions barely move
STABLE_POINTS = (27, 28, 29, 30, 39, 42)
INNER_EYE_CORNERS = (39, 42)
NOSE_BRIDGE = (28, 29, 30)
# inner eye corners 64 px apart: CZP-1's 256 px crop is 8 half-distances wide
REFERENCE_EYE_PX = 64.0
# Farneback parameters of the CZP-1 and shengjianda/micro-expression-spot code (pyr_scale, levels, winsize,
# iterations, poly_n, poly_sigma, flags), for faces of about the reference scale
FARNEBACK = (0.5, 3, 15, 5, 7, 1.5, 0)
# the nose refinement: how many times a similarity is fitted to the nose region's flow, and its grid's spacing (px)
REFINE_STEPS = 2
# the face crop registration works in by default (the reference scale), and the smallest that works: below it the
# nose region is too small for Farneback's 15 px window (measured: at 64 px a still face "moves" by pixels)
CROP_SIZE = 256
MIN_CROP_SIZE = 128
NOSE_GRID_STEP = 2


class RegisterError(PamerError):
    """A frame that cannot be registered (no face in it or in the reference, a face crop too small); the message
    says which."""


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform (rotation, uniform scale, translation) taking `src` onto `dst`.

    Umeyama (1991), closed form; no reflection.

    Shape:
        src, dst: (N, 2) points, N >= 2. Returns a 2 x 3 matrix M with dst ~ src @ M[:, :2].T + M[:, 2].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var = (s**2).sum() / len(src)
    if var <= 0:
        raise ValueError("similarity: the source points all coincide")
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(sigma) @ sign) / var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - matrix[:, :2] @ mu_s
    return matrix


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2 x 3 affine matrix of `outer` applied after `inner`."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a 2 x 3 affine matrix."""
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def eye_distance(points: np.ndarray) -> float:
    """Distance between the inner eye corners (landmarks 39 and 42), in the points' pixels."""
    return float(np.linalg.norm(points[INNER_EYE_CORNERS[1]] - points[INNER_EYE_CORNERS[0]]))


def crop_matrix(points: np.ndarray, size: int) -> np.ndarray:
    """The 2 x 3 matrix from frame pixels to the `size` x `size` face crop of CZP-1 (see the module docstring)."""
    half = eye_distance(points) / 2
    if half < 2:
        raise RegisterError(f"the face's inner eye corners are {2 * half:.1f} px apart: too small to register")
    centre = (points[INNER_EYE_CORNERS[0]] + points[INNER_EYE_CORNERS[1]]) / 2
    left, top = centre[0] - 4 * half, centre[1] - 3 * half
    s = size / (8 * half)
    return np.array([[s, 0.0, -s * left], [0.0, s, -s * top]])


def nose_box(points_in_crop: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """The nose-bridge region (left, top, right, bottom in crop pixels): the box of landmarks 28-30 widened by a
    tenth of the crop sideways and a twentieth up and down (CZP-1: points 29-30 widened by 13 px on a 256 px crop,
    about a twentieth; wider sideways here so that Farneback's 15 px window sees texture beside the bridge)."""
    pts = points_in_crop[list(NOSE_BRIDGE)]
    left, top = pts.min(axis=0) - (size / 10, size / 20)
    right, bottom = pts.max(axis=0) + (size / 10, size / 20)
    left, top = max(int(left), 0), max(int(top), 0)
    right, bottom = min(int(np.ceil(right)), size), min(int(np.ceil(bottom)), size)
    if right - left < 8 or bottom - top < 8:
        raise RegisterError("the nose region falls outside the face crop")
    return left, top, right, bottom


def farneback(reference: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Farneback optical flow from grey `reference` to grey `frame` with the spotting code's parameters.

    Shape:
        returns (H, W, 2) float32: the (x, y) displacement of each reference pixel.
    """
    return cv2.calcOpticalFlowFarneback(reference, frame, None, *FARNEBACK)


@dataclass(frozen=True)
class Reference:
    """The frame every other frame is registered onto: its landmarks, its face crop and the crop's nose region.

    Attributes:
        points: the reference frame's 68 landmarks (frame pixels).
        matrix: frame pixels -> crop pixels (2 x 3).
        size: side of the crop in pixels.
        crop: the reference's grey face crop (size x size, uint8).
        nose: the nose-bridge box in crop pixels (left, top, right, bottom).
    """

    points: np.ndarray
    matrix: np.ndarray
    size: int
    crop: np.ndarray
    nose: tuple[int, int, int, int]

    @property
    def nose_grid(self) -> np.ndarray:
        """(N, 2) crop pixel coordinates (x, y) of the nose region's grid points (every `NOSE_GRID_STEP` pixels)."""
        left, top, right, bottom = self.nose
        ys, xs = np.mgrid[top:bottom:NOSE_GRID_STEP, left:right:NOSE_GRID_STEP]
        return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)

    @classmethod
    def from_frame(cls, frame: np.ndarray, points: np.ndarray, size: int = CROP_SIZE) -> Reference:
        """The reference of a frame (RGB or grey uint8) whose landmarks are `points` (68 x 2, frame pixels), with a
        face crop of `size` pixels (at least `MIN_CROP_SIZE`)."""
        if size < MIN_CROP_SIZE:
            raise RegisterError(f"registration needs a face crop of at least {MIN_CROP_SIZE} px, got {size}")
        matrix = crop_matrix(points, size)
        crop = cv2.warpAffine(to_gray(frame), matrix, (size, size), flags=cv2.INTER_LINEAR)
        return cls(points, matrix, size, crop, nose_box(map_points(matrix, points), size))

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel."""
        return float(np.hypot(*self.matrix[:, 0]))

    @property
    def to_reference_px(self) -> float:
        """Factor from crop pixels to pixels at the reference scale (inner eye corners `REFERENCE_EYE_PX` apart)."""
        return REFERENCE_EYE_PX / eye_distance(map_points(self.matrix, self.points))


@dataclass(frozen=True)
class Registration:
    """How one frame was registered onto a `Reference`.

    Attributes:
        matrix: frame pixels -> reference frame pixels (2 x 3): the landmark fit, then the nose refinement.
        shift: how far the nose refinement moved the nose tip (landmark 30) beyond the landmark fit, in reference
            frame pixels (x, y).
        residual_px: magnitude of the median nose-region flow left after registration, in reference frame pixels
            (None: not measured).
    """

    matrix: np.ndarray
    shift: tuple[float, float]
    residual_px: float | None


def register(
    reference: Reference, frame: np.ndarray, points: np.ndarray, refine: int = REFINE_STEPS, residual: bool = True
) -> tuple[np.ndarray, Registration]:
    """Register `frame` (whose 68 landmarks are `points`) onto `reference`.

    Args:
        reference: the frame to register onto.
        frame: RGB or grey uint8 frame.
        points: the frame's 68 landmarks in its pixels.
        refine: how many times to undo a similarity fitted to the nose region's flow (step 2 of the module
            docstring; 0: the landmark fit alone).
        residual: whether to measure the residual (one more flow of the nose region; spotting measures it from
            its own flow of the whole crop instead).

    Returns:
        The frame's grey face crop in the reference's crop geometry, and the registration.
    """
    fit = similarity(points[list(STABLE_POINTS)], reference.points[list(STABLE_POINTS)])
    gray = to_gray(frame)
    size = reference.size
    to_crop = compose(reference.matrix, fit)
    crop = cv2.warpAffine(gray, to_crop, (size, size), flags=cv2.INTER_LINEAR)
    for _ in range(refine):
        flow = nose_flow(reference, crop)
        # reference pixel p is seen at p + flow(p) in the crop: map the crop back onto the reference
        correction = similarity(reference.nose_grid + flow, reference.nose_grid)
        to_crop = compose(correction, to_crop)
        crop = cv2.warpAffine(gray, to_crop, (size, size), flags=cv2.INTER_LINEAR)
    left = None
    if residual:
        left = float(np.linalg.norm(np.median(nose_flow(reference, crop), axis=0))) / reference.scale
    # frame pixels -> reference frame pixels: the crop matrix undone after the registration into the crop
    matrix = compose(cv2.invertAffineTransform(reference.matrix), to_crop)
    shift = map_points(matrix, reference.points[[30]])[0] - map_points(fit, reference.points[[30]])[0]
    return crop, Registration(matrix, (float(shift[0]), float(shift[1])), left)


def nose_flow(reference: Reference, crop: np.ndarray) -> np.ndarray:
    """The flow from the reference crop to `crop` at the nose region's grid points (`Reference.nose_grid`).

    Shape:
        returns (N, 2) float64, the (x, y) displacement of each grid point.
    """
    left, top, right, bottom = reference.nose
    flow = farneback(reference.crop[top:bottom, left:right], crop[top:bottom, left:right])
    return flow[::NOSE_GRID_STEP, ::NOSE_GRID_STEP].reshape(-1, 2).astype(np.float64)


def face_points(frame: np.ndarray) -> np.ndarray | None:
    """The 68 landmarks of the largest face in `frame` (None when no face is found)."""
    boxes = detect_faces(frame)
    return landmarks(frame, boxes[0]) if boxes else None


def register_pair(reference: np.ndarray, frame: np.ndarray, size: int = CROP_SIZE) -> tuple[np.ndarray, Registration]:
    """`frame` warped onto `reference` (whole frames, RGB or grey uint8 of one size): the head's rigid motion
    between them removed, so that `registered - reference` shows the face's muscles, not its outline.

    Args:
        reference: the reference frame (a clip's onset).
        frame: the frame to register (e.g. the apex).
        size: side of the face crop the nose refinement works on (the reference scale is 256).

    Returns:
        The registered frame (same shape and type as `frame`) and its registration.

    Raises:
        RegisterError: no face in `reference` or in `frame`.
    """
    if reference.shape[:2] != frame.shape[:2]:
        raise RegisterError(f"frames of sizes {reference.shape[:2]} and {frame.shape[:2]}: expected one size")
    ref_points = face_points(reference)
    if ref_points is None:
        raise RegisterError("no face found in the reference frame")
    points = face_points(frame)
    if points is None:
        raise RegisterError("no face found in the frame to register")
    _, registration = register(Reference.from_frame(reference, ref_points, size), frame, points)
    h, w = reference.shape[:2]
    registered = cv2.warpAffine(
        frame, registration.matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return registered, registration
