"""CAS(ME)^2 for spotting: `CAS(ME)^2code_final.xlsx` beside `rawpic/s15/15_0101disgustingteeth/img1.jpg`.

The workbook as the owners ship it (read the same way by the MEGC2020 baseline, HeyingGithub/Baseline-project-for-
MEGC2020_spotting `dataset_new/CASME_2.py`, and by SOFTNet's and the MEGC2022 spotting code) has three sheets and
no header rows:

- `CASFEcode_final`, one row per expression: participant number (1..22), video name and expression number
  (`anger1_1`), onset, apex, offset, action units, estimated emotion, type (`macro-expression` or
  `micro-expression`), self-reported emotion;
- `naming rule1`, one row per participant: subject number (`15`), subject folder (`s15`), participant number (`1`);
- `naming rule2`, one row per elicitation video: its code (`0101`) and name (`disgust1`).

A video folder is `rawpic/<subject folder>/<subject number>_<code><title>`, e.g. `rawpic/s15/15_0101disgustingteeth`;
its frames are `img1.jpg`, `img2.jpg`, ... and the sheet counts frames from 1 as the file names do. Sheets are
found by name, else by position (first, second, third).
"""

from __future__ import annotations

from pathlib import Path

from pamer.data._clips import check_root, frame_number
from pamer.data._sheet import find_sheet, read_plain
from pamer.data.longvideos import LongVideo, SpottingIndex, frame_range
from pamer.data.samples import DatasetError, Problem
from pamer.frames import is_junk

NAME = "casme-sq"
FPS = 30.0
SHEET_PATTERNS = ("CAS(ME)*code_final*",)
SHEETS = (("CASFEcode_final", 0), ("naming rule1", 1), ("naming rule2", 2))
FRAMES_FOLDER = "rawpic"
TYPES = {"micro-expression": "micro", "macro-expression": "macro"}
LAYOUT = "ROOT/CAS(ME)^2code_final.xlsx beside ROOT/rawpic/s15/15_0101disgustingteeth/img1.jpg"


def _video_code(text: str | None) -> str | None:
    """A `naming rule2` code as its 4 digits: `0101` stays, a number cell `101` becomes `0101`."""
    number = frame_number(text)
    return None if number is None else f"{number:04d}"


def _videos(frames_root: Path) -> tuple[dict[tuple[int, str], LongVideo], list[Problem]]:
    """Every video folder `rawpic/<subject>/<number>_<code>...` with frames, keyed by (subject number, code)."""
    videos: dict[tuple[int, str], LongVideo] = {}
    problems = []
    for subject in sorted(p for p in frames_root.iterdir() if p.is_dir() and not is_junk(p.name)):
        for folder in sorted(p for p in subject.iterdir() if p.is_dir() and not is_junk(p.name)):
            number, _, rest = folder.name.partition("_")
            key = (frame_number(number), rest[:4])
            if key[0] is None or not rest[:4].isdigit():
                where = f"{NAME}/{subject.name}/{folder.name}"
                problems.append(Problem(where, "folder-unknown", "not a <subject number>_<video code> folder"))
                continue
            video, duplicates = frame_range(folder, subject.name, folder.name)
            for detail in duplicates:
                problems.append(Problem(f"{NAME}/{folder.name}", "frame-duplicate", detail))
            if video is None:
                problems.append(Problem(f"{NAME}/{folder.name}", "no-frames", f"{folder} holds no numbered frame"))
                continue
            videos[key] = video
    return videos, problems


def read(root: Path, *, sheet: Path | None = None) -> SpottingIndex:
    """Read CAS(ME)^2 as released: `CAS(ME)^2code_final.xlsx` (in `root`, or `sheet`) and `root/rawpic`.

    Rules, each named in `problems`: an offset of 0 (not coded) becomes the apex, as the MEGC2020 baseline reads
    it; an apex of 0 is unknown (None). A row whose participant, video or type the naming sheets do not know, whose
    frames are not numbers, whose offset is before its onset, whose offset and apex are both 0, or whose video folder
    is missing, is left out.
    """
    root = check_root(root, "CAS(ME)^2")
    path = find_sheet(root, SHEET_PATTERNS, "CAS(ME)^2 code", sheet)
    frames_root = root / FRAMES_FOLDER
    if not frames_root.is_dir():
        raise DatasetError(f"no {FRAMES_FOLDER}/ folder in {root}; expected {LAYOUT}")
    codes, rule1, rule2 = read_plain(path, SHEETS)
    participants = {}  # participant number -> subject number
    for row in rule1:
        participant, number = frame_number(row.cells.get("2")), frame_number(row.cells.get("0"))
        if participant is not None and number is not None:
            participants[participant] = number
    names = {row.cells.get("1"): _video_code(row.cells.get("0")) for row in rule2 if row.cells.get("1")}
    videos, problems = _videos(frames_root)
    if not videos:
        raise DatasetError(f"no video folder with frames under {frames_root}; expected {LAYOUT}")
    index = SpottingIndex(NAME, FPS, path, list(videos.values()), [], problems)
    for row in codes:
        where = f"{path.name} sheet {SHEETS[0][0]} row {row.number}"
        participant = frame_number(row.cells.get("0"))
        name = (row.cells.get("1") or "").split("_")[0]
        if participant is None and row.number == 1:
            continue  # a header row, in a copy that added one
        clip = f"{NAME}/{row.cells.get('0')}/{row.cells.get('1')}"
        if participant not in participants:
            index.problems.append(Problem(clip, "participant-unknown", f"{where}: not in sheet {SHEETS[1][0]}"))
            continue
        if names.get(name) is None:
            index.problems.append(Problem(clip, "video-unknown", f"{where}: {name!r} not in sheet {SHEETS[2][0]}"))
            continue
        video = videos.get((participants[participant], names[name]))
        if video is None:
            detail = f"{where}: no folder {participants[participant]}_{names[name]}* under {frames_root}/*"
            index.problems.append(Problem(clip, "video-missing", detail))
            continue
        kind = TYPES.get((row.cells.get("7") or "").strip().lower())
        if kind is None:
            detail = f"{where}: type {row.cells.get('7')!r} is not one of {', '.join(TYPES)}"
            index.problems.append(Problem(clip, "type-unknown", detail))
            continue
        onset, apex, offset = (frame_number(row.cells.get(str(j))) for j in (2, 3, 4))
        if onset is None or offset is None:
            detail = f"{where}: onset {row.cells.get('2')!r} and offset {row.cells.get('4')!r} must be frame numbers"
            index.problems.append(Problem(clip, "frames-not-numbers", detail))
            continue
        if apex == 0:
            apex = None
            index.problems.append(Problem(clip, "apex-missing", f"{where}: apex 0 (not coded)"))
        if offset == 0 and apex is None:
            index.problems.append(Problem(clip, "offset-missing", f"{where}: neither offset nor apex coded: left out"))
            continue
        if offset == 0:
            offset = apex  # offset not coded: the MEGC2020 baseline ends the interval at the apex
            index.problems.append(Problem(clip, "offset-missing", f"{where}: offset 0 (not coded): the apex {apex}"))
        index.add_truth(clip, where, video, onset, offset, kind, apex)
    return index
