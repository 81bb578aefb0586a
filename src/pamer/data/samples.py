"""The records every dataset reader produces: one `Sample` per clip, gathered in a `DatasetIndex`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pamer.errors import PamerError

ApexSource = Literal["annotated", "middle", "spotted"]


class DatasetError(PamerError):
    """A dataset root, sheet or folder that cannot be read as the dataset ships it (the message names the path)."""


@dataclass(frozen=True)
class Problem:
    """Something wrong with one clip: what kind of problem, and the numbers or paths involved."""

    clip: str
    kind: str
    detail: str


@dataclass(frozen=True)
class ActionUnit:
    """One FACS action unit of a clip's coding: its number, side (`L`, `R`, or `""` for bilateral) and intensity
    letter (`A`..`E`, or `""` when not coded), as parsed from the sheet's string by `pamer.data.aus`."""

    number: int
    side: str = ""
    intensity: str = ""


@dataclass
class Sample:
    """One micro-expression clip.

    Frame numbers (`onset`, `apex`, `offset`) are as written in the dataset's files; `frames` lists the clip's
    frame files in numerical order and `frame_numbers` their numbers, so `frames[frame_numbers.index(apex)]`
    is the apex image. `aus` are the clip's action units as the sheet codes them, `au_string` the sheet's raw text;
    both are None where the dataset codes no AUs (SMIC), which is not the same as an empty tuple.
    """

    dataset: str
    subject: str
    clip: str
    label: str
    emotion: str
    onset: int
    apex: int
    offset: int
    apex_source: ApexSource = "annotated"
    frames: list[Path] = field(default_factory=list)
    frame_numbers: list[int] = field(default_factory=list)
    flags: tuple[str, ...] = ()
    aus: tuple[ActionUnit, ...] | None = None
    au_string: str | None = None

    @property
    def uid(self) -> str:
        """A name unique across datasets: `dataset/subject/clip`."""
        return f"{self.dataset}/{self.subject}/{self.clip}"

    def frame(self, number: int) -> Path:
        """The file of frame `number` (a `DatasetError` naming the clip if it is not on disk)."""
        try:
            return self.frames[self.frame_numbers.index(number)]
        except ValueError:
            raise DatasetError(f"clip {self.uid}: no file for frame {number}") from None

    @property
    def onset_path(self) -> Path:
        return self.frame(self.onset)

    @property
    def apex_path(self) -> Path:
        return self.frame(self.apex)


@dataclass
class DatasetIndex:
    """The samples of one dataset under one protocol, the class names in a fixed order, and every problem found.

    `frame_trees` names the folder each dataset's clip folders were read from (`{"casme2":
    ROOT/CASME2_RAW_selected}`; one entry per part of a composite), and `notes` says why, when other folders
    under the root held clips too (`pamer.data._layout`).
    """

    name: str
    classes: tuple[str, ...]
    samples: list[Sample] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    frame_trees: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.samples})

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples)
        return {c: counts.get(c, 0) for c in self.classes}

    def au_counts(self) -> dict[str, int] | None:
        """The number of clips coded with each action unit on either side (`{"4": 129, "12": 31}`, AU numbers as
        text, ascending); None when not one clip is AU-coded (SMIC, or images without an `aus` column)."""
        coded = [s.aus for s in self.samples if s.aus is not None]
        if not coded:
            return None
        counts = Counter(number for aus in coded for number in {unit.number for unit in aus})
        return {str(number): counts[number] for number in sorted(counts)}

    def summary(self) -> dict:
        """The JSON object `pamer datasets check --json` prints; `aus` is `au_counts()` and `aus_coded` the number
        of clips with AU coding (a clip whose sheet says `?` or nothing is not coded)."""
        return {
            "dataset": self.name,
            "samples": len(self.samples),
            "subjects": len(self.subjects),
            "classes": self.class_counts(),
            "aus": self.au_counts(),
            "aus_coded": sum(s.aus is not None for s in self.samples),
            "problems": [{"clip": p.clip, "kind": p.kind, "detail": p.detail} for p in self.problems],
            "frame_trees": {name: str(path) for name, path in self.frame_trees.items()},
            "notes": list(self.notes),
        }
