"""Build a dataset's frame tree in a folder from the REAL annotation sheets (`../shared/datasets/annotations`).

The tree looks like the dataset as its owners ship it: the sheet is copied next to the frame folders (a test
copy in a temporary folder, never into the project) and every clip gets a few tiny frames covering
onset..offset - the onset, apex and offset frames and one frame between onset and apex. Callers that need
real pictures (face alignment tests) pass `write_frame`, which is called once per frame file.

    root = build_tree("casme2", annotations_dir, tmp_path / "casme2")
    index = pamer.data.read("casme2", root)

Layouts written (frame numbers are those of the sheet):

- casme2: `CASME2-coding-20140508.xlsx`, `sub01/EP02_01f/img46.jpg` (`reg_img46.jpg` with `cropped=True`).
- samm: `SAMM_Micro_FACS_Codes_v2.xlsx`, `006/006_1_2/006_05562.jpg` (zero-padding alternates between 5 and 4
  digits from clip to clip, as widths vary in the release).
- smic: `HS/s1/micro/negative/s1_ne_01/image<n>.bmp` for the 164 SMIC-HS clips of `combined_3class_gt.csv`
  (SMIC-HS ships no sheet; frame numbers are invented, onset = first file, offset = last).
- smic-e: `SMIC-HS-E_annotation.xlsx`, `HS/s20/s20_ne_01/image17581039.jpg` (absolute frame numbers).
- composite: `casme2/`, `samm/` and `smic/` sub-roots as above; pass `root / part` as each part's root.

With `layout="release"` the frames sit one folder below the sheet, as the datasets' owners ship them
(`RELEASE_FOLDERS`): `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg` (`Cropped/sub01/EP02_01f/reg_img46.jpg` with
`cropped=True`), `SAMM/006/006_1_2/006_05562.jpg`, `SMIC_HS_E/s01/s1_ne_01/image<n>.jpg` (the release pads the
subject folder, not the clip name), `HS/s1/micro/...` for SMIC-HS. `frames_dir` puts the frame tree at any path
below the root instead (`"CASME2_RAW"`, `"SMIC_all_raw/HS"`). `junk=True` then adds what copies made on macOS and
Windows carry (`add_junk`).

With `quirks=True` (default) the known defects of the real release are reproduced on disk: SAMM clips 028_4_1
and 032_3_1 have no frames from the apex on (users report the apex lies outside the frames present).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from pamer.cli import app
from pamer.demo import synthetic

SHEETS = {
    "casme2": "CASME2-coding-20140508.xlsx",
    "samm": "SAMM_Micro_FACS_Codes_v2.xlsx",
    "smic-e": "SMIC-HS-E_annotation.xlsx",
    "megc2019": "combined_3class_gt.csv",
}
NAMES = ("casme2", "samm", "smic", "smic-e", "composite")
SMIC_LABELS = {0: "negative", 1: "positive", 2: "surprise"}
SMIC_SHORT = {"negative": "ne", "positive": "po", "surprise": "sur"}
# the clips whose frames on disk stop before the annotated apex in the real SAMM release
SAMM_SHORT_CLIPS = ("028_4_1", "032_3_1")
# where the frame trees go below the root: beside the sheet ("flat", SMIC's in HS/), or as released
FLAT_FOLDERS = {"smic": "HS", "smic-e": "HS"}
# where each release puts its frame tree, relative to the folder that holds the sheet (layout="release")
RELEASE_FOLDERS = {"casme2": "CASME2_RAW_selected", "samm": "SAMM", "smic": "HS", "smic-e": "SMIC_HS_E"}
CROPPED_FOLDERS = {"casme2": "Cropped", "smic": "HS", "smic-e": "SMIC_HS_E"}
# a macOS AppleDouble header (magic 0x00051607): what `._img46.jpg` holds - not an image
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(58)


@dataclass(frozen=True)
class FrameSpec:
    """What one frame file of the tree stands for (passed to `write_frame`)."""

    dataset: str
    subject: str
    clip: str
    number: int
    role: Literal["onset", "between", "apex", "offset", "frame"]


FrameWriter = Callable[[Path, FrameSpec], None]

_ROLE_VALUE = {"onset": 40, "between": 80, "apex": 160, "offset": 120, "frame": 100}
_encoded: dict[tuple[str, str], bytes] = {}


def tiny_frame(path: Path, spec: FrameSpec) -> None:
    """The default writer: an 8x8 grey image whose brightness depends on the frame's role (onset != apex)."""
    key = (path.suffix.lower(), spec.role)
    if key not in _encoded:
        ok, buf = cv2.imencode(key[0], np.full((8, 8, 3), _ROLE_VALUE[spec.role], np.uint8))
        assert ok, key
        _encoded[key] = buf.tobytes()
    path.write_bytes(_encoded[key])


def _int(value: object) -> int | None:
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def _key_frames(onset: int, apex: int | None, offset: int, frames: str) -> dict[int, str]:
    """Frame number -> role. The middle frame is always written (the readers' rule when the sheet's apex is
    unusable); the apex wins over a coinciding onset (CASME II sub05/EP09_05f has onset == apex)."""
    middle = (onset + offset) // 2
    peak = middle if apex is None else apex
    roles = dict.fromkeys(range(onset, offset + 1), "frame") if frames == "all" else {}
    roles[middle] = "frame"
    roles[offset] = "offset"
    roles[(onset + peak) // 2] = "between"
    roles[onset] = "onset"
    roles[peak] = "apex"
    return dict(sorted(roles.items()))


def _write_clip(
    folder: Path,
    names: Callable[[int], str],
    roles: dict[int, str],
    info: tuple[str, str, str],
    write_frame: FrameWriter,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, role in roles.items():
        write_frame(folder / names(number), FrameSpec(*info, number=number, role=role))


def _sheet_rows(path: Path, sheet: str | int, header_cell: str) -> pd.DataFrame:
    raw = pd.read_excel(path, sheet_name=sheet, header=None, dtype=str)
    header = next(i for i in range(len(raw)) if str(raw.iloc[i, 0]).strip() == header_cell)
    rows = raw.iloc[header + 1 :].copy()
    rows.columns = [str(c).strip() for c in raw.iloc[header]]
    return rows[rows["Subject"].notna() & rows["Filename"].notna()]


def add_junk(root: Path) -> None:
    """Add what copies made on macOS and Windows carry to the tree under `root`: an AppleDouble `._NAME` beside
    every file, `.DS_Store`, `Thumbs.db` and a non-image `notes.txt` in every folder, and `__MACOSX/` mirroring
    the whole tree with AppleDouble files only (its folders hold every clip folder's name)."""
    root = Path(root)
    walked = [(Path(folder), files) for folder, _, files in os.walk(root)]
    for folder, files in walked:
        mirror = root / "__MACOSX" / folder.relative_to(root)
        mirror.mkdir(parents=True, exist_ok=True)
        for name in files:
            (folder / f"._{name}").write_bytes(APPLE_DOUBLE)
            (mirror / f"._{name}").write_bytes(APPLE_DOUBLE)
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        (folder / "notes.txt").write_text("not a frame\n")


def build_tree(
    name: str,
    annotations_dir: Path,
    root: Path,
    *,
    frames: Literal["key", "all"] = "key",
    write_frame: FrameWriter | None = None,
    clips: Iterable[str] | None = None,
    cropped: bool = False,
    quirks: bool = True,
    layout: Literal["flat", "release"] = "flat",
    frames_dir: str | None = None,
    junk: bool = False,
) -> Path:
    """Write dataset `name`'s tree under `root` and return `root` (the folder to pass to `pamer.data.read`).

    Args:
        name: casme2, samm, smic, smic-e or composite.
        annotations_dir: the folder of the real sheets (the `annotations_dir` fixture).
        root: where to write; created if missing.
        frames: "key" writes onset, a frame between onset and apex, apex (or the middle frame when the sheet
            has none) and offset; "all" writes every frame onset..offset.
        write_frame: called as `write_frame(path, spec)` for every frame file (default: `tiny_frame`).
        clips: only these clips, by folder name ("EP02_01f", "006_1_2", "s1_ne_01": every subject's clip of
            that name) or subject/clip ("sub01/EP02_01f", "006/006_1_2", "s1/s1_ne_01"); default all.
        cropped: CASME II / SMIC file names of the cropped releases (`reg_img46.jpg`, `reg_image<n>.bmp`).
        quirks: reproduce the known on-disk defects of the releases (see the module docstring).
        layout: "flat" (frames beside the sheet) or "release" (frames in the release's folder, `RELEASE_FOLDERS`).
        frames_dir: the frame tree's path below `root`, whatever the layout (e.g. "CASME2_RAW", "Cropped").
        junk: add macOS / Windows junk to the finished tree (`add_junk`).
    """
    if name not in NAMES:
        raise ValueError(f"unknown tree {name!r}; expected one of {NAMES}")
    write = write_frame or tiny_frame
    wanted = None if clips is None else set(clips)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    annotations_dir = Path(annotations_dir)

    def keep(subject: str, clip: str) -> bool:
        return wanted is None or clip in wanted or f"{subject}/{clip}" in wanted

    def finish() -> Path:
        if junk:
            add_junk(root)
        return root

    if name == "composite":
        for part in ("casme2", "samm", "smic"):
            options = {"frames": frames, "write_frame": write, "clips": wanted, "quirks": quirks, "layout": layout}
            build_tree(part, annotations_dir, root / part, **options)
        return finish()
    if frames_dir is None:
        folders = {"flat": FLAT_FOLDERS, "release": CROPPED_FOLDERS if cropped else RELEASE_FOLDERS}[layout]
        frames_dir = folders.get(name, "")
    tree = root / frames_dir  # the sheet goes into root, the clip folders into tree

    if name == "casme2":
        sheet = annotations_dir / SHEETS["casme2"]
        shutil.copyfile(sheet, root / sheet.name)
        prefix = "reg_img" if cropped else "img"
        for _, row in _sheet_rows(sheet, 0, "Subject").iterrows():
            clip, subject = str(row["Filename"]).strip(), f"sub{int(row['Subject']):02d}"
            if not keep(subject, clip):
                continue
            onset, apex, offset = (_int(row[c]) for c in ("OnsetFrame", "ApexFrame", "OffsetFrame"))
            roles = _key_frames(onset, apex, offset, frames)
            _write_clip(tree / subject / clip, lambda n: f"{prefix}{n}.jpg", roles, ("casme2", subject, clip), write)
        return finish()

    if name == "samm":
        sheet = annotations_dir / SHEETS["samm"]
        shutil.copyfile(sheet, root / sheet.name)
        for i, (_, row) in enumerate(_sheet_rows(sheet, "MICRO_ONLY", "Subject").iterrows()):
            clip, subject = str(row["Filename"]).strip(), str(row["Subject"]).strip()
            if not keep(subject, clip):
                continue
            onset, apex, offset = (_int(row[c]) for c in ("Onset Frame", "Apex Frame", "Offset Frame"))
            roles = _key_frames(onset, apex, offset, frames)
            if quirks and clip in SAMM_SHORT_CLIPS:
                roles = {n: r for n, r in roles.items() if n < apex}
            width = 5 if i % 2 == 0 else 4

            def names(n: int, subject: str = subject, width: int = width) -> str:
                return f"{subject}_{n:0{width}d}.jpg"

            _write_clip(tree / subject / clip, names, roles, ("samm", subject, clip), write)
        return finish()

    if name == "smic-e":
        sheet = annotations_dir / SHEETS["smic-e"]
        shutil.copyfile(sheet, root / sheet.name)
        prefix = "reg_image" if cropped else "image"
        for _, row in _sheet_rows(sheet, "HS", "Subject").iterrows():
            clip, subject = str(row["Filename"]).strip(), f"s{int(row['Subject'])}"
            if not keep(subject, clip) or pd.isna(row["Emotion"]):
                continue
            onset, offset = _int(row["OnsetF"]), _int(row["OffsetF"])
            roles = _key_frames(onset, None, offset, frames)
            # the release pads the subject folder (`s01`), not the clip name (`s1_ne_01`)
            folder = tree / (f"s{int(row['Subject']):02d}" if layout == "release" else subject) / clip
            _write_clip(folder, lambda n: f"{prefix}{n}.jpg", roles, ("smic-e", subject, clip), write)
        return finish()

    # smic: the folder tree of the 164 SMIC-HS clips, taken from the MEGC2019 list (SMIC-HS has no sheet)
    gt = pd.read_csv(annotations_dir / SHEETS["megc2019"], header=None, names=["dataset", "subject", "clip", "label"])
    prefix = "reg_image" if cropped else "image"
    for i, row in enumerate(gt[gt["dataset"] == "smic"].itertuples()):
        subject = f"s{int(row.subject[1:])}"
        number = row.clip.split("_")[-1]
        emotion = SMIC_LABELS[int(row.label)]
        clip = f"{subject}_{SMIC_SHORT[emotion]}_{number}"
        if not keep(subject, clip):
            continue
        onset = 1000 + 100 * i
        offset = onset + 12 + i % 5
        roles = _key_frames(onset, None, offset, frames)
        folder = tree / subject / "micro" / emotion / clip
        _write_clip(folder, lambda n: f"{prefix}{n}.bmp", roles, ("smic", subject, clip), write)
    return finish()


def prepare_synthetic(work: Path) -> tuple[Path, Path]:
    """A tiny synthetic CASME II-style set (2 subjects x 3 classes x 1 clip of 4 frames, 128 px faces) written to
    `work/casme2` and cached by `pamer prepare` at 48 px under the megc2019 labels: (dataset root, cache directory).
    """
    config = synthetic.SyntheticConfig(subjects=2, clips_per_class=1, classes=3, face_px=128, frames=(4, 4))
    root = synthetic.generate(work / "casme2", config)
    prepared = CliRunner().invoke(
        app,
        ["prepare", "casme2", "--root", str(root), "--out", str(work / "caches"), "--protocol", "megc2019"]
        + ["--size", "48", "--quiet"],
    )
    assert prepared.exit_code == 0, prepared.output
    return root, Path(prepared.stdout.strip().splitlines()[-1])
