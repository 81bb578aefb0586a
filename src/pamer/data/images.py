"""One image per clip, as preprocessing outside pamer wrote it: the records, and the generic reader `images`.

Many users never had the datasets' frames, only what someone's preprocessing made of them: one flow image or one
apex face crop per clip. `read(root, labels=LABELS.csv)` reads such a folder from a csv with one row per clip:

    subject,clip,label,file[,dataset]
    sub01,EP02_01f,positive,flow/sub01_EP02_01f.png,casme2

- `file`: the clip's image, relative to `root` (or absolute).
- `label`: a class name, or an integer code into `classes` (`--classes negative,positive,surprise`: 0 = negative).
  A cell that is one of `classes` is a name, so classes named `0`, `1` stay names.
- `dataset` (optional): the clip's dataset of origin (casme2, samm, smic, ...), kept in the cache so that results
  can be broken down by it.
- `aus` (optional): the clip's FACS action units as the sheets write them (`4+L10`; `pamer.data.aus`). Without the
  column no clip is AU-coded (`aus` None); a blank cell leaves that clip uncoded; an unreadable one is a `bad-aus`
  problem (the clip is kept, uncoded).

Column names are matched ignoring case and surrounding spaces; other columns are ignored. Every row that cannot
become a clip (a blank cell, an unknown label, a file not on disk, a repeated subject and clip) is reported by
name as a `Problem` and left out. The MEGC2019 folders of the HTNet and STSTNet authors have their own reader
(`pamer.data.htnet`), which returns the same records.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pamer.data._layout import is_junk
from pamer.data.aus import parse_cell
from pamer.data.labels import get_protocol
from pamer.data.samples import ActionUnit, DatasetError, DatasetIndex, Problem
from pamer.frames import IMAGE_SUFFIXES

REQUIRED_COLUMNS = ("subject", "clip", "label", "file")
OPTIONAL_COLUMNS = ("dataset",)
AU_COLUMN = "aus"  # optional; a blank cell is a clip without AU coding, not a blank-cell problem
LAYOUT = "a csv with the columns subject, clip, label, file[, dataset]; file relative to --root"


@dataclass
class ImageSample:
    """One clip given as ready-made images (no frames): its dataset of origin, subject, clip, class and files.

    `files` maps what an image shows to its path: `flow` (a flow image) and `apex` (the apex face crop) for the
    MEGC2019 folders, `image` for the generic reader, whose csv does not say which it is. `aus`/`au_string` are
    the clip's action units and the csv's text, None where the csv codes none (as `Sample.aus`).
    """

    dataset: str
    subject: str
    clip: str
    label: str
    files: dict[str, Path] = field(default_factory=dict)
    where: str = ""
    aus: tuple[ActionUnit, ...] | None = None
    au_string: str | None = None

    @property
    def uid(self) -> str:
        """A name unique across datasets: `dataset/subject/clip` (`subject/clip` when the origin is unknown)."""
        return "/".join(part for part in (self.dataset, self.subject, self.clip) if part)

    def file_for(self, representation: str) -> Path | None:
        """The image holding `representation` (`flow` or `apex`), or the one image of a generic row; else None."""
        return self.files.get(representation, self.files.get("image"))


@dataclass
class ImageIndex(DatasetIndex):
    """A `DatasetIndex` whose clips are `ImageSample`s (ready-made images, prepared by `pamer.preprocess.images`).

    `origins` says whether the samples name their dataset of origin (the csv had a `dataset` column, or the
    reader knows it), so that the cache records it.
    """

    samples: list[ImageSample] = field(default_factory=list)  # type: ignore[assignment]
    origins: bool = False


def image_files(folder: Path) -> list[str]:
    """The names of the image files in `folder`, sorted; hidden files (`.DS_Store`, macOS `._name.png`) and
    non-images (`Thumbs.db`) are never taken for one."""
    with os.scandir(folder) as entries:
        return sorted(
            e.name
            for e in entries
            if not is_junk(e.name) and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file()
        )


def parse_classes(classes: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """`--classes a,b,c` (or a sequence) as class names; None stays None.

    Raises:
        DatasetError: an empty or repeated class name.
    """
    if classes is None:
        return None
    names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else [str(c).strip() for c in classes]
    if not names or any(not n for n in names):
        raise DatasetError(f"--classes {classes!r}: expected class names separated by commas, e.g. neg,pos,sur")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(f"--classes {classes!r} names {', '.join(repeated)} more than once")
    return tuple(names)


def read_csv_rows(
    path: Path, required: Sequence[str], optional: Sequence[str] = ()
) -> list[tuple[int, dict[str, str]]]:
    """The rows of a csv as (row number, {column: stripped text}), its header matched ignoring case and spaces.

    Row numbers are as a spreadsheet shows them (the header is row 1). A BOM (Excel's utf-8 csv) is ignored.

    Raises:
        DatasetError: an unreadable file, or a header without the `required` columns (the columns found named).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path}: cannot read it as a csv ({error})") from None
    if not lines:
        raise DatasetError(f"{path} is empty; expected a header row with {', '.join(required)}")
    header = [" ".join(cell.split()).lower() for cell in lines[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(
            f"{path}: no column {', '.join(missing)} in its header ({', '.join(lines[0]) or 'empty'}); "
            f"expected {', '.join(required)}"
        )
    position = {c: header.index(c) for c in (*required, *optional) if c in header}
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, e.g. at the end of a hand-edited file
        rows.append((number, {c: cells[i].strip() if i < len(cells) else "" for c, i in position.items()}))
    return rows


def read(
    root: Path,
    protocol: str | None = None,
    *,
    labels: Path | None = None,
    classes: str | Sequence[str] | None = None,
) -> ImageIndex:
    """Read a folder of one image per clip from its labels csv (see the module docstring for the columns).

    Args:
        root: the folder the `file` cells are relative to.
        protocol: only "labels" (the csv's own labels); None means the same.
        labels: the csv; default `root/labels.csv`.
        classes: class names in code order (`"neg,pos,sur"` or a sequence). Without it the classes are the label
            names found, sorted, and integer codes are refused (nothing says which class a code means).

    Raises:
        DatasetError: a missing root or csv, a csv without the required columns, integer codes without `classes`,
            or not one row with its file on disk.
    """
    get_protocol("images", protocol)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"images root {root} does not exist or is not a folder")
    path = Path(labels) if labels is not None else root / "labels.csv"
    if not path.is_file():
        hint = "" if labels is not None else " (pass the labels csv with --labels)"
        raise DatasetError(f"labels csv {path} does not exist{hint}; expected {LAYOUT}")
    names = parse_classes(classes)  # a bad option fails before the csv is read
    rows = read_csv_rows(path, REQUIRED_COLUMNS, (*OPTIONAL_COLUMNS, AU_COLUMN))
    if names is None:
        found = {cells["label"] for _, cells in rows if cells["label"]}
        codes = sorted(c for c in found if c.lstrip("-").isdigit())
        if codes:
            raise DatasetError(
                f"{path}: labels {', '.join(codes[:5])} are integer codes; name the classes in code order with "
                "--classes, e.g. --classes negative,positive,surprise"
            )
        names = tuple(sorted(found))
    index = ImageIndex("images", names, origins="dataset" in rows[0][1] if rows else False)
    seen: set[tuple[str, str]] = set()
    report = index.problems.append
    needed = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if index.origins else REQUIRED_COLUMNS
    for number, cells in rows:
        where = f"{path.name} row {number}"
        subject, clip = cells["subject"], cells["clip"]
        name = "/".join(part for part in (cells.get("dataset", ""), subject, clip) if part) or where
        blank = [c for c in needed if not cells[c]]
        if blank:
            report(Problem(name, "blank-cell", f"{where}: {', '.join(blank)} empty; left out"))
            continue
        label = _label(cells["label"], names)
        if label is None:
            detail = f"{where}: label {cells['label']!r} is not one of {', '.join(names)}; left out"
            report(Problem(name, "unknown-label", detail))
            continue
        if (subject, clip) in seen:
            detail = f"{where}: subject {subject} clip {clip} appears again; the first row is kept"
            report(Problem(name, "duplicate-row", detail))
            continue
        seen.add((subject, clip))
        file = Path(cells["file"])
        file = file if file.is_absolute() else root / file
        if not file.is_file():
            report(Problem(name, "missing-file", f"{where}: {file} not found; left out"))
            continue
        aus, bad = parse_cell(cells.get(AU_COLUMN), where)
        if bad:
            report(Problem(name, "bad-aus", bad))
        au_string = cells.get(AU_COLUMN) or None
        sample = ImageSample(cells.get("dataset", ""), subject, clip, label, {"image": file}, where, aus, au_string)
        index.samples.append(sample)
    if not index.samples:
        raise DatasetError(f"{path}: not one row with its file on disk under {root}; expected {LAYOUT}")
    return index


def _label(cell: str, classes: tuple[str, ...]) -> str | None:
    """A label cell as a class name: a name of `classes`, or an integer code into them; None when neither."""
    if cell in classes:
        return cell
    try:
        code = int(cell)
    except ValueError:
        return None
    return classes[code] if 0 <= code < len(classes) else None
