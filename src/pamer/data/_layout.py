"""Where a dataset's clip folders are: the one frame tree, under the root a user gives, that holds the clips.

Datasets ship their sheet beside a folder of frames (`ROOT/CASME2-coding-20140508.xlsx` beside
`ROOT/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`), some beside two (raw and cropped), and copies carry junk
(`__MACOSX/`, `._img46.jpg`, `.DS_Store`, `Thumbs.db`). Every reader finds its frames here, by one rule:

- `frames=DIR` (the command line's `--frames DIR`) is the frame tree, searched no further.
- Otherwise ROOT and the folders one and two levels below it are searched, junk folders left out. A folder holds
  a clip when the clip's folder sits in it where the dataset's layout puts it (`<folder>/sub01/EP02_01f`); folder
  names are matched ignoring case (copies through other file systems change it).
- Of the folders holding any clip, the first by `TREE_ORDER` is taken; the index records it, with a note
  naming the others and the rule that decided.
- When none holds a clip: one error naming the folders searched and the layout expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pamer.data.samples import DatasetError
from pamer.frames import JUNK_NAMES, is_junk  # noqa: F401  (one junk rule for the readers and predict)

# how one frame tree is taken when several hold clips: the first rule that tells them apart decides
TREE_ORDER = (
    "it holds the most clips",
    "it is the dataset's own recording (a folder named after it, e.g. SMIC's HS before VIS or NIR)",
    "raw frames come before cropped ones (a folder named *crop*)",
    "it is the shallower",
    "it is the first by name",
)

# a folder path below a frame tree, one entry per level: a name, or the names accepted for that level
Level = str | Sequence[str]

_WORD = re.compile(r"[a-z0-9]+")
_SHOWN = 12  # folders named in the not-found error before "and N more"


def _names(level: Level) -> tuple[str, ...]:
    return (level,) if isinstance(level, str) else tuple(level)


class Folders:
    """The subfolders of the folders one read looks at, each folder listed once, junk left out."""

    def __init__(self) -> None:
        self._listed: dict[Path, tuple[dict[str, Path], dict[str, Path]]] = {}

    def _listing(self, folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
        if folder not in self._listed:
            try:
                # scandir: the entry type comes with the listing (no stat per entry in folders of frames)
                with os.scandir(folder) as entries:
                    names = sorted(e.name for e in entries if not is_junk(e.name) and e.is_dir())
            except OSError:  # not a folder or not readable: nothing below it to search
                names = []
            exact = {name: folder / name for name in names}
            folded: dict[str, Path] = {}
            for name in names:
                folded.setdefault(name.casefold(), folder / name)
            self._listed[folder] = (exact, folded)
        return self._listed[folder]

    def children(self, folder: Path) -> list[Path]:
        """The subfolders of `folder` sorted by name (none when it is not a readable folder)."""
        return list(self._listing(folder)[0].values())

    def child(self, folder: Path, level: Level) -> Path | None:
        """The subfolder of `folder` with one of the names of `level`: an exact name first, then ignoring case."""
        exact, folded = self._listing(folder)
        names = _names(level)
        found = next((exact[n] for n in names if n in exact), None)
        return found or next((folded[n.casefold()] for n in names if n.casefold() in folded), None)

    def find(self, tree: Path, levels: Sequence[Level]) -> Path | None:
        """The folder at `levels` below `tree` (see `Level`), or None."""
        folder: Path | None = tree
        for level in levels:
            folder = self.child(folder, level)
            if folder is None:
                return None
        return folder


@dataclass(frozen=True)
class FrameTree:
    """The folder a dataset's clip folders were read from, how many clips it held, and, when other folders held
    clips too, a note saying which and why this one was taken."""

    path: Path
    clips: int
    note: str = ""


def _relative(root: Path, folder: Path) -> str:
    return folder.relative_to(root).as_posix() if folder != root else "."


def _rank(root: Path, folder: Path, clips: int, prefer: Sequence[str]) -> tuple[int, bool, bool, int, list[str]]:
    """The sort key of `TREE_ORDER`, one element per rule."""
    parts = folder.relative_to(root).parts
    words = {word for part in parts for word in _WORD.findall(part.lower())}
    own = any(word in words for word in prefer)
    cropped = any("crop" in part.lower() for part in parts)
    return (-clips, not own, cropped, len(parts), [p.casefold() for p in parts])


def find_tree(
    root: Path,
    count: Callable[[Path], int],
    *,
    what: str,
    wanted: str,
    layout: str,
    frames: Path | None = None,
    prefer: Sequence[str] = (),
    folders: Folders | None = None,
) -> FrameTree:
    """The frame tree of a dataset under `root`: `frames` when given, else the folder taken by the module's rule.

    Args:
        root: the dataset's root (a folder).
        count: how many of the dataset's clips a folder holds when taken as the frame tree.
        what: the dataset's name in messages ("CASME II").
        wanted: what was looked for, as the start of the not-found error ("none of the 255 clip folders of
            CASME2-coding-20140508.xlsx (e.g. sub01/EP02_01f)").
        layout: the layout expected, for the not-found error.
        frames: the frame tree the user named (`--frames`); it is not searched below.
        prefer: words that name the dataset's own recording in folder names, lower case (SMIC: "hs").
        folders: the listings of this read, shared with `count`.

    Raises:
        DatasetError: `frames` is not a folder or holds no clip; no folder searched holds any clip.
    """
    folders = folders or Folders()
    if frames is not None:
        frames = Path(frames)
        if not frames.is_dir():
            raise DatasetError(f"{what} frame folder {frames} (--frames) does not exist or is not a folder")
        found = count(frames)
        if not found:
            raise DatasetError(f"{wanted} found in the frame folder {frames} (--frames); expected {layout}")
        return FrameTree(frames, found)
    level1 = folders.children(root)
    searched = [root, *level1, *(sub for folder in level1 for sub in folders.children(folder))]
    held = [(folder, n) for folder in searched if (n := count(folder))]
    if not held:
        names = [_relative(root, folder) for folder in searched]
        listed = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
        raise DatasetError(
            f"{wanted} found in {root} or in the folders one and two levels below it (searched {listed}); "
            f"expected {layout}; if the frames are elsewhere, name their folder with --frames"
        )
    ranked = sorted(held, key=lambda h: _rank(root, *h, prefer))
    (best, clips), others = ranked[0], ranked[1:]
    if not others:
        return FrameTree(best, clips)
    first, second = _rank(root, best, clips, prefer), _rank(root, *others[0], prefer)
    decided = next((i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b), len(TREE_ORDER) - 1)
    reason = TREE_ORDER[decided]
    also = ", ".join(f"{_relative(root, folder)} ({n} clips)" for folder, n in others)
    note = (
        f"{what} frames taken from {_relative(root, best)} ({clips} clips) in {root}, because {reason}; "
        f"also holding clips: {also}; name another with --frames"
    )
    return FrameTree(best, clips, note)


def find_clip_folders(
    root: Path,
    clips: Sequence[Sequence[Level]],
    *,
    what: str,
    sheet: Path,
    layout: str,
    frames: Path | None = None,
    prefer: Sequence[str] = (),
) -> tuple[FrameTree, list[Path]]:
    """The frame tree that holds a sheet's clips (`find_tree`), and each clip's folder in it.

    Args:
        clips: each clip's folder below the frame tree, one entry per level, each a name or the names accepted
            for it (SMIC-E: `[("s1", "s01"), "s1_ne_01"]`).
        sheet: the sheet the clips come from, named in the not-found error.
        what, layout, frames, prefer: as for `find_tree`.

    Returns:
        The tree, and for each clip its folder; a clip missing from the tree gets the path where it was expected
        (its first name at each level), for the reader to report.
    """
    if not clips:
        return FrameTree(Path(frames or root), 0), []
    folders = Folders()

    def count(tree: Path) -> int:
        return sum(folders.find(tree, levels) is not None for levels in clips)

    def expected(tree: Path, levels: Sequence[Level]) -> Path:
        return tree.joinpath(*(_names(level)[0] for level in levels))

    example = expected(Path(), clips[0]).as_posix()
    wanted = f"none of the {len(clips)} clip folders of {sheet.name} (e.g. {example})"
    tree = find_tree(
        root, count, what=what, wanted=wanted, layout=layout, frames=frames, prefer=prefer, folders=folders
    )
    return tree, [folders.find(tree.path, levels) or expected(tree.path, levels) for levels in clips]
