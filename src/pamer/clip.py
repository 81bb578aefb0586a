"""A user's clip: a video file or a folder of frames, decoded to RGB frames under a memory limit.

Frames are named, numbered and decoded as `pamer prepare` reads a dataset's frames (`pamer.frames`), so a clip
given to `pamer.predict` is read as the training clips were.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pamer.errors import PamerError

# one decoder and one frame-number rule for training (pamer prepare) and prediction
from pamer.frames import ImageError, frame_files, read_rgb

__all__ = [
    "MAX_CLIP_BYTES",
    "Clip",
    "ClipError",
    "read_clip",
    "read_frame_folder",
    "read_video",
    "shortfall_warning",
]

# the decoded frames of one clip are held in memory; a clip is seconds around one expression, not a whole film
MAX_CLIP_BYTES = 2 * 2**30


class ClipError(PamerError):
    """A clip that cannot be read, or a frame number it does not hold (the message names the clip or file)."""


@dataclass
class Clip:
    """The frames of a user's clip, in time order.

    `numbers[i]` is the frame number of `frames[i]`: the number in the file name for a folder of frames, the
    0-based position for a video. `onset`/`apex` given to `Recognizer.predict` are such frame numbers. `fps` is the
    video's stated frame rate (None for frames, whose rate nothing states). `warnings` names what was read but is
    doubtful: a video that ends before the frame count it states (`shortfall_warning`).
    """

    frames: list[np.ndarray]  # uint8 RGB, H x W x 3
    numbers: list[int]
    names: list[str]
    source: str
    decode_s: float = 0.0
    fps: float | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    def index(self, number: int, what: str) -> int:
        """Position of frame `number` in the clip (a `ClipError` naming the clip and its range if absent)."""
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)):
            raise ClipError(f"{what} must be an integer frame number, got {number!r}")
        try:
            return self.numbers.index(int(number))
        except ValueError:
            pass
        first, last = self.numbers[0], self.numbers[-1]
        if first <= number <= last:
            raise ClipError(f"{what} {number} is not a frame of {self.source}: no frame numbered {number}")
        raise ClipError(f"{what} {number} is out of range for {self.source}: its frames are {first}..{last}")


def _video_rgb(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ClipError(f"frame {name}: expected an 8-bit BGR video frame, got {image.dtype} {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _too_long(source: str, frames: int, frame: np.ndarray, max_bytes: int) -> ClipError:
    height, width = frame.shape[:2]
    return ClipError(
        f"{source} is too long to predict on: {frames} frames of {width}x{height} need more than "
        f"{max_bytes / 2**30:.2g} GiB decoded; cut the clip to the seconds around the expression"
    )


def shortfall_warning(path: str | Path, stated: int, decoded: int) -> str | None:
    """A warning when OpenCV decoded fewer frames of a video than the file states, naming the frames not read.

    Mostly a truncated or damaged file; but a sound file can state a few frames more than its stream yields (the
    real `no_face.mp4` of the test videos states 98 and decodes 95), so the warning says both. A shortfall of one
    frame is let pass: containers without an index (Matroska, WebM) state a count estimated from their duration.
    """
    if stated - decoded <= 1:
        return None
    return (
        f"video {path} states {stated} frames but only its first {decoded} could be decoded (a truncated or "
        f"damaged file, or a header counting frames its stream does not hold): frames {decoded}-{stated - 1} were "
        "not read"
    )


def read_frame_folder(folder: str | Path, max_bytes: int = MAX_CLIP_BYTES) -> Clip:
    """Read a folder of frame images, sorted by the frame number in their names (not by listing order).

    Frames are named, numbered and decoded exactly as `pamer prepare` reads a dataset's frames (`pamer.frames`):
    the number ends the file name's stem, EXIF orientation is applied, 16-bit images are scaled to 8 bits. Files
    that are not images (by suffix: .jpg, .png, .bmp, ...) and junk (`._img46.jpg`, `Thumbs.db`) are ignored.

    Raises:
        ClipError: missing folder, no image in it, a name without a number, two files with the same
            number, an image that cannot be decoded (the message names the file), frames of different sizes,
            or more than `max_bytes` of decoded frames.
    """
    start = time.perf_counter()
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ClipError(f"frame folder {folder} {what}")
    try:
        numbered = frame_files(folder)
    except ImageError as err:
        raise ClipError(str(err)) from None
    frames = []
    for _, path in numbered:
        if frames and len(numbered) * frames[0].nbytes > max_bytes:
            raise _too_long(f"frame folder {folder}", len(numbered), frames[0], max_bytes)
        try:
            frames.append(read_rgb(path))
        except ImageError as err:
            raise ClipError(f"frame {err}") from None
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ClipError(f"frame folder {folder}: frames differ in size ({sorted(shapes)}); expected one size")
    return Clip(
        frames=frames,
        numbers=[n for n, _ in numbered],
        names=[p.name for _, p in numbered],
        source=str(folder),
        decode_s=time.perf_counter() - start,
    )


def read_video(path: str | Path, max_bytes: int = MAX_CLIP_BYTES) -> Clip:
    """Decode every frame of a video file with OpenCV; frame numbers are 0-based positions.

    Raises:
        ClipError: missing file, a file OpenCV cannot decode (no frame comes out), or more than `max_bytes`
            of decoded frames.
    """
    start = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        what = (
            "is a folder, not a video file (use --frames for a folder of frames)" if path.is_dir() else "does not exist"
        )
        raise ClipError(f"video {path} {what}")
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    try:
        while capture.isOpened():
            ok, image = capture.read()
            if not ok:
                break
            frames.append(_video_rgb(image, f"{path}#{len(frames)}"))
            if len(frames) * frames[0].nbytes > max_bytes:
                raise _too_long(f"video {path}", len(frames), frames[0], max_bytes)
    finally:
        capture.release()
    if not frames:
        raise ClipError(f"video {path} cannot be read: OpenCV decoded no frame from it (corrupt or unsupported)")
    shortfall = shortfall_warning(path, stated, len(frames))
    return Clip(
        frames=frames,
        numbers=list(range(len(frames))),
        names=[f"frame {i}" for i in range(len(frames))],
        source=str(path),
        decode_s=time.perf_counter() - start,
        fps=float(fps) if math.isfinite(fps) and fps > 0 else None,
        warnings=[] if shortfall is None else [shortfall],
    )


def read_clip(source: str | Path | Clip | Sequence[np.ndarray]) -> Clip:
    """A `Clip` from a video file, a folder of frames, or a sequence of uint8 RGB arrays (numbered 0..N-1)."""
    if isinstance(source, Clip):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ClipError(f"clip {path} does not exist (expected a video file or a folder of frames)")
        return read_frame_folder(path) if path.is_dir() else read_video(path)
    frames = [np.asarray(f) for f in source]
    if not frames:
        raise ClipError("the clip holds no frames")
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ClipError(f"frame {i}: expected a uint8 RGB array H x W x 3, got {f.dtype} {f.shape}")
        if f.shape != frames[0].shape:
            raise ClipError(f"frame {i} has shape {f.shape}, frame 0 {frames[0].shape}: a clip has one frame size")
    return Clip(frames, list(range(len(frames))), [f"frame {i}" for i in range(len(frames))], "the given frames")
