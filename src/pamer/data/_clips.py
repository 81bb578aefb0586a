"""From one annotated clip (sheet numbers + frame folder) to a `Sample`, every rule applied named in a `Problem`."""

from __future__ import annotations

import os
from pathlib import Path

from pamer.data._layout import FrameTree, is_junk
from pamer.data._sheet import Row
from pamer.data.aus import parse_cell
from pamer.data.labels import EMOTIONS, Protocol, normalise_emotion
from pamer.data.samples import ApexSource, DatasetError, DatasetIndex, Problem, Sample
from pamer.frames import file_frame_number

# problem kinds that mean the sheet's apex could not be used as written (the MEGC2019 list leaves these clips out)
SHEET_APEX_FLAGS = frozenset({"apex-missing", "apex-outside", "apex-at-onset"})


def frame_number(text: object) -> int | None:
    """A sheet cell as a frame number (`46`, `46.0`), or None when it is not one (`/`, blank, `n/a`)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def list_frames(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """The image files of `folder` sorted by frame number, their numbers, and the names of duplicated numbers.

    Listing order is arbitrary and names are not zero-padded alike (`img9`, `img10`), so sort by number. Junk
    is never a frame: a macOS copy's `._img46.jpg` (an AppleDouble header, not an image) would otherwise take
    frame 46 from `img46.jpg`; hidden files, `Thumbs.db` and files without an image suffix are left out too.
    """
    numbered: dict[int, Path] = {}
    duplicates: list[str] = []
    # scandir: the entry type comes with the listing, no stat per file (SMIC-E clips hold hundreds of frames)
    with os.scandir(folder) as entries:
        files = sorted(e.name for e in entries if not is_junk(e.name) and e.is_file())
    for name in files:
        number = file_frame_number(name)  # the rule `pamer predict` numbers a user's frames by
        if number is None:
            continue
        if number in numbered:
            duplicates.append(f"{numbered[number].name} and {name}")
            continue
        numbered[number] = folder / name
    numbers = sorted(numbered)
    return [numbered[n] for n in numbers], numbers, duplicates


def _nearest(numbers: list[int], target: int) -> int:
    return min(numbers, key=lambda n: (abs(n - target), n))


class Collector:
    """Gathers the samples and problems of one dataset read, and builds each `Sample` by the shared rules."""

    def __init__(self, dataset: str, protocol: Protocol) -> None:
        self.dataset = dataset
        self.protocol = protocol
        self.samples: list[Sample] = []
        self.problems: list[Problem] = []
        self.folders_missing = 0
        self._seen: dict[tuple[str, str], tuple[str, str]] = {}  # (subject, clip) case-folded -> as first written

    def problem(self, subject: str, clip: str, kind: str, detail: str) -> None:
        self.problems.append(Problem(f"{self.dataset}/{subject}/{clip}", kind, detail))

    def add_row(self, row: Row, sheet: Path, *, folder: Path, subject: str | None = None, **fields) -> Sample | None:
        """`add` with the sheet row's clip, emotion, onset, apex and offset; `fields` override any of them."""
        values = {
            "subject": row["subject"] if subject is None else subject,
            "clip": row["clip"],
            "emotion": row["emotion"] or "",
            "onset": row["onset"],
            "apex": row.cells.get("apex"),  # SMIC-E has no apex column
            "offset": row["offset"],
            "where": f"{sheet.name} row {row.number}",
            "aus": row.cells.get("aus"),  # None where the sheet has no AU column (the dataset codes none)
        }
        return self.add(folder=folder, **{**values, **fields})

    def add(
        self,
        *,
        subject: str,
        clip: str,
        emotion: str,
        onset: object,
        apex: object,
        offset: object,
        folder: Path,
        where: str,
        apex_rule: ApexSource = "annotated",
        flags: tuple[str, ...] = (),
        aus: str | None = None,
    ) -> Sample | None:
        """Build, check and keep one clip; returns the sample, or None when it was left out (with a problem).

        Args:
            onset, apex, offset: the sheet's cells (numbers or text); `apex` is ignored when `apex_rule` is
                "middle" (datasets without an apex annotation: SMIC).
            where: where the numbers came from, for problem details (e.g. "sheet row 31").
            aus: the sheet's action unit cell (`pamer.data.aus`), None where the dataset codes no AUs; a cell
                that cannot be read is a `bad-aus` problem and the clip is kept without AU coding.
        """
        # folder names match ignoring case, so `ep02_01f` names the folder of `EP02_01f`: the same clip again
        key = (subject.casefold(), clip.casefold())
        if key in self._seen:
            first = self._seen[key]
            spelled = "" if first == (subject, clip) else f" (as {'/'.join(first)}, the same folder ignoring case)"
            self.problem(
                subject, clip, "duplicate-row", f"{where}: the clip appears again{spelled}; the first row is kept"
            )
            return None
        self._seen[key] = (subject, clip)
        name = normalise_emotion(emotion)
        if name not in EMOTIONS[self.dataset]:
            known = ", ".join(EMOTIONS[self.dataset])
            self.problem(subject, clip, "unknown-emotion", f"{where}: emotion {emotion!r} is not one of {known}")
            return None
        label = self.protocol.label(name)
        if label is None:  # not a class of this protocol (e.g. fear in CASME II 5-class): not a problem
            return None

        first, last = frame_number(onset), frame_number(offset)
        if first is None or last is None:
            bad = onset if first is None else offset
            which = "onset" if first is None else "offset"
            self.problem(subject, clip, "bad-frame-number", f"{where}: {which} {bad!r} is not a frame number")
            return None
        if last < first:
            self.problem(subject, clip, "onset-after-offset", f"{where}: onset {first} > offset {last}; left out")
            return None

        if not folder.is_dir():
            self.folders_missing += 1
            self.problem(subject, clip, "missing-folder", f"no folder {folder}; left out")
            return None
        frames, numbers, duplicates = list_frames(folder)
        for pair in duplicates:
            self.problem(subject, clip, "duplicate-frame", f"{folder}: {pair} have the same frame number; first kept")
        if len(numbers) < 2:
            self.problem(subject, clip, "no-frames", f"{folder} holds {len(numbers)} numbered image(s); left out")
            return None

        flags = list(flags)
        source: ApexSource = apex_rule
        peak = frame_number(apex) if apex_rule == "annotated" else None
        middle = (first + last) // 2
        if apex_rule == "annotated":
            # A sheet apex that is absent, outside its own clip, or equal to the onset (an all-zero motion image)
            # cannot be the peak as written; the paper's rule for clips without an apex (SMIC) is the middle
            # frame between onset and offset, so it stands in, flagged so that protocols may leave these out.
            reason = None
            if peak is None:
                reason = ("apex-missing", f"apex {apex!r} is not a frame number")
            elif not first <= peak <= last:
                reason = ("apex-outside", f"apex {peak} is outside onset..offset {first}..{last}")
            elif peak == first:
                reason = ("apex-at-onset", f"apex {peak} equals the onset")
            if reason is not None:
                kind, why = reason
                flags.append(kind)
                source = "middle"
                self.problem(subject, clip, kind, f"{where}: {why}; using the middle frame {middle}")
                peak = None

        # A number with no file: the nearest frame on disk stands in (SAMM 028_4_1 and 032_3_1 ship no frames
        # up to the annotated apex) - the closest shipped frame is the best available view of that moment.
        span = f"frames on disk {numbers[0]}..{numbers[-1]}"
        missing = "missing-frame"
        if first not in numbers:
            near = _nearest(numbers, first)
            flags.append("onset-frame-missing")
            self.problem(subject, clip, missing, f"{where}: onset {first} has no file ({span}); using frame {near}")
            first = near
        if peak is None:
            peak = _nearest(numbers, middle)
        elif peak not in numbers:
            near = _nearest(numbers, peak)
            flags.append("apex-frame-missing")
            self.problem(subject, clip, missing, f"{where}: apex {peak} has no file ({span}); using frame {near}")
            peak = near
        if last not in numbers:
            # the offset is not read by the motion image; it is kept as written and reported
            flags.append("offset-frame-missing")
            self.problem(subject, clip, missing, f"{where}: offset {last} has no file ({span}); kept as written")
        if peak == first:
            self.problem(subject, clip, "no-motion", f"onset and apex fall on the same file ({span}); left out")
            return None

        coded, bad = parse_cell(aus, where)
        if bad:
            self.problem(subject, clip, "bad-aus", bad)
        sample = Sample(
            dataset=self.dataset,
            subject=subject,
            clip=clip,
            label=label,
            emotion=str(emotion),
            onset=first,
            apex=peak,
            offset=last,
            apex_source=source,
            frames=frames,
            frame_numbers=numbers,
            flags=tuple(flags),
            aus=coded,
            au_string=None if aus is None else str(aus),
        )
        self.samples.append(sample)
        return sample

    def index(self, root: Path, layout: str, tree: FrameTree | None = None) -> DatasetIndex:
        """The finished index, with the frame tree the clips were read from (`tree`, and its note if any); an
        error when not one clip folder was found (a wrong root, not N problems)."""
        if self.folders_missing and not self.samples:
            raise DatasetError(f"none of the {self.folders_missing} clip folders found under {root}; expected {layout}")
        index = DatasetIndex(self.dataset, self.protocol.classes, self.samples, self.problems)
        if tree is not None:
            index.frame_trees[self.dataset] = tree.path
            index.notes += [tree.note] if tree.note else []
        return index


def check_root(root: Path, what: str) -> Path:
    """`root` as a Path, or a `DatasetError` naming it when it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{what} root {root} does not exist or is not a folder")
    return root
