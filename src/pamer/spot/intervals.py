"""Spotted intervals: what `pamer spot` finds in a long video and what `pamer spot score` counts.

Frames are numbered as the video's own frame indices (or the frame files' numbers for a frame folder), and an
interval's onset and offset are both inclusive, as in the MEGC spotting challenges' ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

# MEGC rule (He et al., FG 2020; MEGC2021/2022 calls): an expression lasting at most 0.5 s is a micro-expression,
# a longer one a macro-expression.
MICRO_MAX_SECONDS = 0.5
TYPES = ("micro", "macro")


def expression_type(onset: int, offset: int, fps: float) -> str:
    """`micro` if the interval (frames inclusive) lasts at most `MICRO_MAX_SECONDS` at `fps`, else `macro`."""
    return "micro" if (offset - onset + 1) / fps <= MICRO_MAX_SECONDS else "macro"


@dataclass(frozen=True)
class Interval:
    """One spotted (or annotated) expression in a video.

    Attributes:
        video: the video's id (its file stem, or the dataset's name for it).
        onset: first frame of the expression (inclusive).
        offset: last frame of the expression (inclusive).
        type: `micro` or `macro`.
        apex: the frame of peak motion (None where unknown, as in a ground-truth file without apexes).
        peak: the peak motion in pixels at the face's scale (None where unknown).
    """

    video: str
    onset: int
    offset: int
    type: str
    apex: int | None = None
    peak: float | None = None

    @property
    def frames(self) -> int:
        """How many frames the interval spans (onset and offset included)."""
        return self.offset - self.onset + 1
