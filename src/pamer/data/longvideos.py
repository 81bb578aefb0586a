"""The records the spotting datasets' readers produce: long videos (frame folders) and their annotated intervals.

A spotting dataset (CAS(ME)^2, SAMM Long Videos) is a set of long frame sequences, each holding several macro-
and micro-expressions coded onset..offset. Its reader (`pamer.data.casme_sq`, `pamer.data.samm_lv`) turns the
owners' sheet and frame tree into a `SpottingIndex`: the videos, the truth as `pamer.spot.Interval`s whose frame
numbers are the frame files' numbers (as the sheets count them), and every problem met, each naming the row or
folder. An annotated interval that cannot be scored (its video is missing, its frames are not numbers) is left
out of the truth and named in `problems`, never silently dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pamer.data._clips import list_frames
from pamer.data.samples import Problem
from pamer.spot.intervals import Interval

__all__ = ["LongVideo", "SpottingIndex", "frame_range"]


@dataclass(frozen=True)
class LongVideo:
    """One long video of a spotting dataset, as a folder of numbered frame files.

    Attributes:
        video: its id in interval files (the folder's name: `15_0101disgustingteeth`, `006_1`).
        subject: the participant (`s15`, `006`).
        folder: the frame folder.
        first, last: the lowest and highest frame number in it.
        frames: how many frame files it holds.
    """

    video: str
    subject: str
    folder: Path
    first: int
    last: int
    frames: int


@dataclass
class SpottingIndex:
    """A spotting dataset as read: its videos, the annotated intervals, and what was wrong.

    Attributes:
        dataset: the reader's name (`casme-sq`, `samm-lv`).
        fps: the frame rate the owners recorded at (CAS(ME)^2 30, SAMM 200).
        sheet: the annotation file read.
        videos: every video with frames, those without an annotated interval included.
        truth: the annotated intervals that can be scored, in sheet order.
        problems: one per rule applied or row left out.
    """

    dataset: str
    fps: float
    sheet: Path
    videos: list[LongVideo] = field(default_factory=list)
    truth: list[Interval] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add_truth(
        self, clip: str, where: str, video: LongVideo, onset: int, offset: int, kind: str, apex: int | None
    ) -> None:
        """Add an annotated interval to the truth; one whose offset comes before its onset is left out and named in
        `problems`, one reaching outside its video's frames is kept and named."""
        if offset < onset:
            detail = f"{where}: offset {offset} is before onset {onset}"
            self.problems.append(Problem(clip, "offset-before-onset", detail))
            return
        if onset < video.first or offset > video.last:
            detail = f"{where}: frames {onset}-{offset} outside the folder's {video.first}-{video.last}"
            self.problems.append(Problem(clip, "frames-outside", detail))
        self.truth.append(Interval(video.video, onset, offset, kind, apex))

    def counts(self) -> dict[str, int]:
        """Annotated intervals per type."""
        return dict(Counter(t.type for t in self.truth))


def frame_range(folder: Path, subject: str, video: str) -> tuple[LongVideo | None, list[str]]:
    """The `LongVideo` of a frame folder (None when it holds no numbered frame), and one `frame-duplicate` problem
    detail per pair of frame files that share a number: the spotter refuses such a folder, so its video is not
    spotted (its intervals count as missed) until one file of each pair is removed."""
    frames, numbers, duplicates = list_frames(folder)
    details = [
        f"{pair} have one frame number: the spotter refuses this folder until one is removed" for pair in duplicates
    ]
    if not frames:
        return None, details
    return LongVideo(video, subject, folder, numbers[0], numbers[-1], len(frames)), details
