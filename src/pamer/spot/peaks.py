"""From motion signals to expression intervals: low-pass filter, thresholds, peaks, onset/offset, merging.

The steps and their defaults follow the MEGC2022 winners' code (Yu, Cai et al.; CZP-1/Facial-Expression-
Spotting-Based-on-Optical-Flow-Features-MindSpore, `cas_util.py`: `process`, `fenxi`, `expend`, `nms2`), which
builds on He Yuhong (ACM MM 2021) and Zhao et al. (ACM MM 2022, code shengjianda/micro-expression-spot). All
amplitudes are in pixels at the reference scale of `pamer.preprocess.register` (a face whose inner eye corners are
64 px apart: the code's 256 px face crop), all durations in seconds (the code's frames at 30 fps), so that the
defaults hold for any face size and frame rate. None was tuned on any data pamer is evaluated on: they are the
published code's values.

For one channel (one small patch of a region of interest) in one window:

1. The signal (the patch's motion magnitude relative to the window's first frame, nose motion removed) is
   low-pass filtered at `LOWPASS_HZ` (the code keeps 1-2 Hz with an ideal FFT filter; here a zero-phase 4th-order
   Butterworth filter, which does not ring at the window's ends).
2. Candidate frames rise at least `RISE_PX` above the window's minimum (the code's `yuzhi1` 1.4 px plus its
   constant 0.2 px), and at least the channel's `local_px` (its `yuzhi2` plus 0.2 px: 2.0 eyebrows, 2.05 mouth,
   2.3 nose sides) above the minimum within `LOCAL_S` on either side. Candidates fewer than `JOIN_S` apart are
   joined. (The code also asks its EMD-smoothed signal to rise by 0.5 px there; that extra test is left out.)
3. Each group is widened to its onset and offset: outwards from the group, up to the lowest point within
   `LOCAL_S`, stopping where the signal has fallen back below `FALL_RATIO` of the way from that low point to the
   group's high, or where it starts rising again.
4. Intervals of all channels and windows are merged (`merge`): two whose overlap exceeds `MERGE_OVERLAP` of the
   shorter become their union. Intervals shorter than `MIN_S` or longer than `MAX_S` are dropped, as in the code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

LOWPASS_HZ = 2.0  # CZP-1: temporal_ideal_filter(..., 1, 2, 30)
LOWPASS_ORDER = 4
RISE_PX = 1.6  # CZP-1: yuzhi1 = 1.4 + c, c = 0.2
LOCAL_PX = {"brow": 2.0, "mouth": 2.05, "nose": 2.3}  # CZP-1: yuzhi2 = 1.8, 1.85, 2.1 (+ c = 0.2)
LOCAL_S = 1.0  # CZP-1: 30 frames either side at 30 fps
JOIN_S = 0.1  # CZP-1: candidate frames fewer than 3 frames apart are joined
FALL_RATIO = 0.33  # CZP-1 expend: 0.33 * (high - low)
MERGE_OVERLAP = 0.2  # CZP-1: nms2(totalflow, 0.2)
MIN_S = 0.4  # CZP-1: offset - onset >= 12 frames at 30 fps
MAX_S = 200 / 30  # CZP-1: offset - onset <= 200 frames at 30 fps (one window)


@dataclass(frozen=True)
class Found:
    """One interval found in a signal (sample indices, inclusive) with its apex sample and peak (reference px)."""

    onset: int
    offset: int
    apex: int
    peak: float
    channel: int = 0


def lowpass(signal: np.ndarray, fps: float, cutoff_hz: float = LOWPASS_HZ) -> np.ndarray:
    """`signal` (T,) or (T, C) low-pass filtered along time at `cutoff_hz`, zero-phase.

    A window too short for the filter's padding (fewer than 16 samples) is returned unfiltered.
    """
    signal = np.asarray(signal, dtype=np.float64)
    if cutoff_hz >= fps / 2:
        return signal.copy()
    sos = butter(LOWPASS_ORDER, cutoff_hz, fs=fps, output="sos")
    padlen = 3 * (2 * len(sos) + 1)
    if len(signal) <= padlen:
        return signal.copy()
    return sosfiltfilt(sos, signal, axis=0)


def _groups(indices: np.ndarray, gap: int) -> list[tuple[int, int]]:
    groups: list[tuple[int, int]] = []
    for i in indices.tolist():
        if groups and i - groups[-1][1] < gap:
            groups[-1] = (groups[-1][0], i)
        else:
            groups.append((i, i))
    return groups


def find_intervals(
    signal: np.ndarray, fps: float, local_px: float, rise_px: float = RISE_PX, filtered: bool = False
) -> list[Found]:
    """The intervals of one channel's signal in one window (steps 1-3 of the module docstring).

    Args:
        signal: (T,) motion magnitude in reference pixels, sample 0 the window's reference frame.
        fps: the signal's sample rate.
        local_px: the rise needed above the local minimum (`LOCAL_PX` of the channel's region).
        rise_px: the rise needed above the window's minimum.
        filtered: whether `signal` is already low-pass filtered.

    Returns:
        The intervals, in sample indices (onset and offset inclusive), in time order.
    """
    s = np.asarray(signal, dtype=np.float64) if filtered else lowpass(signal, fps)
    n = len(s)
    if n < 3:
        return []
    reach = max(round(LOCAL_S * fps), 1)
    # the minimum within `reach` on either side of each sample
    padded = np.pad(s, reach, mode="edge")
    local_min = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).min(axis=1)
    candidates = np.flatnonzero((s - s.min() >= rise_px) & (s - local_min > local_px))
    found = []
    for start, end in _groups(candidates, max(round(JOIN_S * fps), 1)):
        apex = start + int(np.argmax(s[start : end + 1]))
        high = s[apex]
        onset = _fall(s, start, high, -1, reach)
        offset = _fall(s, end, high, +1, reach)
        found.append(Found(onset, offset, apex, float(high - min(s[onset], s[offset]))))
    return found


def _fall(s: np.ndarray, edge: int, high: float, step: int, reach: int) -> int:
    """Walk from `edge` in direction `step` towards the lowest sample within `reach`, stopping where the signal has
    fallen below FALL_RATIO of the way from that low to `high`, or where it starts rising again."""
    stop = min(max(edge + step * reach, 0), len(s) - 1)
    span = s[min(edge, stop) : max(edge, stop) + 1]
    low = float(span.min())
    i = edge
    while i != stop:
        nxt = i + step
        if s[nxt] > s[i]:  # rising again: another movement begins
            return i
        i = nxt
        if s[i] - low < FALL_RATIO * (high - low):
            return i
    return i


def merge(found: list[Found], overlap: float = MERGE_OVERLAP) -> list[Found]:
    """Merge intervals whose overlap exceeds `overlap` of the shorter one into their union (the apex and peak of
    the stronger), until no two do; in onset order."""
    items = sorted(found, key=lambda f: (f.onset, f.offset))
    changed = True
    while changed:
        changed = False
        out: list[Found] = []
        for f in items:
            if out:
                last = out[-1]
                common = min(last.offset, f.offset) - max(last.onset, f.onset) + 1
                shorter = min(last.offset - last.onset, f.offset - f.onset) + 1
                if common > overlap * shorter:
                    strong = last if last.peak >= f.peak else f
                    out[-1] = Found(
                        min(last.onset, f.onset), max(last.offset, f.offset), strong.apex, strong.peak, strong.channel
                    )
                    changed = True
                    continue
            out.append(f)
        items = out
    return items


def keep_lengths(found: list[Found], fps: float, min_s: float = MIN_S, max_s: float = MAX_S) -> list[Found]:
    """The intervals whose offset - onset lies within [min_s, max_s] seconds (CZP-1's length filter)."""
    return [f for f in found if min_s * fps <= f.offset - f.onset <= max_s * fps]
