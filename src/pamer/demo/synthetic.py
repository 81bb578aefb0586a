"""Synthetic micro-expressions on real faces: the offline demo set, written as a CASME II tree and coding sheet.

Each subject is a real face photo (matplotlib's `grace_hopper.jpg`, scikit-image's astronaut when scikit-image is
installed, or the user's own photos), or an identity variant of one (landmark-driven shape change, skin tone,
lighting, mirror image) when there are fewer photos than subjects. A clip is a short frame sequence
onset..apex..offset; its apex carries a subtle, local deformation modelled on FACS action units at
micro-expression scale (a few pixels on a 256-pixel-wide face), placed by dlib's 68 landmarks and applied as a
smooth displacement field with `cv2.remap`. Every clip also gets a random intensity, a small global head motion,
an illumination drift and sensor noise, so that telling the classes apart is not trivial.

`generate` writes the clips as CASME II ships them (`CASME2-coding-synthetic.xlsx` with the real columns, and
`sub01/EP01_01/img46.jpg` frame folders), so the demo goes through the same reader, face alignment, LOSO and
report code as the real dataset.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
from openpyxl import Workbook

from pamer.data import casme2
from pamer.errors import PamerError
from pamer.frames import IMAGE_SUFFIXES, ImageError, is_junk, read_rgb
from pamer.outputs import write_problem
from pamer.preprocess.face import detect_faces
from pamer.preprocess.face import landmarks as face_landmarks

SHEET_NAME = "CASME2-coding-synthetic.xlsx"
MANIFEST_NAME = "synthetic.json"
REFERENCE_FACE_PX = 256  # displacements are given in pixels on a face this wide (jaw landmark 0 to 16)


class SyntheticError(PamerError):
    """A bad generator setting, faces folder or output folder (the message names the value or path)."""


@dataclass(frozen=True)
class Handle:
    """One moving spot of an action unit: centred on the mean of `points` (68-point landmark indices), moving along
    `direction` = (outward, upward) in the face's own frame, over a disc of `radius` (a fraction of face width).

    `mirror` lists the same points on the other half of the face: the handle is applied on both sides, with the
    outward direction mirrored. An empty `mirror` means a single handle on the midline."""

    points: tuple[int, ...]
    mirror: tuple[int, ...]
    direction: tuple[float, float]
    radius: float
    weight: float = 1.0


# FACS action units as landmark-anchored displacement handles. Landmarks (iBUG 68): brows 17-21 (subject's right,
# image left; 17 outer) and 22-26 (26 outer); eyes 36-41 (37-38 upper lid, 40-41 lower lid) and 42-47 (43-44
# upper, 46-47 lower); nose 27-35 (31/35 alae); mouth corners 48/54, lower lip centre 57; chin 8.
ACTION_UNITS: dict[str, tuple[Handle, ...]] = {
    "1": (Handle((20, 21), (23, 22), (0.0, 1.0), 0.09),),  # inner brow raiser
    "2": (Handle((17, 18, 19), (26, 25, 24), (0.0, 1.0), 0.09),),  # outer brow raiser
    "4": (Handle((20, 21), (23, 22), (-0.5, -1.0), 0.09),),  # brow lowerer: inner brows down and together
    "5": (Handle((37, 38), (44, 43), (0.0, 1.0), 0.04),),  # upper lid raiser
    "6": (  # cheek raiser: the cheek and the lower lid move up
        Handle((1, 31, 41, 48), (15, 35, 46, 54), (0.2, 1.0), 0.10),
        Handle((40, 41), (47, 46), (0.0, 1.0), 0.04, 0.6),
    ),
    "9": (Handle((31, 32), (35, 34), (0.0, 1.0), 0.05),),  # nose wrinkler: alae up
    "12": (Handle((48,), (54,), (0.8, 0.6), 0.07),),  # lip corner puller: out and up
    "14": (Handle((48,), (54,), (-0.6, 0.0), 0.05),),  # dimpler: corners tighten inward
    "15": (Handle((48,), (54,), (0.2, -1.0), 0.07),),  # lip corner depressor
    "17": (Handle((57, 8), (), (0.0, 1.0), 0.09),),  # chin raiser: chin boss pushes the lower lip up
}

# Emotion names as CASME II's sheet spells them (so the real reader and its protocols read them) -> action units.
# CASME II codes most disgust clips with AU4, and others with AU4 alone, as here.
EMOTION_AUS: dict[str, tuple[str, ...]] = {
    "happiness": ("6", "12"),
    "surprise": ("1", "2", "5"),
    "disgust": ("4", "15"),
    "repression": ("14", "17"),
    "others": ("4",),
}
# 3 classes: read with the MEGC2019 mapping they are positive, surprise and negative; 5 classes: CASME II's own.
CLASS_SETS: dict[int, tuple[str, ...]] = {
    3: ("happiness", "surprise", "disgust"),
    5: ("happiness", "surprise", "disgust", "repression", "others"),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """How many clips to make and how hard to make them. Pixel values are on a 256-pixel-wide face."""

    subjects: int = 6
    clips_per_class: int = 6
    classes: int = 3
    face_px: int = 256  # face width (jaw landmark 0 to 16) in the written frames
    amplitude_px: tuple[float, float] = (1.5, 4.0)  # apex peak displacement, drawn uniformly per clip
    asymmetry: float = 0.2  # each side's strength is scaled by 1 +- up to this
    head_shift_px: float = 0.6  # std of the head's translation, onset to offset
    head_rotation_deg: float = 0.3  # std of its in-plane rotation
    illumination: float = 0.03  # largest relative brightness drift, onset to offset
    noise: float = 1.5  # std of the sensor noise, in grey levels
    frames: tuple[int, int] = (10, 16)  # number of frames onset..offset, drawn per clip
    jpeg_quality: int = 95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.classes not in CLASS_SETS:
            raise SyntheticError(f"classes must be one of {sorted(CLASS_SETS)}, got {self.classes}")
        if self.subjects < 2:
            raise SyntheticError(f"subjects must be at least 2 (leave-one-subject-out), got {self.subjects}")
        if self.clips_per_class < 1:
            raise SyntheticError(f"clips_per_class must be at least 1, got {self.clips_per_class}")
        lo, hi = self.amplitude_px
        if not 0 < lo <= hi <= 8:
            raise SyntheticError(f"amplitude_px must satisfy 0 < low <= high <= 8, got {self.amplitude_px}")
        if not 3 <= self.frames[0] <= self.frames[1]:
            raise SyntheticError(f"frames must satisfy 3 <= low <= high, got {self.frames}")
        if self.face_px < 64:
            raise SyntheticError(f"face_px must be at least 64, got {self.face_px}")

    @property
    def emotions(self) -> tuple[str, ...]:
        return CLASS_SETS[self.classes]


@dataclass
class Face:
    """A face photo cropped to a square canvas, with its 68 landmarks (x, y) in canvas pixels."""

    name: str
    image: np.ndarray  # H x W x 3 uint8 RGB
    landmarks: np.ndarray  # 68 x 2 float

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.landmarks[16] - self.landmarks[0]))


@dataclass
class Clip:
    """One rendered clip: its frames and where onset and apex are among them, with the parameters drawn for it."""

    frames: list[np.ndarray]
    apex: int  # index into frames; frames[0] is the onset and frames[-1] the offset
    displacement: np.ndarray  # H x W x 2 float32: how far each pixel's content moves, onset to apex (no head motion)
    params: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# faces


def _landmarks(image: np.ndarray) -> np.ndarray | None:
    """The 68 landmarks of the largest face dlib finds, or None."""
    boxes = detect_faces(image)
    return face_landmarks(image, boxes[0]) if boxes else None


def crop_face(name: str, image: np.ndarray, landmarks: np.ndarray, face_px: int) -> Face:
    """Scale and shift a photo so the face is `face_px` wide and centred on a square canvas 1.5 x as wide."""
    canvas = int(round(1.5 * face_px))
    width = np.linalg.norm(landmarks[16] - landmarks[0])
    scale = face_px / width
    centre = landmarks.mean(axis=0)
    # the landmark centroid sits a little below the middle of the head: leave room for the forehead
    target = np.array([canvas / 2, canvas * 0.55])
    matrix = np.array([[scale, 0, target[0] - scale * centre[0]], [0, scale, target[1] - scale * centre[1]]])
    out = cv2.warpAffine(image, matrix, (canvas, canvas), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return Face(name, out, landmarks * scale + matrix[:, 2])


def _photo_faces(path: Path, min_px: int = 80) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every face of at least `min_px` (jaw width) in one photo: (RGB image, landmarks), largest first; none for a
    file that is not a readable image."""
    try:
        image = read_rgb(path)
    except ImageError:
        return
    found = [face_landmarks(image, box) for box in detect_faces(image)]
    for pts in sorted(found, key=lambda p: -np.linalg.norm(p[16] - p[0])):
        if np.linalg.norm(pts[16] - pts[0]) >= min_px:
            yield image, pts


def builtin_photos() -> list[Path]:
    """Face photos that ship with installed packages: matplotlib's Grace Hopper; scikit-image's astronaut if present."""
    photos = [Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]
    try:
        import skimage.data  # optional: only when the user happens to have scikit-image

        astronaut = Path(skimage.data.__file__).parent / "astronaut.png"
        if astronaut.is_file():
            photos.append(astronaut)
    except ImportError:
        pass
    return photos


def load_faces(faces_dir: str | Path | None = None, face_px: int = 256) -> tuple[list[Face], list[str]]:
    """The base faces: every usable face in `faces_dir` (or the built-in photos when None), cropped to `face_px`.

    Returns:
        The faces, and one line per photo that was skipped (unreadable, or no face of at least 80 pixels).

    Raises:
        SyntheticError: `faces_dir` is not a folder or holds no usable face.
    """
    if faces_dir is None:
        photos = builtin_photos()
    else:
        faces_dir = Path(faces_dir)
        if not faces_dir.is_dir():
            raise SyntheticError(f"faces folder {faces_dir} does not exist or is not a folder")
        photos = sorted(p for p in faces_dir.iterdir() if not is_junk(p.name) and p.suffix.lower() in IMAGE_SUFFIXES)
    faces: list[Face] = []
    skipped: list[str] = []
    for path in photos:
        found = list(_photo_faces(path))
        if not found:
            skipped.append(f"{path}: unreadable, or no face of at least 80 pixels found")
        for k, (image, pts) in enumerate(found):
            faces.append(crop_face(path.stem if k == 0 else f"{path.stem}_{k}", image, pts, face_px))
    if not faces:
        where = faces_dir if faces_dir is not None else "the built-in photos"
        raise SyntheticError(
            f"no usable face in {where}: expected .jpg/.png photos with a frontal face at least 80 pixels wide"
        )
    return faces, skipped


# ---------------------------------------------------------------------------------------------------------------
# displacement fields


def _face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's own axes in image coordinates: `right` (image left to right along the eyes), `up`, and width."""
    left_eye, right_eye = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    right = (right_eye - left_eye) / np.linalg.norm(right_eye - left_eye)
    up = np.array([right[1], -right[0]])  # image y grows downwards
    return right, up, float(np.linalg.norm(landmarks[16] - landmarks[0]))


def au_handles(
    landmarks: np.ndarray, aus: Sequence[str], side_weights: tuple[float, float] = (1.0, 1.0)
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The displacement handles of `aus` on one face: (centre xy, unit-strength displacement xy, radius in pixels).

    `side_weights` scale the image-left and image-right halves (micro-expressions are often asymmetric).
    """
    right, up, width = _face_frame(landmarks)
    handles = []
    for au in aus:
        if au not in ACTION_UNITS:
            raise SyntheticError(f"unknown action unit {au!r}; known: {', '.join(ACTION_UNITS)}")
        for h in ACTION_UNITS[au]:
            # image-left half: "outward" points to image left
            sides = [(h.points, -right, side_weights[0])]
            if h.mirror:
                sides.append((h.mirror, right, side_weights[1]))
            else:
                sides = [(h.points, right, 0.5 * sum(side_weights))]
            for points, outward, w in sides:
                centre = landmarks[list(points)].mean(axis=0)
                vector = h.weight * w * (h.direction[0] * outward + h.direction[1] * up)
                handles.append((centre, vector, h.radius * width))
    return handles


def field(shape: tuple[int, int], handles: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """The displacement field of `handles` over an image of `shape`: a sum of smooth bumps (1 - d^2/r^2)^3 times
    each handle's vector, exactly zero farther than r from every handle centre.

    Shape:
        returns (H, W, 2): the (x, y) displacement of each pixel.
    """
    h, w = shape
    out = np.zeros((h, w, 2), dtype=np.float64)
    for centre, vector, radius in handles:
        # only the handle's bounding box can be non-zero
        x0, y0 = (int(max(np.floor(c - radius), 0)) for c in centre)
        x1, y1 = int(min(np.ceil(centre[0] + radius) + 1, w)), int(min(np.ceil(centre[1] + radius) + 1, h))
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        q = np.clip(1.0 - ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / radius**2, 0.0, None) ** 3
        out[y0:y1, x0:x1] += q[..., None] * vector
    return out


def _grid(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def warp(image: np.ndarray, displacement: np.ndarray | None, head: np.ndarray | None = None) -> np.ndarray:
    """Move the face by `displacement` (H x W x 2, pixels), then the whole head by the 2 x 3 affine `head`.

    A backward map: output pixel x samples the input at head^-1(x) - D(x). For the small smooth fields used here
    (a few pixels, varying over tens of pixels) this moves content by D to well under a tenth of a pixel. Pixels
    where D is zero and with no head motion are copied unchanged.
    """
    grid = _grid(image.shape[:2])
    if head is not None:
        inv = cv2.invertAffineTransform(head).astype(np.float32)
        grid = grid @ inv[:, :2].T + inv[:, 2]
    if displacement is not None:
        grid = grid - displacement.astype(np.float32)
    return cv2.remap(image, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ---------------------------------------------------------------------------------------------------------------
# subjects and clips


def identity_variant(face: Face, rng: np.random.Generator, name: str) -> Face:
    """A new-looking person from `face`: mirror image, face shape (eye spacing, mouth and jaw width, face length),
    skin tone and lighting. Its landmarks are detected again, as the alignment step will see them."""
    image, pts = face.image, face.landmarks
    if rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
        pts = pts.copy()
        pts[:, 0] = image.shape[1] - 1 - pts[:, 0]
        pts = pts[_MIRROR]
    right, up, width = _face_frame(pts)
    spread = 0.04  # shape changes of up to a few percent of the face width
    handles = []
    # paired points move apart or together, midline points up or down
    for points, mirror, radius in (
        ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), 0.14),  # eye spacing
        ((48,), (54,), 0.12),  # mouth width
        ((3, 4, 5), (13, 12, 11), 0.22),  # jaw width
        ((7, 8, 9), (), 0.25),  # face length
        ((31, 32, 33, 34, 35), (), 0.10),  # nose length
    ):
        amount = rng.normal(0.0, spread) * width
        if mirror:
            for idx, sign in ((points, -1.0), (mirror, 1.0)):
                handles.append((pts[list(idx)].mean(axis=0), sign * amount * right, radius * width))
        else:
            handles.append((pts[list(points)].mean(axis=0), amount * up, radius * width))
    image = warp(image, field(image.shape[:2], handles))
    # skin tone: per-channel gains and a gamma; lighting: a linear ramp across the face from a random side
    img = image.astype(np.float32) / 255.0
    img = img ** rng.uniform(0.8, 1.25)
    img *= rng.uniform([0.85, 0.85, 0.8], [1.1, 1.05, 1.05]).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    grid = _grid(image.shape[:2])
    ramp = ((grid - grid.mean(axis=(0, 1))) @ np.array([np.cos(angle), np.sin(angle)])) / image.shape[1]
    img *= (1.0 + rng.uniform(0.2, 0.5) * ramp)[..., None].astype(np.float32)
    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    landmarks = _landmarks(image)
    if landmarks is None:
        raise SyntheticError(f"identity variant {name} of {face.name}: no face found after the change")
    return Face(name, image, landmarks)


# the 68-point index of each landmark's mirror image
_MIRROR = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def make_subjects(faces: Sequence[Face], n: int, seed: int) -> list[Face]:
    """`n` subjects: each base face once, then identity variants of them in turn."""
    subjects = []
    for i in range(n):
        base = faces[i % len(faces)]
        name = f"{i + 1:02d}"
        if i < len(faces):
            subjects.append(Face(name, base.image, base.landmarks))
            continue
        # a variant whose face dlib cannot find again is redrawn: rare, and depends only on the seed
        for attempt in range(10):
            rng = np.random.default_rng([seed, 1, i, attempt])
            try:
                subjects.append(identity_variant(base, rng, name))
                break
            except SyntheticError:
                continue
        else:
            raise SyntheticError(f"could not make a detectable identity variant of {base.name} for subject {name}")
    return subjects


def _profile(n: int, apex: int) -> np.ndarray:
    """Expression strength per frame: 0 at onset, smoothly to 1 at the apex, then back down to ~0.2 at offset."""
    t = np.arange(n, dtype=np.float64)
    rise = np.clip(t / max(apex, 1), 0, 1)
    fall = np.clip((t - apex) / max(n - 1 - apex, 1), 0, 1)
    smooth = lambda x: x * x * (3 - 2 * x)  # noqa: E731
    return np.where(t <= apex, smooth(rise), 1.0 - 0.8 * smooth(fall))


def render_clip(
    face: Face,
    aus: Sequence[str],
    rng: np.random.Generator,
    config: SyntheticConfig,
) -> Clip:
    """Render one clip of `face` showing `aus`: onset (frame 0) .. apex .. offset (last frame)."""
    n = int(rng.integers(config.frames[0], config.frames[1] + 1))
    apex = int(rng.integers(max(1, int(0.3 * n)), int(0.6 * n) + 1))
    side = 1.0 + rng.uniform(-config.asymmetry, config.asymmetry, size=2)
    handles = au_handles(face.landmarks, aus, (float(side[0]), float(side[1])))
    amplitude = float(rng.uniform(*config.amplitude_px))
    scale = face.width / REFERENCE_FACE_PX
    unit = field(face.image.shape[:2], handles)
    # scale the field so its largest displacement is the drawn amplitude
    unit *= amplitude * scale / np.linalg.norm(unit, axis=-1).max()
    shift = rng.normal(0.0, config.head_shift_px * scale, size=2)
    rotation = float(rng.normal(0.0, config.head_rotation_deg))
    gain = float(rng.uniform(-config.illumination, config.illumination))
    centre = tuple(float(c) for c in face.landmarks.mean(axis=0))
    profile = _profile(n, apex)
    frames = []
    for i in range(n):
        drift = i / (n - 1)  # head motion and illumination drift steadily through the clip
        head = None
        if shift.any() or rotation:
            head = cv2.getRotationMatrix2D(centre, rotation * drift, 1.0)
            head[:, 2] += shift * drift
        frame = warp(face.image, profile[i] * unit if profile[i] else None, head).astype(np.float32)
        frame *= np.float32(1.0 + gain * drift)
        if config.noise:
            frame += np.float32(config.noise) * rng.standard_normal(frame.shape, dtype=np.float32)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    params = {
        "aus": "+".join(aus),
        "amplitude_px": round(amplitude, 3),
        "side_weights": [round(float(s), 3) for s in side],
        "head_shift_px": [round(float(s), 3) for s in shift],
        "head_rotation_deg": round(rotation, 3),
        "illumination": round(gain, 4),
    }
    return Clip(frames, apex, unit.astype(np.float32), params)


# ---------------------------------------------------------------------------------------------------------------
# the CASME II-style tree


def _write_sheet(path: Path, rows: list[tuple]) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(list(casme2.SHEET_HEADER))
    for row in rows:
        ws.append(list(row))
    wb.save(path)


def generate(
    root: str | Path,
    config: SyntheticConfig | None = None,
    faces_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic CASME II-style dataset to `root` (the sheet + `subNN/EPxx_yy/img<n>.jpg` folders).

    Deterministic for `config.seed` and the faces. If `root` already holds a complete set made with the same
    configuration and faces it is kept as is; otherwise it is written to a temporary folder beside `root` and moved
    into place at the end, so an interrupted run never leaves a half-written set that looks complete.

    Args:
        root: the dataset folder to create.
        config: sizes and difficulty; the defaults make the demo set.
        faces_dir: a folder of face photos to use instead of the built-in ones.
        progress: called with (clips done, clips in all) after each clip.

    Returns:
        `root`, ready for `pamer.data.read("casme2", root, ...)`.

    Raises:
        SyntheticError: a faces folder without a usable face, or a `root` that holds something else or cannot be
            written.
    """
    config = config or SyntheticConfig()
    root = Path(root)
    faces, skipped = load_faces(faces_dir, config.face_px)
    wanted = {
        "config": asdict(config),
        "faces": [f.name for f in faces],
        "faces_dir": str(faces_dir) if faces_dir is not None else None,
    }
    manifest = root / MANIFEST_NAME
    if manifest.is_file() and (root / SHEET_NAME).is_file():
        done = json.loads(manifest.read_text())
        if {k: done.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
            return root
    if root.exists() and any(root.iterdir()) and not manifest.is_file():
        raise SyntheticError(f"{root} exists and is not a synthetic set made by pamer: choose an empty or new folder")
    problem = write_problem(root.parent, create=True)
    if problem is not None:
        raise SyntheticError(f"cannot write the synthetic set {root}: {problem}")

    subjects = make_subjects(faces, config.subjects, config.seed)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows, clips = [], []
    total = config.subjects * config.clips_per_class * config.classes
    done_count = 0
    for s, subject in enumerate(subjects):
        # clip order within a subject is shuffled, so the clip name does not give the class away
        order = [e for e in config.emotions for _ in range(config.clips_per_class)]
        np.random.default_rng([config.seed, 2, s]).shuffle(order)
        for k, emotion in enumerate(order):
            rng = np.random.default_rng([config.seed, 3, s, k])
            clip = render_clip(subject, EMOTION_AUS[emotion], rng, config)
            onset = int(rng.integers(1, 120))
            name = f"EP{k + 1:02d}_{int(rng.integers(1, 10)):02d}"
            folder = tmp / f"sub{subject.name}" / name
            folder.mkdir(parents=True)
            for i, frame in enumerate(clip.frames):
                path = folder / f"img{onset + i}.jpg"
                image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]):
                    raise SyntheticError(f"cannot write the frame {path} (the disk full?)")
            offset = onset + len(clip.frames) - 1
            rows.append((subject.name, name, None, onset, onset + clip.apex, offset, None, clip.params["aus"], emotion))
            clips.append({"subject": subject.name, "clip": name, "emotion": emotion, **clip.params})
            done_count += 1
            if progress is not None:
                progress(done_count, total)
    _write_sheet(tmp / SHEET_NAME, rows)
    (tmp / MANIFEST_NAME).write_text(json.dumps({**wanted, "skipped_photos": skipped, "clips": clips}, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def skipped_photos(root: str | Path) -> list[str]:
    """The photos of a set's faces folder that `generate` could not use (one line each, as `load_faces` gives them),
    as its manifest records them."""
    return json.loads((Path(root) / MANIFEST_NAME).read_text()).get("skipped_photos", [])


__all__ = [
    "ACTION_UNITS",
    "CLASS_SETS",
    "EMOTION_AUS",
    "Clip",
    "Face",
    "SyntheticConfig",
    "SyntheticError",
    "au_handles",
    "builtin_photos",
    "field",
    "generate",
    "load_faces",
    "make_subjects",
    "render_clip",
    "skipped_photos",
    "warp",
]
