"""CAS(ME)^3 part A: `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` and frames `spNO.1/b/color/175.jpg`."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root, frame_number
from pamer.data._sheet import find_sheet, read_rows
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


def read(root: Path, protocol: str | None = None, *, sheet: Path | None = None) -> DatasetIndex:
    """Read CAS(ME)^3 part A micro-expressions: the label sheet and the colour frames of each recording.

    A recording (`Filename`, e.g. `b`) holds several micro-expressions, so a sample is named by its recording
    and onset: clip `b_175`, frames from `ROOT/spNO.1/b/color/`. Emotions `happy`/`sad` are normalised.
    """
    root = check_root(root, "CAS(ME)^3")
    rules = Collector("casme3", get_protocol("casme3", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "CAS(ME)^3 part A label", sheet)
    for row in read_rows(path, COLUMNS, sheets=("label",), layout="a header row Subject, Filename, Onset, Apex, ..."):
        onset = frame_number(row["onset"])
        rules.add_row(
            row,
            path,
            clip=f"{row['clip']}_{row['onset'] if onset is None else onset}",
            folder=root / row["subject"] / row["clip"] / "color",
        )
    return rules.index(root, LAYOUT)
