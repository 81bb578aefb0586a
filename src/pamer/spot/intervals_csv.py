"""Interval files: the `video,onset,offset,type` CSV that `pamer spot` writes and `pamer spot score` reads.

One reader and one writer, so a file pamer writes is always a file pamer reads. The header names the columns,
in any order; `video`, `onset`, `offset` and `type` are required, `apex` and `peak` are read when present, and any
other column (seconds, a recognised class, probabilities) is allowed and ignored. Frames are inclusive, as in the
MEGC spotting challenges' ground truth; `type` is `micro` or `macro`.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pamer.errors import PamerError
from pamer.spot.intervals import TYPES, Interval

__all__ = ["COLUMNS", "IntervalFileError", "read_intervals", "write_intervals"]

COLUMNS = ("video", "onset", "offset", "type")  # required, in the order the writer puts them
OPTIONAL = ("apex", "peak")  # read when present; written always (blank where unknown)
_WHOLE = re.compile(r"^\d+$")


class IntervalFileError(PamerError):
    """A malformed interval file (the message names the file, the line and the value)."""


def _frame(path: Path, line: int, column: str, text: str) -> int:
    if not _WHOLE.match(text):
        raise IntervalFileError(f"{path} line {line}: {column} {text!r} is not a whole frame number (0, 1, 2, ...)")
    return int(text)


def read_intervals(path: str | Path) -> list[Interval]:
    """The intervals of an interval CSV, in file order.

    Raises:
        IntervalFileError: a missing or empty file, a header without the required columns (or with a column twice),
            and, by line number: a row with more or fewer fields than the header, an empty video, a frame that is
            not a whole number >= 0, an offset before its onset, a type other than micro or macro, a peak that is
            not a finite number.
    """
    path = Path(path)
    try:
        # utf-8-sig: a file saved by a spreadsheet program starts with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [(number, row) for number, row in _numbered(csv.reader(handle))]
    except FileNotFoundError:
        raise IntervalFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise IntervalFileError(f"{path}: cannot read it as CSV text ({error})") from None
    expected = ",".join(COLUMNS)
    if not rows:
        raise IntervalFileError(f"{path}: the file is empty; expected a header row {expected}")
    header_line, header = rows[0]
    names = [cell.strip().lower() for cell in header]
    twice = sorted({name for name in names if name and names.count(name) > 1})
    if twice:
        raise IntervalFileError(f"{path} line {header_line}: column {', '.join(twice)} appears twice in the header")
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise IntervalFileError(
            f"{path} line {header_line}: the header lacks {', '.join(missing)}; expected {expected} "
            f"(extra columns allowed), found {','.join(header)}"
        )
    where = {name: names.index(name) for name in (*COLUMNS, *OPTIONAL) if name in names}
    intervals = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise IntervalFileError(f"{path} line {line}: {len(row)} fields, but the header has {len(header)}")
        cells = {name: row[j].strip() for name, j in where.items()}
        if not cells["video"]:
            raise IntervalFileError(f"{path} line {line}: the video is empty")
        onset = _frame(path, line, "onset", cells["onset"])
        offset = _frame(path, line, "offset", cells["offset"])
        if offset < onset:
            raise IntervalFileError(f"{path} line {line}: offset {offset} is before onset {onset}")
        kind = cells["type"].lower()
        if kind not in TYPES:
            raise IntervalFileError(f"{path} line {line}: type {cells['type']!r} is not one of {', '.join(TYPES)}")
        apex = _frame(path, line, "apex", cells["apex"]) if cells.get("apex") else None
        peak = None
        if cells.get("peak"):
            try:
                peak = float(cells["peak"])
            except ValueError:
                peak = math.nan
            if not math.isfinite(peak):
                raise IntervalFileError(f"{path} line {line}: peak {cells['peak']!r} is not a finite number")
        intervals.append(Interval(cells["video"], onset, offset, kind, apex, peak))
    return intervals


def _numbered(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """(line number, row) for each non-blank row of a `csv.reader`; the number is the line the row starts on."""
    start = 1
    for row in reader:
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def write_intervals(
    path: str | Path, intervals: Sequence[Interval], extra: Sequence[Mapping[str, object]] | None = None
) -> Path:
    """Write `intervals` as an interval CSV: `video,onset,offset,type,apex,peak`, then the keys of `extra`.

    Args:
        path: the CSV file to write (its folder must exist).
        intervals: what to write, in order.
        extra: one mapping per interval of further columns (e.g. a recognised class and its probability); the
            columns are the keys in the order first seen, blank where a row lacks one.

    Returns:
        `path`.
    """
    path = Path(path)
    if extra is not None and len(extra) != len(intervals):
        raise ValueError(f"extra has {len(extra)} rows for {len(intervals)} intervals")
    rows = extra if extra is not None else [{}] * len(intervals)
    more = list(dict.fromkeys(key for row in rows for key in row))
    clash = [key for key in more if key in (*COLUMNS, *OPTIONAL)]
    if clash:
        raise ValueError(f"extra columns {', '.join(clash)} would repeat a standard column")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, *OPTIONAL, *more])
        for interval, row in zip(intervals, rows, strict=True):
            apex = "" if interval.apex is None else interval.apex
            peak = "" if interval.peak is None else repr(float(interval.peak))
            base = [interval.video, interval.onset, interval.offset, interval.type, apex, peak]
            writer.writerow([*base, *(row.get(key, "") for key in more)])
    return path
