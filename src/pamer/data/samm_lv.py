"""SAMM Long Videos for spotting: `SAMM_LongVideos_V1_Release.xlsx` beside `SAMM_longvideos/006_1/006_1_0001.jpg`.

The workbook as the owners ship it (read the same way by the MEGC2020 baseline, HeyingGithub/Baseline-project-for-
MEGC2020_spotting `dataset_new/SAMM_MEGC.py`, and by SOFTNet's and the MEGC2022 spotting code) has a sheet
`FACS_Movement_Only` whose header row sits below ten rows of notes: Subject, Filename, Inducement Code, Onset,
Apex, Offset, Duration, Type, Action Units, Notes. A row is one movement: `Filename` `006_1_3` is expression 3 of
video `006_1`, `Type` is `Macro` or `Micro - 1/2`. The video's frames are `SAMM_longvideos/006_1/006_1_0001.jpg`,
numbered from 1 as the sheet counts them; later releases (V2, V3) keep the layout and are read alike.
"""

from __future__ import annotations

import math
from pathlib import Path

from pamer.data._clips import check_root
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.longvideos import LongVideo, SpottingIndex, frame_range
from pamer.data.samples import DatasetError, Problem
from pamer.frames import is_junk

NAME = "samm-lv"
FPS = 200.0
SHEET_PATTERNS = ("SAMM_LongVideos*",)
FRAMES_FOLDER = "SAMM_longvideos"
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("Onset", "Onset Frame"),
    "offset": ("Offset", "Offset Frame"),
    "type": ("Type",),
}
OPTIONAL = {"apex": ("Apex", "Apex Frame")}
LAYOUT = "ROOT/SAMM_LongVideos_V1_Release.xlsx beside ROOT/SAMM_longvideos/006_1/006_1_0001.jpg"


def _type(text: str | None) -> str | None:
    """`Micro - 1/2` -> micro, `Macro` -> macro (the baseline tells them by the second letter), else None."""
    words = (text or "").strip().lower()
    return next((kind for kind in ("micro", "macro") if words.startswith(kind)), None)


def _frame(text: str | None) -> tuple[int | None, bool]:
    """A sheet cell as a frame number >= 0 and whether it had to be rounded (the baseline rounds half up)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        return None, False
    if not (math.isfinite(value) and value >= 0):
        return None, False
    return int(value + 0.5), not value.is_integer()


def _frames_root(root: Path) -> Path:
    """`root/SAMM_longvideos` (any letter case), else `root` itself when it holds the `006_1` folders."""
    for child in root.iterdir():
        if child.is_dir() and child.name.lower() == FRAMES_FOLDER.lower():
            return child
    return root


def read(root: Path, *, sheet: Path | None = None) -> SpottingIndex:
    """Read SAMM Long Videos as released: the release sheet (in `root`, or `sheet`) and its frame folders.

    Rules, each named in `problems`: a fractional frame is rounded half up, as the MEGC2020 baseline reads it; a
    missing or negative apex is unknown (None). A row whose type is neither micro nor macro, whose onset or offset
    is not a frame number, whose offset is before its onset, or whose video folder is missing, is left out.
    """
    root = check_root(root, "SAMM Long Videos")
    path = find_sheet(root, SHEET_PATTERNS, "SAMM Long Videos release", sheet)
    frames_root = _frames_root(root)
    layout = "sheet FACS_Movement_Only, a header row Subject, Filename, ..., Onset, Apex, Offset, ..., Type"
    rows = read_rows(path, COLUMNS, optional=OPTIONAL, sheets=("FACS_Movement_Only",), layout=layout)
    problems: list[Problem] = []
    videos: dict[str, LongVideo] = {}
    for folder in sorted(p for p in frames_root.iterdir() if p.is_dir() and not is_junk(p.name)):
        parts = folder.name.split("_")
        if len(parts) != 2 or not all(part.isdigit() for part in parts):
            continue  # not a video folder (006_1): the sheet's folder, notes, other releases' material
        video, duplicates = frame_range(folder, parts[0], folder.name)
        for detail in duplicates:
            problems.append(Problem(f"{NAME}/{folder.name}", "frame-duplicate", detail))
        if video is None:
            problems.append(Problem(f"{NAME}/{folder.name}", "no-frames", f"{folder} holds no numbered frame"))
            continue
        videos[video.video] = video
    if not videos:
        raise DatasetError(f"no video folder (006_1) with frames under {frames_root}; expected {LAYOUT}")
    index = SpottingIndex(NAME, FPS, path, list(videos.values()), [], problems)
    for row in rows:
        where = f"{path.name} row {row.number}"
        clip = f"{NAME}/{row['clip']}"
        name = "_".join(row["clip"].split("_")[:2])
        video = videos.get(name)
        if video is None:
            index.problems.append(Problem(clip, "video-missing", f"{where}: no folder {name} under {frames_root}"))
            continue
        kind = _type(row["type"])
        if kind is None:
            detail = f"{where}: type {row['type']!r} is neither Micro nor Macro"
            index.problems.append(Problem(clip, "type-unknown", detail))
            continue
        (onset, r1), (offset, r2) = _frame(row["onset"]), _frame(row["offset"])
        apex, r3 = _frame(row.cells.get("apex"))
        if onset is None or offset is None:
            detail = f"{where}: onset {row['onset']!r} and offset {row['offset']!r} must be frame numbers"
            index.problems.append(Problem(clip, "frames-not-numbers", detail))
            continue
        if r1 or r2 or r3:
            detail = f"{where}: onset {row['onset']}, apex {row.cells.get('apex')}, offset {row['offset']} rounded"
            index.problems.append(Problem(clip, "frame-rounded", detail))
        if apex is None:
            index.problems.append(Problem(clip, "apex-missing", f"{where}: apex {row.cells.get('apex')!r}"))
        index.add_truth(clip, where, video, onset, offset, kind, apex)
    return index
