"""CASME II: `CASME2-coding-*.xlsx` beside a frame tree `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root
from pamer.data._layout import find_clip_folders
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.aus import AU_COLUMNS
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
LAYOUT = (
    "ROOT/CASME2-coding-*.xlsx beside ROOT/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg "
    "(or CASME2_RAW/, Cropped/ with reg_img46.jpg, or sub01/ in ROOT itself)"
)
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


def read(
    root: Path, protocol: str | None = None, *, sheet: Path | None = None, frames: Path | None = None
) -> DatasetIndex:
    """Read CASME II as released: the coding sheet (found in `root`, or `sheet`) and its frame tree.

    The frame tree is the folder under `root` that holds the sheet's `sub01/EP02_01f` folders
    (`CASME2_RAW_selected/`, `CASME2_RAW/`, `Cropped/` or `root` itself; raw before cropped when both are
    there: `pamer.data._layout`), or `frames` when given. Samples are named `sub01` / `EP02_01f`, the names of
    the folders. Quirks handled by the shared rules (`pamer.data._clips`): the apex `/` of sub04/EP12_01f and
    the apex equal to the onset of sub05/EP09_05f become the middle frame, each with a problem entry.
    """
    root = check_root(root, "CASME II")
    rules = Collector("casme2", get_protocol("casme2", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "CASME II coding", sheet)
    clips = []
    for row in read_rows(
        path, COLUMNS, optional={"aus": AU_COLUMNS}, layout="header row: Subject, Filename, OnsetFrame, ApexFrame, ..."
    ):
        subject = subject_folder(row["subject"])
        if subject is None:
            detail = f"{path.name} row {row.number}: subject {row['subject']!r} is not a number"
            rules.problem(row["subject"], row["clip"], "bad-subject", detail)
            continue
        clips.append((row, subject))
    levels = [(subject, row["clip"]) for row, subject in clips]
    tree, folders = find_clip_folders(root, levels, what="CASME II", sheet=path, layout=LAYOUT, frames=frames)
    for (row, subject), folder in zip(clips, folders, strict=True):
        rules.add_row(row, path, subject=subject, folder=folder)
    return rules.index(root, LAYOUT, tree)
