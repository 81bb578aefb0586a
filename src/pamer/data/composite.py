"""The MEGC2019 composite protocol: CASME II + SAMM + SMIC-HS, 3 classes (negative, positive, surprise)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pamer.data import casme2, samm, smic
from pamer.data._clips import SHEET_APEX_FLAGS
from pamer.data.labels import get_protocol
from pamer.data.samples import DatasetError, DatasetIndex

PARTS = ("casme2", "samm", "smic")
SHEET_PARTS = ("casme2", "samm")  # SMIC-HS has no sheet


def read(
    root: Path | Mapping[str, Path],
    protocol: str | None = None,
    *,
    sheets: Mapping[str, Path] | None = None,
    frames: Mapping[str, Path] | None = None,
) -> DatasetIndex:
    """Read the three parts and keep the MEGC2019 clips: 442 (casme2 145, samm 133, smic 164), 68 subjects.

    Args:
        root: {"casme2": PATH, "samm": PATH, "smic": PATH}, or one folder holding `casme2/`, `samm/`, `smic/`.
        protocol: only "megc2019".
        sheets: optional sheet paths of the parts ({"casme2": PATH, "samm": PATH}).
        frames: optional frame trees of the parts ({"casme2": DIR, ...}); otherwise each part's frame tree is
            found under its root by the parts' own rule (`pamer.data._layout`).

    Each part is labelled by its megc2019 mapping (negative = CASME II disgust, repression; SAMM anger,
    contempt, disgust, fear, sadness). The official list leaves out the clips whose sheet apex is unusable
    (CASME II sub04/EP12_01f, apex `/`; sub05/EP09_05f, apex = onset), so clips flagged so are left out here.
    Subjects keep their parts' names (`sub01`, `006`, `s1`), which never collide.
    """
    classes = get_protocol("composite", protocol).classes
    if isinstance(root, Mapping):
        missing = [p for p in PARTS if p not in root]
        if missing or set(root) - set(PARTS):
            raise DatasetError(
                f"composite needs one root per part ({', '.join(PARTS)}); got {', '.join(root) or 'none'}"
            )
        roots = {p: Path(root[p]) for p in PARTS}
    else:
        roots = {p: Path(root) / p for p in PARTS}
    sheets, frames = dict(sheets or {}), dict(frames or {})
    for option, given, allowed in (("sheets", sheets, SHEET_PARTS), ("frames", frames, PARTS)):
        stray = [p for p in given if p not in allowed]
        if stray:
            raise DatasetError(
                f"composite {option} are named by part ({', '.join(allowed)}); got {', '.join(map(str, stray))}"
            )
    parts = [
        casme2.read(roots["casme2"], "megc2019", sheet=sheets.get("casme2"), frames=frames.get("casme2")),
        samm.read(roots["samm"], "megc2019", sheet=sheets.get("samm"), frames=frames.get("samm")),
        smic.read(roots["smic"], "megc2019", frames=frames.get("smic")),
    ]
    index = DatasetIndex("composite", classes)
    for part in parts:
        index.samples += [s for s in part.samples if not SHEET_APEX_FLAGS.intersection(s.flags)]
        index.problems += part.problems
        index.frame_trees.update(part.frame_trees)
        index.notes += part.notes
    return index
