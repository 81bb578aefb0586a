"""One image per clip, as preprocessing outside pamer wrote it: the records, and the generic reader `images`.

Many users never had the datasets' frames, only what someone's preprocessing made of them: one flow image or one
apex face crop per clip. `read(root, labels=LABELS.csv)` reads such a folder from a csv with one row per clip:

    subject,clip,label,file[,dataset]
    sub01,EP02_01f,positive,flow/sub01_EP02_01f.png,casme2

- `file`: the clip's image, relative to `root` (or absolute); `\\` separates folders as `/` does (`img\\1.png`, as a
  csv written on Windows has it) unless a file is named so.
- `label`: a class name, or an integer code into `classes` (`--classes negative,positive,surprise`: 0 = negative).
  A cell that is one of `classes` is a name, so classes named `0`, `1` stay names. Names are compared ignoring case
  and runs of spaces (`Positive` among `positive` is one class, spelled as its first row spells it, and the rows
  spelled otherwise are named in a `label-spelling` problem); a code may be written as a whole number in float form
  (`1.0`, as a spreadsheet saves it). Any other cell is refused by row with the reason.
- `dataset` (optional): the clip's dataset of origin (casme2, samm, smic, ...), kept in the cache so that results
  can be broken down by it.
- `aus` (optional): the clip's FACS action units as the sheets write them (`4+L10`; `pamer.data.aus`). Without the
  column no clip is AU-coded (`aus` None); a blank cell leaves that clip uncoded; an unreadable one is a `bad-aus`
  problem (the clip is kept, uncoded).

Column names are matched ignoring case and surrounding spaces; other columns are ignored. Every row that cannot
become a clip (a blank cell, an unknown label, a file not on disk, a repeated subject and clip, a file an earlier
row names: `duplicate-file`) is reported by name as a `Problem` and left out. Every clip's image is decoded once
when the folder is read (`image_problems`, one image per clip: fast), so `pamer datasets check` names each file that
is not an image (`bad-image`), holds one colour only (`constant-image`), is a grey flow image (`grey-flow-image`) or
has another size than most (`odd-size`). A subject name found under two datasets names two people: each is read as
`<dataset>_<subject>` (a `subject-in-datasets` problem says so), so LOSO never pools them. The MEGC2019 folders
of the HTNet and STSTNet authors have their own reader (`pamer.data.htnet`), which returns the same records.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pamer.data._layout import is_junk
from pamer.data._sheet import CSV_DELIMITERS, spreadsheet_text
from pamer.data.aus import parse_cell
from pamer.data.labels import get_protocol
from pamer.data.samples import ActionUnit, DatasetError, DatasetIndex, Problem
from pamer.frames import IMAGE_SUFFIXES, ImageError, read_rgb

# an integer code as a cell may hold it: `1`, ` 2 `, or a whole number in float form `1.0` (a spreadsheet's save)
_CODE = re.compile(r"[+-]?\d+(\.0*)?")

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
    keys = [label_key(n) for n in names]
    repeated = sorted({n for n, k in zip(names, keys, strict=True) if keys.count(k) > 1})
    if repeated:
        raise DatasetError(
            f"--classes {classes!r} names {', '.join(repeated)} more than once (case and spaces ignored)"
        )
    return tuple(names)


def read_csv_rows(
    path: Path, required: Sequence[str], optional: Sequence[str] = ()
) -> list[tuple[int, dict[str, str]]]:
    """The rows of a csv as (row number, {column: stripped text}), its header matched ignoring case and spaces.

    Row numbers are as a spreadsheet shows them (the header is row 1). The file is read as spreadsheet programs save
    a csv, as the annotation sheets are: UTF-8 (a BOM, as Excel writes it, ignored), else Windows-1252; cells
    separated by `,`, or by `;` or tabs where those make the header hold the `required` columns (Excel where the
    decimal mark is a comma).

    Raises:
        DatasetError: an unreadable file, or a header without the `required` columns (the columns found named).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read it as a csv ({error})") from None
    text = spreadsheet_text(data)
    first = text.splitlines()[:1]

    def columns(delimiter: str) -> set[str]:
        return {" ".join(c.split()).lower() for row in csv.reader(first, delimiter=delimiter) for c in row}

    # the header decides the separator: `,` unless another gives it the required columns
    delimiter = next((d for d in CSV_DELIMITERS if set(required) <= columns(d)), ",")
    try:
        lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as error:
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
        found = list(dict.fromkeys(cells["label"] for _, cells in rows if cells["label"]))
        codes = [c for c in found if integer_code(c) is not None]
        if codes:
            raise DatasetError(
                f"{path}: labels {', '.join(codes[:5])} are integer codes; name the classes in code order with "
                "--classes, e.g. --classes negative,positive,surprise"
            )
        first: dict[str, str] = {}  # each class spelled as its first row spells it
        for cell in found:
            first.setdefault(label_key(cell), " ".join(cell.split()))
        names = tuple(sorted(first.values()))
    index = ImageIndex("images", names, origins="dataset" in rows[0][1] if rows else False)
    seen: set[tuple[str, str]] = set()
    taken: dict[Path, str] = {}  # each file -> the clip whose image it is
    respelled: dict[tuple[str, str], list[int]] = {}  # (cell, class) -> row numbers
    report = index.problems.append
    needed = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if index.origins else REQUIRED_COLUMNS
    # a subject name under two datasets (MMEW's S01, 4DME's S01) names two people: each is its own LOSO subject
    datasets_of: dict[str, set[str]] = {}
    for _, cells in rows:
        if cells["subject"] and cells.get("dataset"):
            datasets_of.setdefault(cells["subject"], set()).add(cells["dataset"])
    shared = {subject: sorted(found) for subject, found in datasets_of.items() if len(found) > 1}
    for subject, found in shared.items():
        renamed = ", ".join(f"{dataset}_{subject}" for dataset in found)
        detail = f"{path.name}: subject {subject} appears under datasets {', '.join(found)}; read as {renamed}"
        report(Problem(subject, "subject-in-datasets", detail))
    for number, cells in rows:
        where = f"{path.name} row {number}"
        subject, clip = cells["subject"], cells["clip"]
        if subject in shared and cells.get("dataset"):
            subject = f"{cells['dataset']}_{subject}"
        name = "/".join(part for part in (cells.get("dataset", ""), subject, clip) if part) or where
        blank = [c for c in needed if not cells[c]]
        if blank:
            report(Problem(name, "blank-cell", f"{where}: {', '.join(blank)} empty; left out"))
            continue
        label = _label(cells["label"], names)
        if label is None:
            code = " (nor an integer code into them)" if classes is not None else ""
            detail = f"{where}: label {cells['label']!r} is not one of {', '.join(names)}{code}; left out"
            report(Problem(name, "unknown-label", detail))
            continue
        if cells["label"] != label and integer_code(cells["label"]) is None:
            respelled.setdefault((cells["label"], label), []).append(number)
        if (subject, clip) in seen:
            detail = f"{where}: subject {subject} clip {clip} appears again; the first row is kept"
            report(Problem(name, "duplicate-row", detail))
            continue
        seen.add((subject, clip))
        file = csv_file(cells["file"], root)
        if not file.is_file():
            report(Problem(name, "missing-file", f"{where}: {file} not found; left out"))
            continue
        first = taken.setdefault(file.resolve(), name)  # `img/1.png` and `./img/1.png` are one file
        if first != name:
            report(Problem(name, "duplicate-file", f"{where}: {file} is already the image of {first}; left out"))
            continue
        aus, bad = parse_cell(cells.get(AU_COLUMN), where)
        if bad:
            report(Problem(name, "bad-aus", bad))
        au_string = cells.get(AU_COLUMN) or None
        sample = ImageSample(cells.get("dataset", ""), subject, clip, label, {"image": file}, where, aus, au_string)
        index.samples.append(sample)
    for (cell, label), numbers in respelled.items():
        rows_text = ", ".join(map(str, numbers[:10])) + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
        detail = f"{path.name} rows {rows_text}: label {cell!r} read as class {label!r} (case and spaces ignored)"
        report(Problem(path.name, "label-spelling", detail))
    if not index.samples:
        first = f" (first: {index.problems[0].detail})" if index.problems else ""
        raise DatasetError(
            f"{path}: not one row became a clip with its file on disk under {root}{first}; expected {LAYOUT}"
        )
    index.problems += image_problems(index)
    return index


def csv_file(cell: str, root: Path) -> Path:
    """A `file` cell as a path: relative to `root` unless absolute. Where no file is there as written and the cell
    holds a backslash, the backslashes are read as folder separators (a csv written on Windows: `img\\1.png`)."""
    written = Path(cell) if Path(cell).is_absolute() else root / cell
    if "\\" not in cell or written.is_file():
        return written
    windows = Path(cell.replace("\\", "/"))
    windows = windows if windows.is_absolute() else root / windows
    return windows if windows.is_file() else written


def label_key(text: str) -> str:
    """A label as compared: lower case, runs of spaces as one, none around (`' Positive '` -> `positive`)."""
    return " ".join(text.split()).lower()


def integer_code(cell: str) -> int | None:
    """A cell holding an integer code (`1`, `1.0`), as that integer; None for anything else (`1.5`, `one`)."""
    cell = cell.strip()
    return int(float(cell)) if _CODE.fullmatch(cell) else None


def _label(cell: str, classes: tuple[str, ...]) -> str | None:
    """A label cell as a class name: a name of `classes` (case and spaces ignored), or an integer code into them;
    None when neither."""
    if cell in classes:
        return cell
    by_key = {label_key(c): c for c in classes}
    if label_key(cell) in by_key:
        return by_key[label_key(cell)]
    code = integer_code(cell)
    return classes[code] if code is not None and 0 <= code < len(classes) else None


def image_trouble(image: np.ndarray, representation: str) -> tuple[str, str] | None:
    """Why a decoded image (RGB uint8) cannot stand for a clip, as (problem kind, reason), or None.

    A constant image (every pixel one colour: a blank file, or a 16-bit file decoded wrong) holds nothing; a flow
    image whose R, G and B are equal is grey, not the u, v and strain a flow image holds in them.
    """
    if (image == image[:1, :1]).all():
        colour = tuple(int(v) for v in image[0, 0])
        return "constant-image", f"every pixel is {colour}: the image holds nothing"
    if representation == "flow" and (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all():
        return "grey-flow-image", "grey (R = G = B), not a flow image: its R, G, B must hold u, v and the strain"
    return None


def image_problems(index: ImageIndex) -> list[Problem]:
    """Decode every clip's image(s) once and name each that is not an image, is constant, is a grey flow image
    (`image_trouble`), or has another size than most images of its kind (named with both sizes; `pamer prepare`
    resizes it to the cache's side, the most common one)."""
    problems: list[Problem] = []
    sizes: dict[str, dict[str, tuple[int, int]]] = {}
    for sample in index.samples:
        for kind, path in sample.files.items():
            try:
                image = read_rgb(path)
            except ImageError as error:
                problems.append(Problem(sample.uid, "bad-image", str(error)))
                continue
            trouble = image_trouble(image, kind)
            if trouble is not None:
                problems.append(Problem(sample.uid, trouble[0], f"{path}: {trouble[1]}"))
            sizes.setdefault(kind, {})[sample.uid] = image.shape[:2]
    for kind, shapes in sizes.items():
        (common, _), *_ = Counter(shapes.values()).most_common(1)
        for sample in index.samples:
            shape = shapes.get(sample.uid)
            if shape is not None and shape != common:
                size, other = f"{shape[1]}x{shape[0]}", f"{common[1]}x{common[0]}"
                detail = f"{sample.files[kind]}: {size}, the other {kind} images are {other}; prepare resizes it"
                problems.append(Problem(sample.uid, "odd-size", detail))
    return problems
