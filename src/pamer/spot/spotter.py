"""Spot micro- and macro-expressions in a long video: `spot(video) -> list[Interval]`.

The training-free optical-flow method of He Yuhong (ACM MM 2021), Zhao et al. (ACM MM 2022, "Rethinking optical
flow methods for micro-expression spotting", code shengjianda/micro-expression-spot) and Yu, Cai et al. (MEGC2022
first place, code CZP-1/Facial-Expression-Spotting-Based-on-Optical-Flow-Features-MindSpore), streamed:

1. Frames are read one at a time (`pamer.spot.source`); rates above 45 fps are subsampled to about `TARGET_FPS`
   (Zhao et al. take every 7th frame of SAMM's 200 fps).
2. The face is followed with dlib (`pamer.preprocess.track`): the detector every few frames, landmarks on every
   frame.
3. Windows of `WINDOW` frames (at about 30 fps) follow one another; each window's first frame is its reference,
   and every frame of the window is registered onto it (`pamer.preprocess.register`: landmark similarity fit,
   nose-flow refinement) before Farneback flow runs from the reference's face crop to the frame's. The next
   window starts `STEP` frames after the last (CZP-1: 200 and 100), or, when an interval found spans that frame,
   where CZP-1 moves it: after the interval, or before it (a reference inside an expression would make its
   release look like a movement). Its frames are then registered onto its own reference.
4. Each patch of the eyebrows, mouth and nose sides gives one motion value per frame, the nose bridge's motion
   removed (`pamer.spot.regions`).
5. At a window's end its signals are filtered and searched for intervals (`pamer.spot.peaks`); intervals of all
   patches and windows are merged, too short or too long ones dropped, and each is typed micro (at most 0.5 s)
   or macro (`pamer.spot.intervals.expression_type`, the MEGC rule).

Deviations from the published code, besides those in `pamer.spot.peaks`: registration uses a landmark similarity
fit on every frame before the nose-flow step (the code shifts its crop box by the nose flow only); the face crop is
`size` pixels (the code: 256) with every amplitude converted to the 256 px scale; a window cut short by a lost
face or the video's end is searched if it lasts `MIN_WINDOW_S`; the code's last rule (an interval starting less
than 15 frames after the previous one is dropped) is left out; a tracked face that no longer resembles its
window's reference (`MIN_RESEMBLANCE`) is looked for again, and counts as lost when it is not found.

Memory: frames are not kept, only the open window's face regions (`face_region`: at most `WINDOW` grey images of
1.5 x `size` pixels square, about 17 MB at the defaults, whatever the video's resolution) and its rows of patch
values; the result keeps one row of region signals per frame (about 50 bytes) for the timeline and a 64 px
thumbnail per interval's apex.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pamer.clip import shortfall_warning
from pamer.preprocess.face import to_gray
from pamer.preprocess.register import (
    INNER_EYE_CORNERS,
    MIN_CROP_SIZE,
    Reference,
    RegisterError,
    eye_distance,
    map_points,
    register,
)
from pamer.preprocess.track import FaceTracker
from pamer.spot.intervals import MICRO_MAX_SECONDS, Interval, expression_type
from pamer.spot.peaks import LOCAL_PX, RISE_PX, Found, find_intervals, keep_lengths, lowpass, merge
from pamer.spot.regions import REGION_KIND, REGIONS, Patches
from pamer.spot.source import Source, SpotError, open_source

TARGET_FPS = 30.0  # the rate the published defaults are stated at
SUBSAMPLE_ABOVE_FPS = 45.0  # rates above this are subsampled to about TARGET_FPS
WINDOW = 200  # frames at TARGET_FPS: CZP-1's window
STEP = 100  # CZP-1's default move between windows
CROP_SIZE = 192  # the face crop the flow runs on (reference scale: 256)
THUMBNAIL = 64
# one nose-flow refinement step (registration's default is two): what one step leaves is a near-uniform
# translation, which the nose bridge's motion subtracted from every patch removes (`pamer.spot.regions`)
REFINE_STEPS = 1
# a registered face crop correlating less than this with its window's reference is no longer that face: pamer's
# own sanity check, not from the published code. A face against itself correlates 0.48 and more in the real test
# videos even when turned and half hidden by a hand (WolfgangLanger_Pexels.mp4), a face against a cut to a cartoon
# sky about 0 (face_noface.mov); 0.25 lies between them, and no spotting result was looked at to choose it
MIN_RESEMBLANCE = 0.25
MIN_WINDOW_S = 1.0  # a window cut short (face lost, video ended) is searched only if it lasts this long
# a video whose own timestamps put a frame further than this (and two frames) from number / fps does not run at its
# stated rate throughout (a variable frame rate: phone recordings, joined clips), which is said: pamer's own check
CLOCK_TOLERANCE_S = 0.1


@dataclass(frozen=True)
class FaceGap:
    """Frames (numbers, inclusive) in which no face was seen."""

    first: int
    last: int


@dataclass
class SpotResult:
    """What spotting found in one video, and the signals it found it in (for the timeline).

    Attributes:
        video: the video's id (file stem or folder name).
        source: the file or folder.
        fps: the video's frame rate.
        stride: every `stride`-th frame was read for the signals.
        frames: how many frames were read.
        stated_frames: how many frames the source states it holds (a video's own count; for a folder, its files).
        intervals: the expressions found, in time order.
        numbers: (N,) frame numbers of the sampled frames.
        signals: (N, len(REGIONS)) each region's filtered motion (reference px; the most moving patch of the region)
            relative to its window's first frame; NaN where no face was seen.
        residual: (N,) the nose bridge's motion left after registration (reference px); NaN where no face was seen.
        gaps: runs of frames without a face.
        missing: runs of frame numbers a frame folder does not hold (its numbers jump); no interval spans one.
        thumbnails: a grey face crop (64 px) at each interval's apex, keyed by the apex's frame number.
        clock: for a video whose own timestamps depart from number / fps by more than `CLOCK_TOLERANCE_S` (a
            variable frame rate), the frame that departs most and its time in seconds by those timestamps; else
            None.
    """

    video: str
    source: str
    fps: float
    stride: int
    frames: int
    stated_frames: int
    intervals: list[Interval]
    numbers: np.ndarray
    signals: np.ndarray
    residual: np.ndarray
    gaps: list[FaceGap]
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)
    missing: list[FaceGap] = field(default_factory=list)
    clock: tuple[int, float] | None = None

    @property
    def face_seen(self) -> bool:
        """Whether a face was seen in any frame."""
        return bool(np.isfinite(self.residual).any())

    def messages(self) -> list[str]:
        """One warning line per doubt about the result: a video that ends before the frames it states, a video that
        does not run at its frame rate throughout, each run of frame numbers a folder does not hold, each run of
        frames without a face (or that no face was seen at all)."""
        shortfall = shortfall_warning(self.source, self.stated_frames, self.frames)
        lines = [] if shortfall is None else [shortfall + ", so nothing was spotted in them"]
        if self.clock is not None:
            number, seconds = self.clock
            lines.append(
                f"video {self.source} does not run at its {self.fps:.4g} fps throughout (a variable frame rate): its "
                f"frame {number} is at {seconds:.2f} s by its timestamps, not {number / self.fps:.2f} s; seconds and "
                f"the {MICRO_MAX_SECONDS} s limit of a micro-expression are counted at {self.fps:.4g} fps, so convert "
                "it to a constant frame rate first (e.g. ffmpeg -i IN -r 30 OUT.mp4)"
            )
        lines += [
            f"frames {m.first}-{m.last} are not in {self.source} (its frame numbers jump from {m.first - 1} to "
            f"{m.last + 1}): no interval spans them"
            for m in self.missing
        ]
        if not self.face_seen:
            return [*lines, f"no face found in {self.source}: none in any of its {self.frames} frames"]
        for gap in self.gaps:
            lines.append(
                f"no face in frames {gap.first}-{gap.last} ({gap.first / self.fps:.1f}-"
                f"{(gap.last + 1) / self.fps:.1f} s) of {self.source}: nothing spotted there"
            )
        return lines

    def to_dict(self) -> dict:
        """A JSON-ready summary: the video, its rate, the intervals (with seconds) and the frames without a face."""
        return {
            "video": self.video,
            "source": self.source,
            "fps": self.fps,
            "stride": self.stride,
            "frames": self.frames,
            "face_seen": self.face_seen,
            "gaps": [{"first": g.first, "last": g.last} for g in self.gaps],
            "missing": [{"first": m.first, "last": m.last} for m in self.missing],
            "intervals": [interval_dict(i, self.fps) for i in self.intervals],
            "thresholds_px": {"rise": RISE_PX, "local": dict(LOCAL_PX)},
            "median_residual_px": None if not self.face_seen else round(float(np.nanmedian(self.residual)), 4),
        }


def interval_dict(interval: Interval, fps: float) -> dict:
    """An interval as a JSON-ready dict, with its onset, apex and offset also in seconds."""
    return {
        "video": interval.video,
        "onset": interval.onset,
        "apex": interval.apex,
        "offset": interval.offset,
        "type": interval.type,
        "peak_px": None if interval.peak is None else round(interval.peak, 3),
        "onset_s": round(interval.onset / fps, 3),
        "apex_s": None if interval.apex is None else round(interval.apex / fps, 3),
        "offset_s": round(interval.offset / fps, 3),
    }


def resemblance(crop: np.ndarray, reference: np.ndarray) -> float:
    """The correlation of two grey face crops shrunk to 32 px (1: the same picture; a face and a sky: about 0)."""
    a, b = (cv2.resize(x, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64).ravel() for x in (crop, reference))
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / norm) if norm > 0 else 0.0


def next_window_start(found: list[Found], length: int, step: int, rate: float) -> int:
    """Where the next window starts, in samples of the window just searched (`length` samples at `rate` per
    second, whose `found` intervals are given): `step` on, unless an interval spans that sample; then, as CZP-1
    (`draw_roiline19`, stated at 30 fps): 20 frames after the interval if it ends before 1.5 steps, 20 frames
    before it if it starts after half a step, else 10 frames after it (at most 11 frames before the end)."""
    scale = rate / TARGET_FPS
    pad = max(round(20 * scale), 1)
    start = step
    for f in found:
        if f.onset < step < f.offset:
            if f.offset < 1.5 * step:
                start = f.offset + pad
            elif f.onset > 0.5 * step:
                start = f.onset - pad
            else:
                start = min(length - round(11 * scale), f.offset) + pad // 2
    return min(max(start, 1), length - 1)


@dataclass(frozen=True)
class _Sample:
    """A frame kept while its window is open: the grey region around the face, at the face crop's scale, and the
    landmarks in it (so memory per frame does not depend on the video's resolution)."""

    number: int
    image: np.ndarray
    points: np.ndarray


def face_region(number: int, gray: np.ndarray, points: np.ndarray, size: int) -> _Sample:
    """The region of `gray` around the face (the `size` px face crop of `pamer.preprocess.register` with two
    half-eye-distances more on every side, so a moving head stays inside), scaled as that crop.

    Raises:
        RegisterError: a face too small to register.
    """
    half = eye_distance(points) / 2
    if half < 2:
        raise RegisterError(f"the face's inner eye corners are {2 * half:.1f} px apart: too small to register")
    centre = (points[INNER_EYE_CORNERS[0]] + points[INNER_EYE_CORNERS[1]]) / 2
    s = size / (8 * half)
    side = round(1.5 * size)
    matrix = np.array([[s, 0.0, -s * (centre[0] - 6 * half)], [0.0, s, -s * (centre[1] - 5 * half)]])
    image = cv2.warpAffine(gray, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return _Sample(number, image, map_points(matrix, points))


class _Window:
    """One analysis window: its reference, patches, and one row of patch values per frame so far."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.patches = Patches.of(reference)
        self.values: list[np.ndarray] = []
        self.residual: list[float] = []
        self.numbers: list[int] = []
        self.thumbs: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.values)

    def register(self, sample: _Sample) -> np.ndarray:
        """`sample`'s face crop registered onto the reference."""
        return register(self.reference, sample.image, sample.points, refine=REFINE_STEPS, residual=False)[0]

    def add(self, sample: _Sample, crop: np.ndarray | None = None) -> None:
        crop = self.register(sample) if crop is None else crop
        values, nose = self.patches.values(self.reference.crop, crop)
        self.values.append(values)
        self.residual.append(nose)
        self.numbers.append(sample.number)
        self.thumbs.append(cv2.resize(crop, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA))


class _Spotter:
    """The streaming state of one video (see the module docstring)."""

    def __init__(self, video: str, fps: float, stride: int, size: int) -> None:
        self.video = video
        self.fps = fps
        self.rate = fps / stride
        self.length = max(round(WINDOW * self.rate / TARGET_FPS), 2)
        self.step = min(max(round(STEP * self.rate / TARGET_FPS), 1), self.length - 1)
        self.size = size
        self.window: _Window | None = None
        self.samples: list[_Sample] = []  # the open window's frames, its reference first
        self.found: list[Found] = []  # in frame numbers
        self.rows: list[tuple[int, np.ndarray, float]] = []  # (number, region signals, residual), in time order
        self.kept: dict[int, np.ndarray] = {}
        self.gaps: list[FaceGap] = []
        self.missing: list[FaceGap] = []
        self.last_number: int | None = None

    def feed(self, number: int, gray: np.ndarray, tracker: FaceTracker) -> None:
        sample, crop = self._sample(number, gray, tracker.update(gray)), None
        if sample is not None and self.window is not None:
            crop = self.window.register(sample)
            if resemblance(crop, self.window.reference.crop) < MIN_RESEMBLANCE:
                # the tracked landmarks left the face (a cut, an occlusion) or the face changed: look again, and
                # start a new window, since the old reference no longer shows this face
                self.close(final=True)
                sample, crop = self._sample(number, gray, tracker.redetect(gray)), None
        if sample is None:
            self.close(final=True)
            if self.gaps and self.gaps[-1].last == self.last_number:
                self.gaps[-1] = FaceGap(self.gaps[-1].first, number)
            else:
                self.gaps.append(FaceGap(number, number))
            self.rows.append((number, np.full(len(REGIONS), np.nan), np.nan))
        else:
            if self.window is None:
                self._open(sample)
            self.window.add(sample, crop)
            self.samples.append(sample)
            if len(self.window) >= self.length:
                self.close(final=False)
        self.last_number = number

    def skip(self, first: int, last: int) -> None:
        """Frames `first`..`last` are not in the source (a frame folder's numbers jump): the open window is searched
        and closed, so that no interval spans frames that were never seen."""
        self.close(final=True)
        self.missing.append(FaceGap(first, last))
        self.last_number = None  # a run of frames without a face does not go on across frames that are not there

    def _sample(self, number: int, gray: np.ndarray, points: np.ndarray | None) -> _Sample | None:
        if points is None:
            return None
        try:
            return face_region(number, gray, points, self.size)
        except RegisterError:
            return None

    def _open(self, sample: _Sample) -> None:
        self.window = _Window(Reference.from_frame(sample.image, sample.points, self.size))
        self.samples = []

    def close(self, final: bool) -> None:
        """Search the open window; `final`: the face was lost or the video ended, so no window follows it at once;
        otherwise the next window starts where CZP-1 moves it (`_next_start`), its frames registered anew."""
        window = self.window
        if window is None:
            return
        values = np.array(window.values)
        n = len(values)
        found: list[Found] = []
        filtered = values  # a window too short to filter or search is shown as it is
        if n / self.rate >= MIN_WINDOW_S:
            filtered = lowpass(values, self.rate)
            for p, region in enumerate(window.patches.region):
                local = LOCAL_PX[REGION_KIND[REGIONS[region]]]
                found += [
                    Found(f.onset, f.offset, f.apex, f.peak, p)
                    for f in find_intervals(filtered[:, p], self.rate, local, filtered=True)
                ]
            found = merge(found)
        numbers = window.numbers
        for f in found:
            self.found.append(Found(numbers[f.onset], numbers[f.offset], numbers[f.apex], f.peak, f.channel))
            self.kept[numbers[f.apex]] = window.thumbs[f.apex]
        start = n if final else next_window_start(found, self.length, self.step, self.rate)
        regions = np.array(window.patches.region)
        for i in range(start):
            signals = np.array([filtered[i, regions == r].max() for r in range(len(REGIONS))])
            self.rows.append((numbers[i], signals, window.residual[i]))
        self.window = None
        if final:
            self.samples = []
            return
        rest = self.samples[start:]
        self._open(rest[0])
        for sample in rest:
            self.window.add(sample)
        self.samples = rest

    def result(self, source: Source, stride: int, frames: int) -> SpotResult:
        self.close(final=True)
        merged = keep_lengths(merge(self.found), self.fps)
        intervals = [
            Interval(self.video, f.onset, f.offset, expression_type(f.onset, f.offset, self.fps), f.apex, f.peak)
            for f in merged
        ]
        numbers = np.array([r[0] for r in self.rows], dtype=np.int64)
        signals = np.array([r[1] for r in self.rows]).reshape(len(self.rows), len(REGIONS))
        residual = np.array([r[2] for r in self.rows], dtype=np.float64)
        thumbnails = {i.apex: self.kept[i.apex] for i in intervals if i.apex in self.kept}
        return SpotResult(
            self.video,
            str(source.path),
            self.fps,
            stride,
            frames,
            source.frames,
            intervals,
            numbers,
            signals,
            residual,
            self.gaps,
            thumbnails,
            self.missing,
        )


def spot_video(
    video: str | Path | Source,
    fps: float | None = None,
    size: int = CROP_SIZE,
    progress: Callable[[int], None] | None = None,
) -> SpotResult:
    """Spot the expressions in a video file or frame folder, with the signals they were found in.

    Args:
        video: a video file, a folder of numbered frames, or an opened `Source`.
        fps: the frame rate (needed for a folder; overrides a video's own).
        size: side of the face crop the flow runs on, in pixels (amplitudes are converted to the 256 px scale).
        progress: called with the number of frames read so far, after each frame.

    Raises:
        SpotError: a video or folder that cannot be read (see `open_source`).
    """
    source = video if isinstance(video, Source) else open_source(video, fps)
    if size < MIN_CROP_SIZE:
        raise SpotError(f"the face crop must be at least {MIN_CROP_SIZE} px for registration, got {size}")
    stride = max(round(source.fps / TARGET_FPS), 1) if source.fps > SUBSAMPLE_ABOVE_FPS else 1
    spotter = _Spotter(source.name, source.fps, stride, size)
    tracker = FaceTracker()
    frames = 0
    previous = None
    # a video's own timestamps against number / fps, unless the caller gave the rate (a slow-motion video's real one)
    timed = source.stated_fps is not None and source.fps == source.stated_fps
    start, latest, departs = None, 0.0, (0.0, 0, 0.0)  # the first frame's time, the last's after it, the worst
    for k, (number, frame, seconds) in enumerate(source.read_timed()):
        frames += 1
        if timed and seconds is not None:
            start = seconds if start is None else start
            latest = seconds - start
            if abs(latest - number / source.fps) > departs[0]:
                departs = (abs(latest - number / source.fps), number, latest)
        if previous is not None and number > previous + 1:
            spotter.skip(previous + 1, number - 1)
        previous = number
        if k % stride == 0:
            gray = to_gray(frame)
            spotter.feed(number, gray, tracker)
        if progress is not None:
            progress(frames)
    if frames == 0:
        raise SpotError(f"{source.path}: no frame could be decoded (corrupt or unsupported)")
    result = spotter.result(source, stride, frames)
    # timestamps that never advance say nothing about the rate
    if latest > 0 and departs[0] > max(CLOCK_TOLERANCE_S, 2 / source.fps):
        result.clock = departs[1:]
    return result


def spot(video: str | Path | Source, fps: float | None = None, size: int = CROP_SIZE) -> list[Interval]:
    """The micro- and macro-expression intervals in a video file or frame folder (see `spot_video`).

    Frames without a face, and those of a video that ends before the frames it states, give no interval; a warning
    names them (`SpotResult.messages`).

    Example:
        >>> from pamer.spot import spot
        >>> for interval in spot("interview.mp4"):  # doctest: +SKIP
        ...     print(interval.type, interval.onset, interval.apex, interval.offset)
    """
    result = spot_video(video, fps=fps, size=size)
    for line in result.messages():
        warnings.warn(line, stacklevel=2)
    return result.intervals
