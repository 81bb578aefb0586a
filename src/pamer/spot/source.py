"""Frames of a long video or frame folder, one at a time, for spotting: memory does not grow with the length.

A video is decoded with OpenCV, its frame rate read from the file; a folder of frames is read in the order of the
numbers in the file names (the dataset readers' rule, `pamer.frames`), at the frame rate the caller gives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pamer.errors import PamerError
from pamer.frames import IMAGE_SUFFIXES, ImageError, frame_files, read_rgb


class SpotError(PamerError):
    """A video, frame folder or option that spotting cannot use (the message names it and what was expected)."""


@dataclass(frozen=True)
class Source:
    """A video file or a folder of frames to spot in.

    Attributes:
        path: the file or folder.
        fps: frames per second (read from the video, or given).
        frames: how many frames it holds (a video's own count, which some containers only estimate).
        files: for a folder, the frame files in time order with their numbers; None for a video.
        images: for frames already in memory (`frames_source`), the numbered RGB frames; None otherwise.
        stated_fps: the frame rate a video file states (None for a folder, frames in memory, or a video that states
            none); `fps` is this rate unless the caller gave another.
    """

    path: Path
    fps: float
    frames: int
    files: tuple[tuple[int, Path], ...] | None = None
    images: tuple[tuple[int, np.ndarray], ...] | None = None
    stated_fps: float | None = None

    @property
    def name(self) -> str:
        """The video's id: a video file's stem, or the folder's (or in-memory source's) name; a folder given as `.`
        or `..` is named by the folder it stands for."""
        if self.files is None and self.images is None:
            return self.path.stem
        return Path(os.path.abspath(self.path)).name  # `.` and `..` named by the folders they stand for

    def read(self) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, RGB uint8 frame) in time order: a video's 0-based positions, a folder's file numbers.

        Raises:
            SpotError: a frame file that cannot be decoded, or frames of different sizes.
        """
        for number, frame, _ in self.read_timed():
            yield number, frame

    def read_timed(self) -> Iterator[tuple[int, np.ndarray, float | None]]:
        """As `read`, with each frame's time in seconds by a video's own timestamps (None for a folder's frames or
        frames in memory, which have none): a video of variable frame rate does not run at `fps` throughout."""
        shape = None
        for number, frame, seconds in self._frames():
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise SpotError(
                    f"{self.path}: frame {number} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                    f"{shape[1]}x{shape[0]}; expected one size"
                )
            yield number, frame, seconds

    def _frames(self) -> Iterator[tuple[int, np.ndarray, float | None]]:
        if self.images is not None:
            for number, frame in self.images:
                yield number, frame, None
            return
        if self.files is not None:
            for number, path in self.files:
                try:
                    yield number, read_rgb(path), None
                except ImageError as err:
                    raise SpotError(f"frame {err}") from None
            return
        capture = cv2.VideoCapture(str(self.path))
        try:
            number = 0
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                yield number, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                number += 1
        finally:
            capture.release()


def open_source(path: str | Path, fps: float | None = None) -> Source:
    """A `Source` for a video file or a folder of frames.

    Args:
        path: a video file (any format OpenCV decodes) or a folder of numbered frame images.
        fps: frames per second; needed for a folder, and overrides a video's own rate.

    Raises:
        SpotError: a missing path, one image (not its folder), a video OpenCV cannot open or that states no frame
            rate (without `fps`), a folder without numbered images, two files with one number, a folder without
            `fps`, or an `fps` that is not a positive number.
    """
    path = Path(path)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise SpotError(f"fps must be a positive number of frames per second, got {fps}")
    if not path.exists():
        raise SpotError(f"{path} does not exist (expected a video file or a folder of frames)")
    if path.is_dir():
        return _folder(path, fps)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise SpotError(
            f"{path} is one image, not a video: give the folder of numbered frames it belongs to ({path.parent}) "
            "and its frame rate with --fps"
        )
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise SpotError(f"video {path} cannot be opened by OpenCV (corrupt or unsupported)")
        own = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    stated = float(own) if math.isfinite(own) and own > 0 else None
    if fps is None:
        if stated is None:
            raise SpotError(f"video {path} states no frame rate; give it with --fps")
        fps = stated
    return Source(path, float(fps), max(count, 0), stated_fps=stated)


def _folder(path: Path, fps: float | None) -> Source:
    try:
        files = frame_files(path)
    except ImageError as err:
        raise SpotError(str(err)) from None
    if fps is None:
        raise SpotError(f"frame folder {path}: give its frame rate with --fps (a folder of images does not state it)")
    return Source(path, float(fps), len(files), tuple(files))


def frames_source(frames: Sequence[np.ndarray], numbers: Sequence[int], fps: float, name: str) -> Source:
    """A `Source` over RGB frames already in memory (a clip `Recognizer.predict` has read), numbered `numbers`."""
    if len(frames) != len(numbers):
        raise SpotError(f"{name}: {len(frames)} frames but {len(numbers)} frame numbers")
    if not (math.isfinite(fps) and fps > 0):
        raise SpotError(f"fps must be a positive number of frames per second, got {fps}")
    return Source(Path(name), float(fps), len(frames), images=tuple(zip(numbers, frames, strict=True)))
