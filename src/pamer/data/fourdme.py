"""4DME: `4DME_Labelling_Micro_release v1.xlsx` and grey frame folders `S01/S01_001/<n>.jpg`."""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import Collector, check_root
from pamer.data._layout import find_clip_folders
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.aus import AU_COLUMNS
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetIndex

SHEET_PATTERNS = ("4DME_Labelling_Micro*",)
COLUMNS = {
    "subject": ("sub_ID", "Subject"),
    "clip": ("fold_name", "Filename"),
    "onset": ("Onset", "OnsetFrame"),
    "apex": ("Apex", "ApexFrame"),
    "offset": ("Offset", "OffsetFrame"),
    "emotion": ("Emotion", "Estimated Emotion"),
}
LAYOUT = "ROOT/<sub_ID>/<fold_name>/<frame>.jpg beside ROOT/4DME_Labelling_Micro_release v1.xlsx"


def read(
    root: Path, protocol: str | None = None, *, sheet: Path | None = None, frames: Path | None = None
) -> DatasetIndex:
    """Read 4DME micro-expressions: the labelling sheet (`sub_ID`, `fold_name`, `Onset`, `Apex`, `Offset`,
    `Emotion`) and one frame folder per `fold_name` inside its subject's folder, in the frame tree (the folder
    under `root` holding them, `pamer.data._layout`, or `frames`)."""
    root = check_root(root, "4DME")
    rules = Collector("4dme", get_protocol("4dme", protocol))
    path = find_sheet(root, SHEET_PATTERNS, "4DME labelling", sheet)
    rows = read_rows(
        path,
        COLUMNS,
        optional={"aus": AU_COLUMNS},
        layout="a header row sub_ID, fold_name, Onset, Apex, Offset, ..., Emotion",
    )
    levels = [(row["subject"], row["clip"]) for row in rows]
    tree, folders = find_clip_folders(root, levels, what="4DME", sheet=path, layout=LAYOUT, frames=frames)
    for row, folder in zip(rows, folders, strict=True):
        rules.add_row(row, path, folder=folder)
    return rules.index(root, LAYOUT, tree)
