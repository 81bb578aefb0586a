"""SMIC-HS: the folder tree `HS/s1/micro/negative/s1_ne_01/image<n>.bmp` (no sheet); SMIC-HS-E: its sheet (HS)."""

from __future__ import annotations

import re
from pathlib import Path

from pamer.data._clips import Collector, check_root, list_frames
from pamer.data._layout import Folders, find_clip_folders, find_tree
from pamer.data._sheet import find_sheet, read_rows
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetIndex

LAYOUT = "ROOT/HS/s1/micro/negative/s1_ne_01/image<n>.bmp (or ROOT = the HS folder)"
_SUBJECT = re.compile(r"s\d+$", re.IGNORECASE)
# the high-speed recording's folders (`HS`, `HS_long`, `SMIC_HS_E`) come before VIS and NIR copies of the clips
PREFER = ("hs",)

E_SHEET_PATTERNS = ("SMIC-HS-E*", "SMIC-E*")
E_COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetF", "Onset"),
    "offset": ("OffsetF", "Offset"),
    "emotion": ("Emotion",),
}
E_OPTIONAL = {"onset2": ("Onset2F",)}
E_LAYOUT = (
    "ROOT/SMIC-HS-E_annotation.xlsx beside ROOT/SMIC_HS_E/s01/s1_ne_01/image17581039.jpg "
    "(subject folders s01 or s1; the frame tree up to two folders below ROOT, e.g. HS_long/SMIC_HS_E/)"
)


def _hs_clips(tree: Path, folders: Folders) -> list[tuple[Path, Path, Path]]:
    """(subject, emotion, clip) folders of a SMIC-HS tree: `tree/s1/micro/negative/s1_ne_01`."""
    found = []
    for subject_dir in folders.children(tree):
        micro = folders.child(subject_dir, "micro") if _SUBJECT.match(subject_dir.name) else None
        if micro is None:  # not a subject, or a subject without micro-expressions (only non_micro clips)
            continue
        found += [(subject_dir, e, c) for e in folders.children(micro) for c in folders.children(e)]
    return found


def read(root: Path, protocol: str | None = None, *, frames: Path | None = None) -> DatasetIndex:
    """Read SMIC-HS from its folder tree; the emotion is the folder name, the apex the middle frame.

    The tree (the folder holding `s1/micro/...`) is `root/HS`, `root` itself or any folder up to two levels
    below `root` holding clips, the high-speed recording's before VIS/NIR copies (`pamer.data._layout`), or
    `frames`. SMIC-HS has no annotation sheet: its clips are cut from onset to offset, so onset = first frame,
    offset = last frame, and the apex is the middle frame (the paper's rule; `apex_source` "middle"). SMIC codes
    no action units: every sample's `aus` is None.
    """
    root = check_root(root, "SMIC-HS")
    rules = Collector("smic", get_protocol("smic", protocol))
    folders = Folders()
    tree = find_tree(
        root,
        lambda folder: len(_hs_clips(folder, folders)),
        what="SMIC-HS",
        wanted="no SMIC-HS clip folders (e.g. s1/micro/negative/s1_ne_01)",
        layout=LAYOUT,
        frames=frames,
        prefer=PREFER,
        folders=folders,
    )
    for subject_dir, emotion_dir, clip_dir in _hs_clips(tree.path, folders):
        _, numbers, _ = list_frames(clip_dir)
        rules.add(
            subject=subject_dir.name.lower(),
            clip=clip_dir.name,
            emotion=emotion_dir.name,
            onset=numbers[0] if numbers else 0,
            apex=None,
            offset=numbers[-1] if numbers else 0,
            folder=clip_dir,
            where=str(clip_dir),
            apex_rule="middle",
        )
    return rules.index(root, LAYOUT, tree)


def read_e(
    root: Path, protocol: str | None = None, *, sheet: Path | None = None, frames: Path | None = None
) -> DatasetIndex:
    """Read SMIC-HS-E (the long clips): the sheet's HS worksheet and the clip folders of its frame tree.

    The sheet's Subject is a number (`1`) and its Filename the clip folder (`s1_ne_01`); the subject folder is
    `s01` in the release (`SMIC_HS_E/s01/s1_ne_01`), `s1` in other copies: both are accepted. The frame tree
    is the folder under `root` holding the clips, the high-speed recording's before VIS/NIR copies
    (`pamer.data._layout`), or `frames`. Frame numbers are absolute (`image17581039.jpg`); there is no apex,
    so the apex is the middle frame between onset and offset (the paper's rule). A clip with a second
    micro-expression (`Onset2F`) keeps its first one and is flagged `more-intervals`. Rows without an emotion
    (trailing notes) are skipped. The sheet codes no action units (`aus` None).
    """
    root = check_root(root, "SMIC-HS-E")
    rules = Collector("smic-e", get_protocol("smic-e", protocol))
    path = find_sheet(root, E_SHEET_PATTERNS, "SMIC-HS-E annotation", sheet)
    layout = "worksheet HS with a header row Subject, Filename, OnsetF, OffsetF, ..., Emotion"
    rows = [r for r in read_rows(path, E_COLUMNS, optional=E_OPTIONAL, sheets=("HS",), layout=layout) if r["emotion"]]
    clips, levels = [], []
    for row in rows:
        number = row["subject"].lower().removeprefix("s").removesuffix(".0")
        subject = f"s{int(number)}" if number.isdigit() else row["subject"]
        clips.append(subject)
        subject_folders = (subject, f"s{int(number):02d}") if number.isdigit() else (subject,)
        levels.append((subject_folders, row["clip"]))
    tree, found = find_clip_folders(
        root, levels, what="SMIC-HS-E", sheet=path, layout=E_LAYOUT, frames=frames, prefer=PREFER
    )
    for row, subject, folder in zip(rows, clips, found, strict=True):
        rules.add_row(
            row,
            path,
            subject=subject,
            folder=folder,
            emotion=row["emotion"],
            apex=None,
            apex_rule="middle",
            flags=("more-intervals",) if row["onset2"] else (),
        )
    return rules.index(root, E_LAYOUT, tree)
