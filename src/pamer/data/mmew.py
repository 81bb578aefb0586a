"""MMEW: `MMEW_Micro_Exp.xlsx` and frame folders by emotion, `happiness/S01-01-001/15.jpg`."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.labels import get_protocol, normalise_emotion
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


def read(root: Path, protocol: str | None = None, *, sheet: Path | None = None) -> DatasetIndex:
    """Read MMEW micro-expressions: the sheet and the clip folders, grouped in one folder per emotion.

    The emotion folder is matched to the sheet's emotion ignoring case and spelling (`others`/`Other`).
    """
    root = check_root(root, "MMEW")
    rules = Collector("mmew", get_protocol("mmew", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "MMEW micro-expression", sheet)
    emotion_dirs = {normalise_emotion(p.name): p for p in root.iterdir() if p.is_dir()}
    for row in read_rows(path, COLUMNS, layout="a header row Subject, Filename, OnsetFrame, ApexFrame, ..."):
        emotion = row["emotion"] or ""
        parent = emotion_dirs.get(normalise_emotion(emotion), root / emotion)
        rules.add_row(row, path, folder=parent / row["clip"])
    return rules.index(root, LAYOUT)
