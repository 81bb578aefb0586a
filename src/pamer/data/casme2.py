"""CASME II: `CASME2-coding-*.xlsx` and frame folders `sub01/EP02_01f/img46.jpg` (`reg_img46.jpg` when cropped)."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetIndex

SHEET_PATTERNS = ("CASME2-coding-*",)
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame"),
    "apex": ("ApexFrame", "Apex Frame"),
    "offset": ("OffsetFrame", "Offset Frame"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
LAYOUT = "ROOT/sub01/EP02_01f/img46.jpg beside ROOT/CASME2-coding-*.xlsx"
# the released sheet's first row, blank columns included (what a CASME II-style sheet writer must reproduce)
SHEET_HEADER = (
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
)


def subject_folder(cell: str) -> str | None:
    """The sheet's subject (`01`, `1`, `1.0` or `sub01`) as its folder name `sub01`; None if it is neither."""
    text = cell.lower().removeprefix("sub")
    try:
        return f"sub{int(float(text)):02d}"
    except ValueError:
        return None


def read(root: Path, protocol: str | None = None, *, sheet: Path | None = None) -> DatasetIndex:
    """Read CASME II as released: the coding sheet (found in `root`, or `sheet`) and the clip folders in `root`.

    Samples are named `sub01` / `EP02_01f`, the names of the folders. Quirks handled by the shared rules
    (`pamer.data._clips`): the apex `/` of sub04/EP12_01f and the apex equal to the onset of sub05/EP09_05f
    become the middle frame, each with a problem entry.
    """
    root = check_root(root, "CASME II")
    rules = Collector("casme2", get_protocol("casme2", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "CASME II coding", sheet)
    for row in read_rows(path, COLUMNS, layout="header row: Subject, Filename, OnsetFrame, ApexFrame, ..."):
        where = f"{path.name} row {row.number}"
        subject = subject_folder(row["subject"])
        if subject is None:
            rules.problem(
                row["subject"], row["clip"], "bad-subject", f"{where}: subject {row['subject']!r} is not a number"
            )
            continue
        rules.add_row(row, path, subject=subject, folder=root / subject / row["clip"])
    return rules.index(root, LAYOUT)
