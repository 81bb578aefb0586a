"""MMEW: `MMEW_Micro_Exp.xlsx` and frame folders by emotion, `happiness/S01-01-001/15.jpg`."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root
from pamer.data._layout import find_clip_folders
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.aus import AU_COLUMNS
from pamer.data.labels import get_protocol, spellings
from pamer.data.samples import DatasetIndex

SHEET_PATTERNS = ("MMEW_Micro_Exp*",)
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame"),
    "apex": ("ApexFrame", "Apex Frame"),
    "offset": ("OffsetFrame", "Offset Frame"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
LAYOUT = "ROOT/happiness/S01-01-001/15.jpg beside ROOT/MMEW_Micro_Exp.xlsx"


def read(
    root: Path, protocol: str | None = None, *, sheet: Path | None = None, frames: Path | None = None
) -> DatasetIndex:
    """Read MMEW micro-expressions: the sheet and the clip folders, grouped in one folder per emotion, in the
    frame tree (the folder under `root` holding them, `pamer.data._layout`, or `frames`).

    The emotion folder is matched to the sheet's emotion ignoring case and spelling (`others`/`Other`).
    """
    root = check_root(root, "MMEW")
    rules = Collector("mmew", get_protocol("mmew", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "MMEW micro-expression", sheet)
    rows = read_rows(
        path, COLUMNS, optional={"aus": AU_COLUMNS}, layout="a header row Subject, Filename, OnsetFrame, ApexFrame, ..."
    )
    levels = [((row["emotion"] or "", *spellings(row["emotion"] or "")), row["clip"]) for row in rows]
    tree, folders = find_clip_folders(root, levels, what="MMEW", sheet=path, layout=LAYOUT, frames=frames)
    for row, folder in zip(rows, folders, strict=True):
        rules.add_row(row, path, folder=folder)
    return rules.index(root, LAYOUT, tree)
