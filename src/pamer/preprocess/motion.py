"""Motion representations of an aligned onset/apex pair, and apex spotting for clips without an apex annotation.

- `difference`: apex - onset, the paper's input (section 1.2); training computes it from the cached uint8 crops.
- `flow_image`: TV-L1 optical flow onset -> apex (u, v) and its optical strain magnitude, the three-channel
  input of STSTNet / HTNet. Needs OpenCV's contrib modules: `pip install pamer[flow]`
  (opencv-contrib-python-headless).
- `spot_apex`: the frame that differs most from the onset inside the face.
- `temporal_resample`: a clip's frames resampled to a fixed count, linear in time (`pamer prepare --clip-frames`,
  the input of LBP-TOP).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pamer.errors import NotInstalledError
from pamer.preprocess.face import to_gray


def difference(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """The motion image apex - onset, as float32 in the frames' units (uint8 frames give values in -255..255).

    Shape:
        - onset, apex: (H, W, C) or (H, W), same shape.
        - output: the same shape, float32.
    """
    if onset.shape != apex.shape:
        raise ValueError(f"onset and apex must have one shape, got {onset.shape} and {apex.shape}")
    return apex.astype(np.float32) - onset.astype(np.float32)


def tvl1_solver():
    """OpenCV's Dual TV-L1 optical flow solver (default parameters); needs the `flow` extra (opencv-contrib)."""
    optflow = getattr(cv2, "optflow", None)
    if optflow is None:
        raise NotInstalledError(
            "the flow representation needs OpenCV's contrib modules (cv2.optflow): "
            "pip install 'pamer[flow]' (opencv-contrib-python-headless)"
        )
    return optflow.DualTVL1OpticalFlow_create()


def tvl1_flow(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """Dense TV-L1 optical flow from onset to apex (OpenCV's default parameters), on the grey images.

    Shape:
        - onset, apex: (H, W, 3) RGB or (H, W) grey, uint8.
        - output: (H, W, 2) float32, the displacement (u, v) in pixels: onset pixel (x, y) moves to
          (x + u, y + v) in the apex frame.
    """
    solver = tvl1_solver()
    first, second = to_gray(onset), to_gray(apex)
    if first.shape != second.shape:
        raise ValueError(f"onset and apex must have one size, got {first.shape} and {second.shape}")
    return solver.calc(first, second, None).astype(np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """The magnitude of the optical strain tensor of a flow field (as in STSTNet).

    With e = (grad(u, v) + grad(u, v)^T) / 2, the magnitude is sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2),
    derivatives by central differences.

    Shape:
        - flow: (H, W, 2), (u, v).
        - output: (H, W) float32.
    """
    u, v = flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def flow_image(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """The three-channel flow representation: TV-L1 u, v and optical strain magnitude.

    Shape:
        - onset, apex: (H, W, 3) RGB or (H, W) grey, uint8.
        - output: (H, W, 3) float32, channels (u, v, strain).
    """
    flow = tvl1_flow(onset, apex)
    return np.concatenate([flow, optical_strain(flow)[..., None]], axis=-1)


def spot_apex(frames: Sequence[np.ndarray], region: tuple[int, int, int, int] | None = None) -> int:
    """The index of the apex: the frame whose difference from the first (onset) frame has the most energy.

    Energy is the mean squared grey-level difference from `frames[0]` inside `region`. Give aligned crops of
    one clip (`AlignTransform.apply`) and the face box inside them (`AlignTransform.face_box`), so that neither
    head movement nor the background counts. A blink counts like any other facial movement. SMIC's rule, the
    middle frame between onset and offset, stays the default for SMIC; this is for clips with no annotation.

    Args:
        frames: the clip from onset on, RGB (H, W, 3) or grey (H, W), all of one size.
        region: (left, top, right, bottom) pixels to compare; None: the whole frame.

    Returns:
        An index into `frames` (0 only when there is a single frame or no frame differs from the onset).
    """
    if not len(frames):
        raise ValueError("spot_apex needs at least one frame")
    first = to_gray(frames[0])
    height, width = first.shape
    left, top, right, bottom = region if region is not None else (0, 0, width, height)
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"region {region} is not inside frames of size {width}x{height}")
    onset = first[top:bottom, left:right].astype(np.float32)
    energies = [0.0]
    for index, frame in enumerate(frames[1:], start=1):
        gray = to_gray(frame)
        if gray.shape != first.shape:
            raise ValueError(f"frame {index} has size {gray.shape[1]}x{gray.shape[0]}, frame 0 {width}x{height}")
        diff = gray[top:bottom, left:right].astype(np.float32) - onset
        energies.append(float(np.mean(diff * diff)))
    return int(np.argmax(energies))


def resample_plan(numbers: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which frames make each of `k` frames evenly spaced in time from the first to the last frame number.

    Output frame i sits at time `numbers[0] + i * (numbers[-1] - numbers[0]) / (k - 1)` (frame-number units, so
    a gap in the numbering is bridged in proportion to its length) and is `(1 - weight[i]) * frames[lower[i]] +
    weight[i] * frames[upper[i]]`, the two frames on either side of that time.

    Args:
        numbers: the frame numbers of the frames available, strictly increasing.
        k: how many frames to make, at least 2.

    Returns:
        (lower, upper, weight): arrays of length `k`, indices into `numbers` and the weight of `upper`.
    """
    times = np.asarray(numbers, dtype=np.float64)
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if times.ndim != 1 or not len(times) or (np.diff(times) <= 0).any():
        raise ValueError(f"frame numbers must be a non-empty increasing sequence, got {list(numbers)}")
    if len(times) == 1:
        zeros = np.zeros(k, dtype=np.int64)
        return zeros, zeros, np.zeros(k)
    targets = np.linspace(times[0], times[-1], k)
    lower = np.clip(np.searchsorted(times, targets, side="right") - 1, 0, len(times) - 2)
    upper = lower + 1
    weight = np.clip((targets - times[lower]) / (times[upper] - times[lower]), 0.0, 1.0)
    return lower, upper, weight


def temporal_resample(frames: Sequence[np.ndarray | None], numbers: Sequence[int], k: int) -> np.ndarray:
    """`k` frames evenly spaced in time from the first to the last of `frames`, linear between neighbours.

    Only the frames named by `resample_plan(numbers, k)` with a non-zero weight are read, so the others may be
    None (the cache reads just those from disk).

    Shape:
        - frames: a sequence of (H, W) or (H, W, C) uint8 arrays, one per frame number.
        - output: (k, H, W[, C]) uint8, rounded to the nearest grey level.
    """
    if len(frames) != len(numbers):
        raise ValueError(f"{len(frames)} frames but {len(numbers)} frame numbers")
    lower, upper, weight = resample_plan(numbers, k)
    out = []
    for i, j, w in zip(lower, upper, weight, strict=True):
        if w == 0.0:
            out.append(np.asarray(frames[i]))
        elif w == 1.0:
            out.append(np.asarray(frames[j]))
        else:
            mix = (1.0 - w) * frames[i].astype(np.float32) + w * frames[j].astype(np.float32)
            out.append(np.clip(np.rint(mix), 0, 255).astype(np.uint8))
    return np.stack(out)


def resample_needs(numbers: Sequence[int], k: int) -> list[int]:
    """The indices into `numbers` of the frames `temporal_resample` reads (those with a non-zero weight)."""
    lower, upper, weight = resample_plan(numbers, k)
    needed = set(lower[weight < 1.0].tolist()) | set(upper[weight > 0.0].tolist())
    return sorted(needed)
