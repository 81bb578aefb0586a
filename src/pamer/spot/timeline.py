"""`timeline.png`: where and what happened in a spotted video, at a glance.

Top: each region's motion signal over time with the spotting thresholds, the intervals shaded (micro red, macro
blue, labelled with their type and, where a model recognised them, the class) and the frames without a face
hatched grey. Bottom: the registered face at each interval's apex.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pamer.outputs import pyplot
from pamer.spot.peaks import LOCAL_PX, RISE_PX
from pamer.spot.regions import REGIONS
from pamer.spot.spotter import SpotResult

COLOURS = {"micro": "tab:red", "macro": "tab:blue"}
MAX_THUMBNAILS = 12  # the strongest intervals get a thumbnail when there are more


def time_span(result: SpotResult) -> tuple[float, float]:
    """The seconds the frames read span, from the first frame's start to the last frame's end, at the frame numbers'
    times (number / fps, as every interval is drawn): a video's from 0, a frame folder's from its first file's number
    (`img1000.jpg`: 33.3 s at 30 fps), its missing numbers included."""
    first = int(result.numbers[0]) if len(result.numbers) else 0
    missing = sum(m.last - m.first + 1 for m in result.missing)
    return first / result.fps, (first + max(result.frames, 1) + missing) / result.fps


def plot_timeline(result: SpotResult, path: str | Path, labels: Mapping[int, str] | None = None) -> Path:
    """Save the timeline of `result` as a PNG.

    Args:
        result: what `spot_video` returned.
        path: the PNG to write.
        labels: an optional class name per interval, keyed by the interval's apex frame.
    """
    plt = pyplot()
    labels = labels or {}
    fps = result.fps
    shown = sorted(sorted(result.intervals, key=lambda i: -(i.peak or 0.0))[:MAX_THUMBNAILS], key=lambda i: i.onset)
    shown = [i for i in shown if i.apex in result.thumbnails]
    strip = bool(shown)
    fig = plt.figure(figsize=(12, 6.2 if strip else 4.2), layout="constrained")
    grid = fig.add_gridspec(2 if strip else 1, max(len(shown), 1), height_ratios=[3, 1.3] if strip else [1])
    ax = fig.add_subplot(grid[0, :])
    t = result.numbers / fps
    for r, name in enumerate(REGIONS):
        ax.plot(t, result.signals[:, r], lw=1.0, label=name)
    ax.axhline(RISE_PX, color="0.3", ls="--", lw=0.8, label=f"rise threshold {RISE_PX} px")
    local = sorted(set(LOCAL_PX.values()))
    ax.axhline(min(local), color="0.3", ls=":", lw=0.8, label=f"local thresholds {min(local)}-{max(local)} px")
    top = float(np.nanmax(result.signals)) if np.isfinite(result.signals).any() else 1.0
    top = max(top, max(local)) * 1.15
    for interval in result.intervals:
        colour = COLOURS.get(interval.type, "0.5")
        ax.axvspan(interval.onset / fps, (interval.offset + 1) / fps, color=colour, alpha=0.2, lw=0)
        text = interval.type + (f": {labels[interval.apex]}" if interval.apex in labels else "")
        ax.text(
            (interval.onset + interval.offset) / 2 / fps,
            top * 0.97,
            text,
            ha="center",
            va="top",
            fontsize=8,
            color=colour,
        )
    for gap in result.gaps:
        ax.axvspan(gap.first / fps, (gap.last + 1) / fps, facecolor="0.85", hatch="//", edgecolor="0.6", lw=0)
    if result.gaps:
        ax.text(result.gaps[0].first / fps, top * 0.5, " no face", fontsize=9, color="0.35")
    ax.set_xlim(*time_span(result))
    ax.set_ylim(0, top)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("motion (px, face at 256 px)")
    micro = sum(i.type == "micro" for i in result.intervals)
    ax.set_title(
        f"{result.video}: {micro} micro, {len(result.intervals) - micro} macro in {result.frames / fps:.1f} s "
        f"({result.fps:.3g} fps)",
        loc="left",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    for k, interval in enumerate(shown):
        thumb = fig.add_subplot(grid[1, k])
        thumb.imshow(result.thumbnails[interval.apex], cmap="gray", vmin=0, vmax=255)
        thumb.set_xticks([])
        thumb.set_yticks([])
        for spine in thumb.spines.values():
            spine.set_color(COLOURS.get(interval.type, "0.5"))
            spine.set_linewidth(2)
        name = f": {labels[interval.apex]}" if interval.apex in labels else ""
        thumb.set_title(f"{interval.apex / fps:.1f} s {interval.type}{name}", fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
