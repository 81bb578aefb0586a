"""Test videos for spotting: a real face photo (matplotlib's grace_hopper.jpg, via `pamer.demo.synthetic`) with
action-unit deformations rendered at known frames, slow head motion and sensor noise, written losslessly."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pamer.demo import synthetic


@dataclass(frozen=True)
class Event:
    """One rendered expression: frames onset..offset (inclusive), strongest at apex, `amplitude_px` at its apex on
    a face 256 px wide (the demo's scale)."""

    onset: int
    apex: int
    offset: int
    aus: tuple[str, ...]
    amplitude_px: float


def _strength(n: int, event: Event) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    rise = np.clip((t - event.onset) / max(event.apex - event.onset, 1), 0, 1)
    fall = np.clip((event.offset - t) / max(event.offset - event.apex, 1), 0, 1)
    smooth = lambda x: x * x * (3 - 2 * x)  # noqa: E731
    return np.where(t <= event.apex, smooth(rise), smooth(fall)) * ((t >= event.onset) & (t <= event.offset))


def expression_frames(
    n: int,
    events: tuple[Event, ...] = (),
    face_px: int = 160,
    drift_px: float = 6.0,
    drift_deg: float = 2.0,
    noise: float = 1.5,
    seed: int = 0,
) -> list[np.ndarray]:
    """`n` RGB frames of one face: the `events`, a head that drifts `drift_px` and turns `drift_deg` in the image
    plane over the clip, and Gaussian noise of `noise` grey levels."""
    faces, _ = synthetic.load_faces(face_px=face_px)
    face = faces[0]
    rng = np.random.default_rng(seed)
    scale = face.width / synthetic.REFERENCE_FACE_PX
    fields = []
    for event in events:
        unit = synthetic.field(face.image.shape[:2], synthetic.au_handles(face.landmarks, event.aus))
        unit *= event.amplitude_px * scale / np.linalg.norm(unit, axis=-1).max()
        fields.append((unit, _strength(n, event)))
    centre = tuple(float(c) for c in face.landmarks.mean(axis=0))
    frames = []
    for i in range(n):
        drift = i / max(n - 1, 1)
        head = cv2.getRotationMatrix2D(centre, drift_deg * np.sin(np.pi * drift), 1.0)
        head[:, 2] += drift_px * np.array([np.sin(2 * np.pi * drift), 0.5 * drift])
        active = [s[i] * u for u, s in fields if s[i]]
        displacement = sum(active[1:], active[0]) if active else None
        frame = synthetic.warp(face.image, displacement, head).astype(np.float32)
        frame += np.float32(noise) * rng.standard_normal(frame.shape, dtype=np.float32)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """Write RGB frames as a lossless FFV1 video."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write FFV1 video here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_variable_rate_mp4(path: Path, frames: list[np.ndarray], runs: list[tuple[int, int]]) -> Path:
    """Write RGB frames as an MP4 whose frames last as `runs` says, [(frames, ticks of 1/15360 s), ...] (e.g.
    [(30, 512), (30, 1024)]: 30 frames at 30 fps, then 30 at 15): a variable frame rate, as a phone records or two
    joined clips hold. OpenCV writes a constant rate; its sample-duration box (stts) is rewritten, and every
    duration with it (the movie data comes first, so no chunk offset moves)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MPEG-4 video here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    data = bytearray(path.read_bytes())
    assert data.find(b"mdat") < data.find(b"moov") and sum(n for n, _ in runs) == len(frames)

    def at(box: bytes) -> int:  # where the box's content starts
        return data.find(box) + 4

    start = at(b"stts") - 8
    (size,) = struct.unpack(">I", data[start : start + 4])
    table = b"".join(struct.pack(">II", n, ticks) for n, ticks in runs)
    stts = struct.pack(">I4sII", 16 + len(table), b"stts", 0, len(runs)) + table
    data[start : start + size] = stts
    for box in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
        (parent,) = struct.unpack(">I", data[at(box) - 8 : at(box) - 4])
        data[at(box) - 8 : at(box) - 4] = struct.pack(">I", parent + len(stts) - size)
    timescale, _ = struct.unpack(">II", data[at(b"mdhd") + 12 : at(b"mdhd") + 20])
    assert timescale == 15360, timescale
    ticks = sum(n * t for n, t in runs)
    milliseconds = round(ticks / timescale * 1000)
    data[at(b"mdhd") + 16 : at(b"mdhd") + 20] = struct.pack(">I", ticks)
    data[at(b"mvhd") + 16 : at(b"mvhd") + 20] = struct.pack(">I", milliseconds)  # movie timescale: 1000
    data[at(b"tkhd") + 20 : at(b"tkhd") + 24] = struct.pack(">I", milliseconds)
    data[at(b"elst") + 8 : at(b"elst") + 12] = struct.pack(">I", milliseconds)  # the edit list would cut it short
    path.write_bytes(bytes(data))
    return path
