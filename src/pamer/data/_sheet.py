"""Annotation sheets as the datasets ship them: find the file, find the header row by its cells, read the rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pamer.data.samples import DatasetError

SHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv")
# what separates a csv sheet's cells: `;` where Excel saves csv in a locale whose decimal mark is a comma
CSV_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class Row:
    """One data row: its row number in the sheet (1-based, as a spreadsheet shows it) and its cells as text."""

    number: int
    cells: Mapping[str, str | None]

    def __getitem__(self, column: str) -> str | None:
        return self.cells[column]


def find_sheet(root: Path, patterns: Sequence[str], what: str, sheet: Path | None = None) -> Path:
    """The annotation file: `sheet` when given, else the one file in `root` matching one of `patterns`."""
    if sheet is not None:
        sheet = Path(sheet)
        if not sheet.is_file():
            raise DatasetError(f"{what} sheet {sheet} does not exist")
        return sheet
    found = sorted({p for pattern in patterns for p in root.glob(pattern) if p.suffix.lower() in SHEET_SUFFIXES})
    if not found:
        raise DatasetError(f"no {what} sheet ({' or '.join(patterns)}) in {root}; pass its path with --sheet")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DatasetError(f"several {what} sheets in {root} ({names}); choose one with --sheet")
    return found[0]


def _key(cell: object) -> str:
    return " ".join(str(cell).split()).lower()


def _text(cell: object) -> str | None:
    if cell is None or (isinstance(cell, float) and pd.isna(cell)):
        return None
    text = str(cell).strip()
    return text or None


def spreadsheet_text(data: bytes) -> str:
    """A csv file's bytes as text, as spreadsheet programs save it: UTF-8 (a BOM, as Excel writes it, dropped),
    else Windows-1252 (Excel's "CSV" on Windows)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read_csv(path: Path) -> pd.DataFrame:
    """A csv sheet as spreadsheet programs save it, every cell as text ("" where blank): UTF-8 (a BOM or not),
    else Windows-1252 (Excel's "CSV" on Windows); cells separated by `,`, `;` or tabs, whichever separates the most
    lines; rows of any length (a row's trailing blank cells may be left out)."""
    text = spreadsheet_text(path.read_bytes())
    lines = text.splitlines()
    delimiter = max(CSV_DELIMITERS, key=lambda d: sum(d in line for line in lines))
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    width = max(map(len, rows), default=0)
    return pd.DataFrame([row + [""] * (width - len(row)) for row in rows], dtype=str)


def _load(path: Path) -> dict[str, pd.DataFrame]:
    try:
        if path.suffix.lower() == ".csv":
            return {path.name: _read_csv(path)}
        # every cell as text: pandas would otherwise turn CASME II's text subjects `01` into the number 1
        return pd.read_excel(path, sheet_name=None, header=None, dtype=str)
    except Exception as exc:  # whatever the parser trips on, the cause is the user's file: name it
        raise DatasetError(f"cannot read sheet {path}: {type(exc).__name__}: {exc}") from None


def read_rows(
    path: Path,
    columns: Mapping[str, Sequence[str]],
    *,
    optional: Mapping[str, Sequence[str]] | None = None,
    sheets: Sequence[str] = (),
    layout: str = "",
) -> list[Row]:
    """The data rows of the first worksheet (those named in `sheets` first) whose header row has `columns`.

    The header row is found by its cells, not by position (SAMM's header sits below 13 rows of notes). Rows
    whose identifying cells (the first two `columns`) are blank are notes or padding and are skipped.

    Args:
        path: the sheet (.xlsx, .xls or .csv).
        columns: logical name -> the header spellings accepted for it (matched ignoring case and spacing).
        optional: like `columns`, read when present (None when absent).
        sheets: worksheet names to try first, in order; then every other worksheet.
        layout: the expected layout, for the error message.
    """
    book = _load(path)
    order = [s for s in sheets if s in book] + [s for s in book if s not in sheets]
    wanted = {name: {_key(s) for s in spellings} for name, spellings in columns.items()}
    extra = {name: {_key(s) for s in spellings} for name, spellings in (optional or {}).items()}
    best: tuple[int, str, list[str]] = (0, "", [])
    for sheet_name in order:
        frame = book[sheet_name]
        for i in range(len(frame)):
            cells = [_key(c) if _text(c) else "" for c in frame.iloc[i]]
            where = {
                name: next((j for j, c in enumerate(cells) if c in spellings), None)
                for name, spellings in wanted.items()
            }
            hits = sum(j is not None for j in where.values())
            if hits > best[0] or (not best[1] and any(cells)):
                best = (hits, sheet_name, [str(c) for c in frame.iloc[i] if _text(c)])
            if hits < len(wanted):
                continue
            where.update(
                {
                    name: next((j for j, c in enumerate(cells) if c in spellings), None)
                    for name, spellings in extra.items()
                }
            )
            ident = list(columns)[:2]
            rows = []
            for k in range(i + 1, len(frame)):
                values = frame.iloc[k]
                row = {name: (None if j is None else _text(values.iloc[j])) for name, j in where.items()}
                if any(row[name] is None for name in ident):
                    continue
                rows.append(Row(k + 1, row))
            return rows
    expected = ", ".join(spellings[0] for spellings in columns.values())
    found = f"; the closest row (sheet {best[1]!r}) has {best[2]}" if best[1] else "; the file has no cells"
    hint = f" ({layout})" if layout else ""
    raise DatasetError(f"{path}: no header row with the columns {expected}{hint}{found}")


def read_plain(path: Path, sheets: Sequence[tuple[str, int]]) -> list[list[Row]]:
    """The rows of worksheets that have no header row (CAS(ME)^2's code sheets), cells keyed by column position.

    Args:
        path: the workbook.
        sheets: (name, position) of each worksheet wanted: the sheet of that name, or where the workbook has no
            sheet of that name, the one at that position (0 for the first).

    Returns:
        one list per entry of `sheets`: every row with a non-blank cell, its cells as text (None where blank)
        keyed `"0"`, `"1"`, ... by column.
    """
    book = _load(path)
    names = list(book)
    out = []
    for name, position in sheets:
        if name not in book:
            if position >= len(names):
                found = ", ".join(map(repr, names))
                raise DatasetError(f"{path}: no worksheet {name!r} nor a sheet number {position + 1}; has {found}")
            name = names[position]
        frame = book[name]
        rows = []
        for k in range(len(frame)):
            cells = {str(j): _text(c) for j, c in enumerate(frame.iloc[k])}
            if any(cells.values()):
                rows.append(Row(k + 1, cells))
        out.append(rows)
    return out
