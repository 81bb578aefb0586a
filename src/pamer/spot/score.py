"""The MEGC spotting score: how many annotated intervals a spotter found, per type and overall.

Counting follows the MEGC2020 spotting evaluation (Y. He, S.-J. Wang, J. Li, M. H. Yap, "Spotting macro- and
micro-expression intervals in long video sequences", FG 2020; its public code
HeyingGithub/Baseline-project-for-MEGC2020_spotting, `MDMD_results/result_helper.py`), which MEGC2021 and
MEGC2022 kept:

- Intervals are frame ranges, onset and offset inclusive. IoU = |truth ∩ predicted| / |truth ∪ predicted| in
  frames; for overlapping intervals this is the baseline's `calc_iou`, (min(offsets) - max(onsets) + 1) /
  (frames of truth + frames of prediction - that intersection).
- Per type (micro, macro), in each video, a truth interval is found when a predicted interval of the same type
  has IoU >= the threshold (0.5). TP = truth intervals found, FP = predicted - TP, FN = truth - TP, summed over
  all videos; precision = TP / predicted, recall = TP / truth, F1 = 2 TP / (2 TP + FP + FN) (which equals
  2 P R / (P + R)). `overall` sums both types' counts.

Where pamer differs from that code, and why:

- One predicted interval finds at most one truth interval (a maximum one-to-one matching per video and type).
  The baseline lets one prediction find two truths; then FP = predicted - TP goes negative and precision passes
  1. At IoU >= 0.5 this happens only when the prediction covers two disjoint truths exactly at the threshold
  (e.g. truths 1-10 and 11-20, prediction 1-20: IoU 0.5 with each), or with overlapping truths; whenever every
  prediction finds at most one truth, the counts are the baseline's.
- Disjoint intervals have IoU 0 (the baseline's `calc_iou` gives them 1 / union, which can reach a threshold
  below 0.5), and a one-frame interval counts by the same formula (the baseline gives it 0).
- A truth interval given twice (the same video, onset, offset and type: a row copied in a sheet or file) is counted
  once: one-to-one, its copy could never be found, and would count as missed whatever was predicted. The baseline
  counts both found by one prediction (FP then goes negative).
- A rate with nothing to count is undefined (None, printed `-`), not 0: precision with no prediction, recall with
  no truth, F1 with neither.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pamer.spot.intervals import TYPES, Interval
from pamer.spot.source import SpotError

__all__ = ["DEFAULT_IOU", "Counts", "Score", "iou", "match", "score"]

DEFAULT_IOU = 0.5  # MEGC2020-2022: a truth interval is found at IoU >= 0.5


def iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two intervals in frames, onset and offset inclusive (0 when disjoint)."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    return inter / (a.frames + b.frames - inter)


def match(truth: Sequence[Interval], predicted: Sequence[Interval], threshold: float = DEFAULT_IOU) -> int:
    """How many truth intervals are found: the size of a largest matching of truths to predictions, each used at
    most once, in which every pair has IoU >= `threshold` (Kuhn's augmenting paths; a video holds few intervals).
    """
    candidates = [[j for j, p in enumerate(predicted) if iou(t, p) >= threshold] for t in truth]
    owner: dict[int, int] = {}  # prediction -> the truth it finds

    def augment(i: int, seen: set[int]) -> bool:
        for j in candidates[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(truth)) if candidates[i])


@dataclass(frozen=True)
class Counts:
    """Counts of one type (or both): truth and predicted intervals, and how many truths were found."""

    truth: int = 0
    predicted: int = 0
    tp: int = 0

    @property
    def fp(self) -> int:
        return self.predicted - self.tp

    @property
    def fn(self) -> int:
        return self.truth - self.tp

    @property
    def precision(self) -> float | None:
        """TP / predicted; None when nothing was predicted."""
        return self.tp / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        """TP / truth; None when there is no truth interval."""
        return self.tp / self.truth if self.truth else None

    @property
    def f1(self) -> float | None:
        """2 TP / (2 TP + FP + FN); None when there is neither a truth nor a predicted interval."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.truth + other.truth, self.predicted + other.predicted, self.tp + other.tp)

    def to_dict(self) -> dict[str, int | float | None]:
        return {
            "truth": self.truth,
            "predicted": self.predicted,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class Score:
    """The score of one prediction against one truth.

    Attributes:
        iou: the IoU threshold used.
        micro, macro: the counts of each type; `overall` sums them.
        unknown_videos: predicted videos the truth does not list (all their intervals are FP).
        repeated: truth intervals given again after their first (same video, onset, offset and type), which were
            counted once.
    """

    iou: float
    micro: Counts
    macro: Counts
    unknown_videos: tuple[str, ...] = field(default=())
    repeated: tuple[Interval, ...] = field(default=())

    @property
    def overall(self) -> Counts:
        return self.micro + self.macro

    def counts(self) -> dict[str, Counts]:
        """`micro`, `macro` and `overall`, in that order."""
        return {"micro": self.micro, "macro": self.macro, "overall": self.overall}

    def to_dict(self) -> dict[str, dict[str, int | float | None]]:
        """`{"micro": {...}, "macro": {...}, "overall": {...}}`, each with truth, predicted, tp, fp, fn,
        precision, recall and f1 (None where undefined)."""
        return {name: counts.to_dict() for name, counts in self.counts().items()}


def _checked(interval: Interval) -> str:
    if interval.type not in TYPES:
        raise SpotError(f"{interval}: type {interval.type!r} is not one of {', '.join(TYPES)}")
    return interval.type


def score(
    truth: Iterable[Interval],
    predicted: Iterable[Interval],
    threshold: float = DEFAULT_IOU,
    videos: Iterable[str] | None = None,
) -> Score:
    """Score `predicted` against `truth` as the MEGC spotting challenges do (module docstring).

    Args:
        truth: the annotated intervals; one given twice (same video, onset, offset and type) counts once.
        predicted: the spotted intervals.
        threshold: the IoU at or above which a prediction finds a truth interval, in (0, 1].
        videos: every video the truth covers, those without any annotated interval included (a dataset's video
            list); None: the videos `truth` names. Predictions in other videos are reported in `unknown_videos`.

    Raises:
        SpotError: a threshold outside (0, 1], or an interval whose type is not micro or macro.
    """
    if not 0 < threshold <= 1:
        raise SpotError(f"the IoU threshold must be in (0, 1], got {threshold}")
    by_key: dict[tuple[str, str], tuple[list[Interval], list[Interval]]] = defaultdict(lambda: ([], []))
    truth = list(truth)
    known = {t.video for t in truth} if videos is None else set(videos)
    seen, repeated = set(), []
    for t in truth:
        key = (t.video, t.onset, t.offset, _checked(t))
        if key in seen:
            repeated.append(t)  # one expression annotated twice is one to find
            continue
        seen.add(key)
        by_key[t.video, t.type][0].append(t)
    unknown = set()
    for p in predicted:
        by_key[p.video, _checked(p)][1].append(p)
        if p.video not in known:
            unknown.add(p.video)
    totals = dict.fromkeys(TYPES, Counts())
    for (_, kind), (truths, predictions) in by_key.items():
        totals[kind] += Counts(len(truths), len(predictions), match(truths, predictions, threshold))
    return Score(threshold, totals["micro"], totals["macro"], tuple(sorted(unknown)), tuple(repeated))
