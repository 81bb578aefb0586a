"""Spot every long video of a spotting dataset and score the result: `pamer spot evaluate NAME --root ROOT`.

The readers (`pamer.data.casme_sq`, `pamer.data.samm_lv`) give the videos and the annotated intervals; each video
is spotted at the dataset's own frame rate (CAS(ME)^2 30 fps, SAMM 200 fps: the spotter subsamples high frame rates
itself), and the predictions are scored against the truth by `pamer.spot.score` over every video of the dataset,
those without an annotated interval included (their predictions are false positives, as in MEGC2020).

Nothing is fitted: the spotter runs with its defaults, so the whole dataset is a test set. A video the spotter
refuses (a frame that cannot be decoded, frames of different sizes) is reported and scores as a video where nothing
was found; a video without a face is spotted as one where nothing happens.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pamer.spot
from pamer.data import casme_sq, samm_lv
from pamer.data.longvideos import LongVideo, SpottingIndex
from pamer.data.samples import DatasetError, Problem
from pamer.spot.intervals import Interval
from pamer.spot.score import DEFAULT_IOU, Score, score
from pamer.spot.source import SpotError

__all__ = ["SPOTTING_DATASETS", "Evaluation", "evaluate", "read_spotting"]

# name -> reader(root, sheet=None); `pamer spot evaluate NAME` takes the same names
SPOTTING_DATASETS: Mapping[str, Callable[..., SpottingIndex]] = MappingProxyType(
    {
        casme_sq.NAME: casme_sq.read,  # CAS(ME)^2: rawpic/ + CAS(ME)^2code_final.xlsx
        samm_lv.NAME: samm_lv.read,  # SAMM Long Videos: SAMM_longvideos/ + SAMM_LongVideos_V1_Release.xlsx
    }
)


def read_spotting(name: str, root: str | Path, sheet: str | Path | None = None) -> SpottingIndex:
    """Read spotting dataset `name` (one of `SPOTTING_DATASETS`) from `root`, its sheet there or at `sheet`.

    Raises:
        DatasetError: an unknown name, or a root or sheet that cannot be read (the message names it).
    """
    if name not in SPOTTING_DATASETS:
        raise DatasetError(f"unknown spotting dataset {name!r}; expected one of {', '.join(SPOTTING_DATASETS)}")
    return SPOTTING_DATASETS[name](Path(root), sheet=None if sheet is None else Path(sheet))


@dataclass
class Evaluation:
    """One evaluation: the dataset as read, what was spotted in each video, the score, the videos the spotter
    refused (`spot-refused`) and what it warned about in the others (`spot-warning`: frames without a face)."""

    index: SpottingIndex
    predicted: list[Interval]
    score: Score
    refused: list[Problem]
    warnings: list[Problem]


def evaluate(
    index: SpottingIndex,
    *,
    iou: float = DEFAULT_IOU,
    spotter: Callable[..., list[Interval]] | None = None,
    progress: Callable[[int, LongVideo, int], None] | None = None,
) -> Evaluation:
    """Spot every video of `index` and score the predictions against its truth.

    Args:
        index: a spotting dataset as read (`read_spotting`).
        iou: the IoU threshold of the score.
        spotter: `spotter(frame_folder, fps=...) -> list[Interval]`; None: `pamer.spot.spot` with its defaults.
        progress: called after each video with (videos done, that video, intervals found).
    """
    spot = pamer.spot.spot if spotter is None else spotter
    predicted: list[Interval] = []
    refused: list[Problem] = []
    warned: list[Problem] = []
    for done, video in enumerate(index.videos, 1):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found = spot(video.folder, fps=index.fps)
            warned += [Problem(f"{index.dataset}/{video.video}", "spot-warning", str(w.message)) for w in caught]
        except SpotError as error:  # a frame that cannot be decoded, frames of different sizes: named in the message
            refused.append(Problem(f"{index.dataset}/{video.video}", "spot-refused", str(error)))
            found = []
        # the interval files and the truth name a video by the dataset's id, whatever the spotter calls it
        found = [dataclasses.replace(interval, video=video.video) for interval in found]
        predicted.extend(found)
        if progress is not None:
            progress(done, video, len(found))
    result = score(index.truth, predicted, iou, videos=[video.video for video in index.videos])
    return Evaluation(index, predicted, result, refused, warned)
