"""CAS(ME)^3 part A: `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` and frames `spNO.1/b/color/175.jpg`."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root, frame_number
from pamer.data._layout import find_clip_folders
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.aus import AU_COLUMNS
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetIndex

SHEET_PATTERNS = ("cas(me)3_part_A_ME_label*", "CAS(ME)3_part_A_ME_label*")
COLUMNS = {
    "subject": ("Subject", "sub"),
    "clip": ("Filename", "seq"),
    "onset": ("Onset", "OnsetFrame"),
    "apex": ("Apex", "ApexFrame"),
    "offset": ("Offset", "OffsetFrame"),
    "emotion": ("emotion", "Estimated Emotion"),
}
LAYOUT = "ROOT/spNO.1/b/color/175.jpg beside ROOT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"


def read(
    root: Path, protocol: str | None = None, *, sheet: Path | None = None, frames: Path | None = None
) -> DatasetIndex:
    """Read CAS(ME)^3 part A micro-expressions: the label sheet and the colour frames of each recording.

    A recording (`Filename`, e.g. `b`) holds several micro-expressions, so a sample is named by its recording
    and onset: clip `b_175`, frames from `spNO.1/b/color/` in the frame tree (the folder under `root` holding
    them, `pamer.data._layout`, or `frames`). Emotions `happy`/`sad` are normalised.
    """
    root = check_root(root, "CAS(ME)^3")
    rules = Collector("casme3", get_protocol("casme3", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "CAS(ME)^3 part A label", sheet)
    rows = read_rows(
        path,
        COLUMNS,
        optional={"aus": AU_COLUMNS},
        sheets=("label",),
        layout="a header row Subject, Filename, Onset, Apex, ...",
    )
    levels = [(row["subject"], row["clip"], "color") for row in rows]
    tree, folders = find_clip_folders(root, levels, what="CAS(ME)^3", sheet=path, layout=LAYOUT, frames=frames)
    for row, folder in zip(rows, folders, strict=True):
        onset = frame_number(row["onset"])
        rules.add_row(row, path, clip=f"{row['clip']}_{row['onset'] if onset is None else onset}", folder=folder)
    return rules.index(root, LAYOUT, tree)
