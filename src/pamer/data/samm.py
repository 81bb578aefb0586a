"""SAMM: `SAMM_Micro_FACS_Codes_v2.xlsx` (sheet MICRO_ONLY) beside a frame tree `SAMM/006/006_1_2/006_05562.jpg`."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root, frame_number
from pamer.data._layout import find_clip_folders
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.aus import AU_COLUMNS
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetIndex

SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*",)
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("Onset Frame", "OnsetFrame"),
    "apex": ("Apex Frame", "ApexFrame"),
    "offset": ("Offset Frame", "OffsetFrame"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
LAYOUT = "ROOT/SAMM_Micro_FACS_Codes_v2.xlsx beside ROOT/SAMM/006/006_1_2/006_05562.jpg (or 006/ in ROOT itself)"


def read(
    root: Path, protocol: str | None = None, *, sheet: Path | None = None, frames: Path | None = None
) -> DatasetIndex:
    """Read SAMM as released: the FACS codes sheet (found in `root`, or `sheet`) and its frame tree.

    The frame tree is the folder under `root` that holds the sheet's `006/006_1_2` folders (`SAMM/` or `root`
    itself: `pamer.data._layout`), or `frames` when given. The header row sits below a block of notes and is
    found by its cells (`pamer.data._sheet.read_rows`).

    Subjects are the three-digit folder names (`006`), whether the sheet holds them as text or numbers.
    Frame files are found by number whatever their zero-padding, which varies between sequences.
    """
    root = check_root(root, "SAMM")
    rules = Collector("samm", get_protocol("samm", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "SAMM FACS codes", sheet)
    layout = "sheet MICRO_ONLY, a header row Subject, Filename, ..., Onset Frame, Apex Frame, Offset Frame, ..."
    clips = []
    for row in read_rows(path, COLUMNS, optional={"aus": AU_COLUMNS}, sheets=("MICRO_ONLY",), layout=layout):
        # a number cell (6, read back as `6` or `6.0`) names the folder `006`
        number = frame_number(row["subject"])
        clips.append((row, row["subject"] if number is None else f"{number:03d}"))
    levels = [(subject, row["clip"]) for row, subject in clips]
    tree, folders = find_clip_folders(root, levels, what="SAMM", sheet=path, layout=LAYOUT, frames=frames)
    for (row, subject), folder in zip(clips, folders, strict=True):
        rules.add_row(row, path, subject=subject, folder=folder)
    return rules.index(root, LAYOUT, tree)
