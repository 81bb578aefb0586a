"""`pamer compare`: runs of several methods in one table, with subject-level bootstrap intervals.

Methods are rows, published datasets are columns: accuracy and F1 on SMIC, CASME II and SAMM (the paper's Table 2)
and UF1 and UAR on the MEGC2019 composite (Full, SMIC, CASME II, SAMM). A run fills a column only when the
`label_protocol` in its `metrics.json` is the column's (`published.paper_column`,
`published.is_megc2019_composite`); any other run is listed under "other runs" with the reason.

- Every pooled metric comes with the 95% interval of a subject-level bootstrap (`bootstrap`).
- Runs whose configurations differ only in `seed` (and in where they ran: cache path, device, threads) form
  one row; each cell then shows the mean and standard deviation over the seeds, and its interval is the
  bootstrap of that mean.
- For every row, the paired bootstrap difference to the first row of its table (same subjects resampled for
  both) shows which gaps the subjects support.
- The number the method's authors published is printed beside ours, marked "reported".
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pamer.outputs import os_error_text
from pamer.report.bootstrap import DRAWS, LEVEL, SEED, draw_counts, interval, metric_values, subject_confusions
from pamer.report.published import (
    MEGC2019,
    MEGC2019_PARTS,
    MODEL_MARKS,
    MODEL_ROWS,
    PAPER,
    PAPER_COLUMNS,
    SOURCES,
    is_megc2019_composite,
    megc2019_parts,
    paper_column,
    published_row,
    unplaced_reason,
)
from pamer.report.runs import ReportError, RunData, load_runs

__all__ = ["CSV_COLUMNS", "METHOD_IGNORES", "compare_tables", "write_comparison"]

# configuration keys that say where a run ran or which data file it read, not which method it is: runs that
# differ only in these and `seed` are seeds of one method (the column is fixed by the label protocol)
METHOD_IGNORES = ("seed", "data.cache", "data.dataset", "train.device", "train.threads")
CSV_COLUMNS = (
    "table",
    "method",
    "model",
    "column",
    "metric",
    "value",
    "std",
    "runs",
    "seeds",
    "ci_low",
    "ci_high",
    "reported",
    "reported_source",
    "diff_to",
    "diff",
    "diff_low",
    "diff_high",
    "run_dirs",
    "note",
)


def _flatten(config: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# statistics of one cell: the runs of one method on one column


@dataclass
class Stat:
    """One metric of one cell: mean over the runs (one per seed), their std, and the bootstrap of the mean."""

    value: float
    std: float | None
    draws: np.ndarray
    subjects: tuple[str, ...]

    @property
    def interval(self) -> tuple[float, float]:
        return interval(self.draws, LEVEL)


def _cell_stats(runs: list[RunData], part: str | None, metrics: tuple[str, ...]) -> dict[str, Stat] | None:
    """Each metric of `runs` pooled over the clips of dataset `part` (all clips when None); None: no clips."""
    confusions = []
    subjects: list[str] | None = None
    for run in runs:
        folds = run.folds if part is None else run.folds[run.folds["dataset"] == part]
        if not len(folds):
            return None
        order = sorted(set(folds["subject"]))
        subjects = subjects or order
        if order != subjects:  # seeds of one method on one cache test the same subjects
            raise ReportError(f"{run.path}: tests other subjects than {runs[0].path}, although both are one method")
        k = len(run.metrics["classes"])
        confusions.append(subject_confusions(folds["subject"].to_numpy(), folds["true"], folds["pred"], order, k))
    stacked = np.stack(confusions)  # (runs, subjects, K, K)
    points = metric_values(stacked)
    draws = metric_values(stacked, draw_counts(len(subjects), DRAWS, SEED))
    out = {}
    for name in metrics:
        values = points[name]
        std = float(np.std(values, ddof=1)) if len(values) > 1 else None
        out[name] = Stat(float(values.mean()), std, draws[name].mean(axis=0), tuple(subjects))
    return out


# ---------------------------------------------------------------------------------------------------------------
# placing runs: tables, rows (methods) and cells


@dataclass
class Row:
    """A method: the runs of one configuration (up to the seed) in each column of one table."""

    key: str
    model: str
    config: dict
    cells: dict[str, list[RunData]] = field(default_factory=dict)
    label: str = ""


@dataclass
class Table:
    """A published table: its columns (key -> title), metrics (key -> title) and the method rows placed in it."""

    name: str
    title: str
    tables: tuple[str, ...]  # which published tables give its reported numbers
    columns: dict[str, str]
    metrics: dict[str, str]
    rows: dict[str, Row] = field(default_factory=dict)


def _tables() -> dict[str, Table]:
    return {
        "Table 2": Table(
            "Table 2",
            f"{SOURCES['Table 2']}: accuracy and F1 per dataset",
            ("Table 2", "Table 3", "Table 4"),
            {c.key: c.title for c in PAPER_COLUMNS},
            {"accuracy": "accuracy", "f1_macro": "F1"},
        ),
        "MEGC2019": Table(
            "MEGC2019",
            f"{SOURCES['MEGC2019']}: UF1 and UAR",
            ("MEGC2019",),
            {"full": "Full", **MEGC2019_PARTS},
            {"uf1": "UF1", "uar": "UAR"},
        ),
    }


def _place(runs: list[RunData]) -> tuple[dict[str, Table], list[tuple[RunData, str]]]:
    """Each run into its table's row and column(s), or into the other runs with the reason."""
    tables = _tables()
    others: list[tuple[RunData, str]] = []
    for run in runs:
        column = paper_column(run.metrics)
        if column is not None:
            table, columns = tables["Table 2"], [column]
        elif is_megc2019_composite(run.metrics):
            parts = megc2019_parts(run.metrics)
            table, columns = tables["MEGC2019"], ["full", *parts]
        else:
            others.append((run, unplaced_reason(run.metrics)))
            continue
        method = {k: v for k, v in _flatten(run.config).items() if k not in METHOD_IGNORES}
        method["model.name"] = run.model
        key = json.dumps(method, sort_keys=True, default=str)
        row = table.rows.setdefault(key, Row(key, run.model, method))
        present = row.cells.get(columns[0], [])
        clash = next((r for r in present if r.seed == run.seed), None)
        if clash is not None:
            others.append((run, f"same configuration and seed as {clash.path}"))
            continue
        if present and present[0].cache_fingerprint != run.cache_fingerprint:
            others.append((run, f"same configuration as {present[0].path} but another cache"))
            continue
        for c in columns:
            row.cells.setdefault(c, []).append(run)
    for table in tables.values():
        _label_rows(table)
    return tables, others


def _label_rows(table: Table) -> None:
    """Row labels: the model and the published row it measures; configuration keys where a model has two rows."""
    for row in table.rows.values():
        place = published_row(row.model, table.tables)
        row.label = row.model + (f" ({place[0]}: {place[1]})" if place else "")
        if row.model in MODEL_MARKS:
            row.label += f" [{MODEL_MARKS[row.model]}]"
        twins = [r for r in table.rows.values() if r.model == row.model]
        if len(twins) > 1:
            keys = {k for r in twins for k in r.config}
            keys = sorted(k for k in keys if len({json.dumps(t.config.get(k), default=str) for t in twins}) > 1)
            row.label += " [" + ", ".join(f"{k}={row.config.get(k)}" for k in keys) + "]"


def _reported(model: str, table: Table, column: str, metric: str) -> tuple[float | None, str] | None:
    place = published_row(model, table.tables)
    if place is None:
        return None
    pair = place[2].get(column)
    if pair is None:
        return None
    return pair[list(table.metrics).index(metric)], f"{SOURCES[place[0]]}, {place[1]}"


# ---------------------------------------------------------------------------------------------------------------
# rendering


def _published(v: float | None) -> str:
    """A published number as printed: three decimals (the paper's tables) or four (MEGC2019's)."""
    if v is None:
        return "-"
    text = f"{v:.4f}"
    return text[:-1] if text.endswith("0") else text


def _interval(low: float, high: float, sign: str = "") -> str:
    """An interval to two decimals, rounded outward: printed beside a value of three decimals, it still holds it
    (0.8046 in [0.7412, 0.8049] is `[0.74, 0.81]`, not `[0.74, 0.80]` beside `0.805`)."""
    down = math.floor(round(low * 100, 6)) / 100  # round(., 6) first: 0.29 * 100 is 28.999999999999996
    up = math.ceil(round(high * 100, 6)) / 100
    return f"[{down:{sign}.2f}, {up:{sign}.2f}]"


def _diff(stat: Stat, ref: Stat) -> tuple[float, float, float]:
    draws = stat.draws - ref.draws
    low, high = interval(draws, LEVEL)
    return stat.value - ref.value, low, high


def _records(tables: dict[str, Table], others: list[tuple[RunData, str]]) -> list[dict]:
    """One record per (table, method, column, metric): ours, reported, and the paired difference to row one."""
    records = []
    for table in tables.values():
        if not table.rows:
            continue
        metrics = tuple(table.metrics)
        # Table 2's columns are whole runs; the MEGC2019 part columns select a composite run's clips by dataset
        stats = {
            (row.key, c): _cell_stats(row.cells[c], None if table.name == "Table 2" or c == "full" else c, metrics)
            for row in table.rows.values()
            for c in row.cells
        }
        first = next(iter(table.rows.values()))
        for row in table.rows.values():
            for column in table.columns:
                for metric in table.metrics:
                    runs = row.cells.get(column, [])
                    cell = stats.get((row.key, column))
                    record = _record(table, row.label, row.model, column, metric, runs)
                    reported = _reported(row.model, table, column, metric)
                    if reported is not None:
                        record["reported"], record["reported_source"] = reported
                    if cell is not None:
                        stat = cell[metric]
                        record.update(value=stat.value, std=stat.std)
                        record["ci_low"], record["ci_high"] = stat.interval
                        ref = stats.get((first.key, column))
                        if row is not first and ref is not None:
                            record["diff_to"] = first.label
                            if ref[metric].subjects == stat.subjects:
                                record["diff"], record["diff_low"], record["diff_high"] = _diff(stat, ref[metric])
                            else:
                                record["note"] = "no paired difference: the two rows test other subjects"
                    if cell is not None or reported is not None:
                        records.append(record)
        records += _reported_only(table)
    for run, why in others:
        label = run.metrics.get("label_protocol") or {}
        column = f"{label.get('dataset')} {label.get('protocol')} ({', '.join(label.get('classes') or [])})"
        # never None: a run without clips was refused when its fold files were read
        stats = _cell_stats([run], None, ("accuracy", "f1_macro", "uar")) or {}
        for metric, stat in stats.items():
            record = _record("other runs", run.model, run.model, column if label else "unknown", metric, [run])
            record.update(value=stat.value, note=why)
            record["ci_low"], record["ci_high"] = stat.interval
            records.append(record)
    return records


def _record(table: Table | str, method: str, model: str, column: str, metric: str, runs: list[RunData]) -> dict:
    record: dict = dict.fromkeys(CSV_COLUMNS)
    record.update(
        table=table.name if isinstance(table, Table) else table,
        method=method,
        model=model,
        column=column,
        metric=metric,
        runs=len(runs),
        seeds=";".join(str(r.seed) for r in runs),
        run_dirs=";".join(r.path for r in runs),
    )
    return record


def _reported_only(table: Table) -> list[dict]:
    """Published rows of `table` that no compared run measures (their numbers only, marked reported)."""
    source = table.tables[0]
    measured = {place[1] for row in table.rows.values() if (place := published_row(row.model, (source,)))}
    entries = MEGC2019 if source == "MEGC2019" else PAPER[source]
    records = []
    for name, values in entries.items():
        if name in measured:
            continue
        model = next((m for m, places in MODEL_ROWS.items() if (source, name) in places), "")
        for column, pair in values.items():
            for i, metric in enumerate(table.metrics):
                record = _record(table, f"{name} (reported only)", model, column, metric, [])
                record.update(reported=pair[i], reported_source=f"{SOURCES[source]}, {name}")
                records.append(record)
    return records


def _method_rows(part: pd.DataFrame, table: Table, text) -> list[str]:
    """One markdown row per method of `part`: `text(record)` in each (column, metric) cell, blank where none."""
    rows = []
    for method, group in part.groupby("method", sort=False):
        cells = []
        for column in table.columns:
            for metric in table.metrics:
                hit = group[(group["column"] == column) & (group["metric"] == metric)]
                cells.append(text(hit.iloc[0]) if len(hit) else "")
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return rows


def _markdown(tables: dict[str, Table], records: list[dict]) -> str:
    out = [
        "# pamer compare",
        "",
        "Ours: pamer's preprocessing, the model after the last epoch, predictions pooled over the LOSO folds. "
        f"`0.721 [0.68, 0.76]` is the pooled metric and its {LEVEL:.0%} interval from a subject-level bootstrap "
        f"({DRAWS} draws of the subjects with replacement, seed {SEED}); `± 0.012 (3 seeds)` the mean and "
        "standard deviation over runs that differ only in their seed (the interval is then that of the mean). "
        "`reported`: the authors' published number, on their own preprocessing and often their best epoch; "
        "pamer did not measure it.",
        "",
    ]
    frame = pd.DataFrame(records, columns=list(CSV_COLUMNS))
    for table in tables.values():
        part = frame[frame["table"] == table.name]
        if not table.rows:
            continue
        heads = [f"{t} {m}" for t in table.columns.values() for m in table.metrics.values()]
        out += [f"## {table.title}", "", "| method | " + " | ".join(heads) + " |", "|---" * (1 + len(heads)) + "|"]
        out += _method_rows(part, table, _cell_text)
        out.append("")
        diffs = part[part["diff_to"].notna()]
        if len(diffs):
            first = diffs["diff_to"].iloc[0]
            out += [
                f"### Paired difference to the first row, {first}",
                "",
                "Row minus first row on the same bootstrap draws of the subjects; an interval that excludes 0 is a "
                "gap the subjects support.",
                "",
                "| method | " + " | ".join(heads) + " |",
                "|---" * (1 + len(heads)) + "|",
            ]
            out += _method_rows(diffs, table, _diff_text)
            out.append("")
    other = frame[frame["table"] == "other runs"]
    if len(other):
        out += [
            "## Other runs (their labels match no published column)",
            "",
            "| run | model | labels | seed | accuracy | F1 (UF1) | UAR | why |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for run, group in other.groupby("run_dirs", sort=False):
            by = {r["metric"]: _cell_text(r) for _, r in group.iterrows()}
            first = group.iloc[0]
            out.append(
                f"| {run} | {first['model']} | {first['column']} | {first['seeds']} | {by['accuracy']} | "
                f"{by['f1_macro']} | {by['uar']} | {first['note']} |"
            )
        out.append("")
    measured = frame[(frame["runs"] > 0) & (frame["table"] != "other runs")]
    if len(measured):
        out += ["## Runs", ""]
        for (table, method), group in measured.groupby(["table", "method"], sort=False):
            cells = group.drop_duplicates("run_dirs")  # a composite run fills its part columns too: name it once
            where = "; ".join(
                f"{c}: {d} (seeds {s})"
                for c, d, s in zip(cells["column"], cells["run_dirs"], cells["seeds"], strict=True)
            )
            out.append(f"- {table}, {method}: {where}")
        out.append("")
    return "\n".join(out)


def _cell_text(record: pd.Series) -> str:
    parts = []
    if pd.notna(record["value"]):
        low, high = record["ci_low"], record["ci_high"]
        spread = f" ± {record['std']:.3f} ({record['runs']} seeds)" if pd.notna(record["std"]) else ""
        parts.append(f"{record['value']:.3f}{spread} {_interval(low, high)}")
    if pd.notna(record["reported_source"]):
        reported = record["reported"]
        parts.append(f"(reported {_published(None if pd.isna(reported) else float(reported))})")
    return " ".join(parts)


def _diff_text(record: pd.Series) -> str:
    if pd.isna(record["diff"]):
        return "n/a (other subjects)" if pd.notna(record["note"]) else ""
    return f"{record['diff']:+.3f} {_interval(record['diff_low'], record['diff_high'], '+')}"


def compare_tables(run_dirs: list[str | Path], fmt: str = "md", notes: list[str] | None = None) -> str:
    """The comparison of `run_dirs` as Markdown tables or one long CSV table (one line per cell and metric).

    Each run is read by `pamer.report.runs.load_runs` (every number checked against its fold files, a directory
    named twice read once); files in a run's `folds/` that are not its fold files are ignored and named in `notes`
    when a list is given.

    Raises:
        ReportError: no run directories, an unknown format, or a run directory that cannot be read (named).
    """
    if fmt not in ("md", "csv"):
        raise ReportError(f"unknown format {fmt!r}; expected md or csv")
    if not run_dirs:
        raise ReportError("no run directories to compare")
    runs = load_runs(run_dirs)  # a directory named twice is one run
    if notes is not None:
        notes += [note for run in runs for note in run.notes]
    tables, others = _place(runs)
    records = _records(tables, others)
    if fmt == "csv":
        buffer = io.StringIO()
        pd.DataFrame(records, columns=list(CSV_COLUMNS)).to_csv(buffer, index=False)
        return buffer.getvalue()
    return _markdown(tables, records)


def write_comparison(path: str | Path, text: str) -> None:
    """Write a comparison (`compare_tables`' text) to the file `path`.

    Raises:
        ReportError: the file cannot be written (the message names it and why: read-only, a folder, disk full).
    """
    try:
        Path(path).write_text(text)
    except OSError as error:
        raise ReportError(f"cannot write {path}: {os_error_text(error)}") from None
