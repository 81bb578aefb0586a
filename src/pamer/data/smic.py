"""SMIC-HS: the folder tree `HS/s1/micro/negative/s1_ne_01/image<n>.bmp` (no sheet); SMIC-HS-E: its sheet (HS)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pamer.data._clips import Collector, check_root, list_frames
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetError, DatasetIndex

LAYOUT = "ROOT/HS/s1/micro/negative/s1_ne_01/image<n>.bmp (or ROOT = the HS folder)"
_SUBJECT = re.compile(r"s\d+$", re.IGNORECASE)

E_SHEET_PATTERNS = ("SMIC-HS-E*", "SMIC-E*")
E_COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetF", "Onset"),
    "offset": ("OffsetF", "Offset"),
    "emotion": ("Emotion",),
}
E_OPTIONAL = {"onset2": ("Onset2F",)}
E_LAYOUT = "ROOT/HS/s20/s20_ne_01/image17581039.jpg (any depth) beside ROOT/SMIC-HS-E_annotation.xlsx"


def _hs_root(root: Path) -> Path:
    """The folder holding the subject folders: `root/HS`, or `root` itself when it is the HS folder."""
    return root / "HS" if (root / "HS").is_dir() else root


def read(root: Path, protocol: str | None = None) -> DatasetIndex:
    """Read SMIC-HS from its folder tree; the emotion is the folder name, the apex the middle frame.

    SMIC-HS has no annotation sheet: its clips are cut from onset to offset, so onset = first frame, offset =
    last frame, and the apex is the middle frame (the paper's rule; `apex_source` "middle").
    """
    root = check_root(root, "SMIC-HS")
    rules = Collector("smic", get_protocol("smic", protocol))
    hs = _hs_root(root)
    for subject_dir in sorted(p for p in hs.iterdir() if p.is_dir() and _SUBJECT.match(p.name)):
        micro = subject_dir / "micro"
        if not micro.is_dir():  # subjects without micro-expressions ship only non_micro clips
            continue
        for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                _, numbers, _ = list_frames(clip_dir)
                rules.add(
                    subject=subject_dir.name.lower(),
                    clip=clip_dir.name,
                    emotion=emotion_dir.name,
                    onset=numbers[0] if numbers else 0,
                    apex=None,
                    offset=numbers[-1] if numbers else 0,
                    folder=clip_dir,
                    where=str(clip_dir),
                    apex_rule="middle",
                )
    if not rules.samples and not rules.problems:
        raise DatasetError(f"no SMIC-HS clips under {root}; expected {LAYOUT}")
    return rules.index(root, LAYOUT)


def _clip_folders(root: Path) -> dict[str, list[Path]]:
    """Every folder under `root` by lower-case name (SMIC-E releases nest the clip folders differently)."""
    found: dict[str, list[Path]] = {}
    for parent, dirs, _ in os.walk(root):
        for name in dirs:
            found.setdefault(name.lower(), []).append(Path(parent) / name)
    return found


def read_e(root: Path, protocol: str | None = None, *, sheet: Path | None = None) -> DatasetIndex:
    """Read SMIC-HS-E (the long clips): the sheet's HS worksheet and the clip folders anywhere under `root`.

    Frame numbers are absolute (`image17581039.jpg`); there is no apex, so the apex is the middle frame
    between onset and offset (the paper's rule). A clip with a second micro-expression (`Onset2F`) keeps its
    first one and is flagged `more-intervals`. Rows without an emotion (trailing notes) are skipped.
    """
    root = check_root(root, "SMIC-HS-E")
    rules = Collector("smic-e", get_protocol("smic-e", protocol))
    path = find_sheet(root, E_SHEET_PATTERNS, "SMIC-HS-E annotation", sheet)
    folders = _clip_folders(root)
    layout = "worksheet HS with a header row Subject, Filename, OnsetF, OffsetF, ..., Emotion"
    for row in read_rows(path, E_COLUMNS, optional=E_OPTIONAL, sheets=("HS",), layout=layout):
        if row["emotion"] is None:
            continue
        number = row["subject"].lower().removeprefix("s").removesuffix(".0")
        subject = f"s{int(number)}" if number.isdigit() else row["subject"]
        candidates = folders.get(row["clip"].lower(), [])
        # the VIS and NIR recordings reuse the clip names; prefer the HS copy
        hs = [p for p in candidates if "hs" in (part.lower() for part in p.parts)]
        folder = (hs or candidates or [root / "HS" / subject / row["clip"]])[0]
        if len(hs or candidates) > 1:
            listed = ", ".join(str(p) for p in hs or candidates)
            rules.problem(subject, row["clip"], "ambiguous-folder", f"several folders ({listed}); using {folder}")
        rules.add_row(
            row,
            path,
            subject=subject,
            folder=folder,
            emotion=row["emotion"],
            apex=None,
            apex_rule="middle",
            flags=("more-intervals",) if row["onset2"] else (),
        )
    return rules.index(root, E_LAYOUT)
