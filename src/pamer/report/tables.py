"""Paper-style tables (Zhan et al. 2024, Tables 2-4; MEGC2019) with the published numbers beside the measured ones.

A run fills a published cell only when the label protocol in its `metrics.json` is the one the cell was measured
under (`published.paper_column`, `published.is_megc2019_composite`); every other run is listed as such.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from pamer.report.published import (
    DATASETS,
    MEGC2019,
    MEGC2019_PARTS,
    MODEL_ROWS,
    PAPER,
    SOURCES,
    is_megc2019_composite,
    megc2019_parts,
    paper_column,
    published_row,
    unplaced_reason,
)
from pamer.report.runs import ReportError, load_run, load_runs

__all__ = ["DATASETS", "MODEL_ROWS", "PAPER", "ReportError", "compare_runs", "load_run", "run_report"]

TITLES = {
    "Table 2": "Table 2: comparison with other methods",
    "Table 3": "Table 3: ablation (A backbone, B +PA, C +MSC, D both)",
    "Table 4": "Table 4: MSC kernel sizes (E 1,3,5,7; F 3,5,7,9; G 5,7,9,11; H 3,3,3,3; I 9,9,9,9)",
}
MEASURED = "pamer, last epoch"
ORACLE = "pamer ORACLE: best epoch chosen on the test subject (optimistic, not a result)"


def _fmt(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.3f}"  # v != v: NaN from pandas


def _pair(a: float | None, f1: float | None) -> str:
    return f"{_fmt(a)} / {_fmt(f1)}"


def _row(
    table: str,
    row: str,
    network: str,
    source: str,
    dataset: str,
    a: float | None,
    f1: float | None,
    run: str,
    uar: float | None = None,
) -> dict:
    return {
        "table": table,
        "row": row,
        "network": network,
        "source": source,
        "dataset": dataset,
        "accuracy": a,
        "f1": f1,
        "run": run,
        "uar": uar,
    }


def _placed_in_paper(run: dict) -> bool:
    return paper_column(run) is not None and published_row(run["model"], tuple(PAPER)) is not None


def _rows(runs: list[dict]) -> list[dict]:
    """Long-form rows of Tables 2-4: one per (table, row, source, dataset), the paper's first.

    A run enters the rows its network measures, in the column its label protocol matches (never by its name).
    """
    rows = []
    for table, entries in PAPER.items():
        for row, values in entries.items():
            models = [m for m, places in MODEL_ROWS.items() if (table, row) in places]
            network = models[0] if models else ""
            for dataset, (a, f1) in values.items():
                rows.append(_row(table, row, network, "paper", dataset, a, f1, ""))
            for run in runs:
                column = paper_column(run)
                if run["model"] not in models or column is None:
                    continue
                rows.append(
                    _row(
                        table,
                        row,
                        run["model"],
                        MEASURED,
                        column,
                        run["accuracy"],
                        run["f1_macro"],
                        run["run"],
                        run["uar"],
                    )
                )
                if "oracle" in run:
                    o = run["oracle"]
                    rows.append(
                        _row(table, row, run["model"], ORACLE, column, o["accuracy"], o["f1_macro"], run["run"])
                    )
    return rows


def _megc_rows(runs: list[dict]) -> list[dict]:
    """Long-form rows of the MEGC2019 table: (UF1 as `f1`, UAR) for the full composite and each part."""
    rows = []
    for name, values in MEGC2019.items():
        network = next((m for m, places in MODEL_ROWS.items() if ("MEGC2019", name) in places), "")
        for dataset, (uf1, uar) in values.items():
            rows.append(_row("MEGC2019", name, network, "paper", dataset, None, uf1, "", uar))
    for run in runs:
        if not is_megc2019_composite(run):
            continue
        place = published_row(run["model"], ("MEGC2019",))
        name = place[1] if place else ""
        full = {"accuracy": run["accuracy"], "uf1": run["f1_macro"], "uar": run["uar"]}
        parts = {p: run["by_dataset"][p] for p in megc2019_parts(run)}  # the parts it holds in full
        for dataset, part in {"full": full, **parts}.items():
            numbers = (part["accuracy"], part["uf1"], run["run"], part["uar"])
            rows.append(_row("MEGC2019", name, run["model"], MEASURED, dataset, *numbers))
    return rows


def _megc_table(rows: list[dict]) -> list[str]:
    columns = {"full": "Full", **MEGC2019_PARTS}
    out = [
        f"## MEGC2019 composite: UF1 / UAR (paper rows: {SOURCES['MEGC2019']}; pamer rows pooled over the LOSO folds)",
        "",
        "| row | network | source | " + " | ".join(columns.values()) + " | run |",
        "|---" * (4 + len(columns)) + "|",
    ]
    frame = pd.DataFrame(rows)
    for (row, source, run), group in frame.groupby(["row", "source", "run"], sort=False):
        cells = []
        for dataset in columns:
            hits = group[group["dataset"] == dataset]
            cells.append(f"{hits['f1'].iloc[0]:.4f} / {hits['uar'].iloc[0]:.4f}" if len(hits) else "")  # MEGC's 4
        out.append(f"| {row} | {group['network'].iloc[0]} | {source} | " + " | ".join(cells) + f" | {run} |")
    out.append("")
    return out


def compare_runs(run_dirs: list[str | Path], fmt: str = "md", notes: list[str] | None = None) -> str:
    """Tables 2-4 of the paper and the MEGC2019 table with the measured runs beside the published numbers.

    A run enters every table row its network measures (`MODEL_ROWS`) in the column its `label_protocol`
    matches; a run on the MEGC2019 composite enters the MEGC2019 table with its full and per-part UF1 / UAR;
    every other run is listed in a table of its own with the reason. Oracle numbers, when a run has them, are
    rows of their own, labelled as such.

    Each run is read by `pamer.report.runs.load_run_data`: its metrics.json checked and its fold files read through
    the engine's checked reader, which must give the numbers metrics.json holds; a directory named twice is one run.
    Files in a run's `folds/` that are not its fold files are ignored and named in `notes` when a list is given.

    Raises:
        ReportError: an unknown format, or a run directory whose `metrics.json`, configuration or fold files are
            missing, damaged or disagree (named).
    """
    if fmt not in ("md", "csv"):
        raise ReportError(f"unknown format {fmt!r}; expected md or csv")
    data = load_runs(run_dirs)  # a directory named twice is one run: a cell listed it twice
    if notes is not None:
        notes += [note for run in data for note in run.notes]
    runs = [run.metrics for run in data]
    rows = _rows(runs)
    megc = _megc_rows(runs)
    others = [r for r in runs if not _placed_in_paper(r) and not is_megc2019_composite(r)]
    if fmt == "csv":
        extra = [
            _row("other", "", r["model"], MEASURED, r["dataset"], r["accuracy"], r["f1_macro"], r["run"], r["uar"])
            for r in others
        ]
        table = pd.DataFrame(rows + megc + extra)
        buffer = io.StringIO()
        table.to_csv(buffer, index=False)
        return buffer.getvalue()
    out = ["Accuracy / macro-F1 under LOSO (F1 pooled over all folds, the paper's eq. 12-13).", ""]
    frame = pd.DataFrame(rows)
    for table in PAPER:
        part = frame[frame["table"] == table]
        out += [f"## {TITLES[table]}", "", "| row | network | source | " + " | ".join(DATASETS.values()) + " |"]
        out.append("|---" * (3 + len(DATASETS)) + "|")
        for (row, source), group in part.groupby(["row", "source"], sort=False):
            cells = []
            for dataset in DATASETS:
                hits = group[group["dataset"] == dataset]
                cells.append("; ".join(_pair(a, f) for a, f in zip(hits["accuracy"], hits["f1"], strict=True)) or "")
            network = group["network"].iloc[0]
            out.append(f"| {row} | {network} | {source} | " + " | ".join(cells) + " |")
        out.append("")
    if any(r["source"] != "paper" for r in megc):
        out += _megc_table(megc)
    if others:
        out += [
            "## Other runs (no published column has their label protocol and network)",
            "",
            "| run | dataset | network | accuracy | macro-F1 (UF1) | UAR | oracle A / F1 | why |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in others:
            oracle = _pair(r["oracle"]["accuracy"], r["oracle"]["f1_macro"]) + " (ORACLE)" if "oracle" in r else ""
            why = unplaced_reason(r) if paper_column(r) is None else f"network {r['model']} has no row in Tables 2-4"
            out.append(
                f"| {r['run']} | {r['dataset']} | {r['model']} | {r['accuracy']:.3f} | {r['f1_macro']:.3f} | "
                f"{r['uar']:.3f} | {oracle} | {why} |"
            )
        out.append("")
    return "\n".join(out)


def run_report(metrics: dict) -> str:
    """`report.md` of one run: headline metrics, the published numbers for the same network and labels, folds."""
    lines = [
        f"# LOSO: {metrics['model']} on {metrics['dataset'] or 'unnamed dataset'}",
        "",
        f"{metrics.get('protocol', '')}; {metrics.get('clips', '?')} clips, classes {', '.join(metrics['classes'])}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy (pooled, eq. 11) | {metrics['accuracy']:.4f} |",
        f"| macro-F1 = UF1 (pooled, eq. 12-13) | {metrics['f1_macro']:.4f} |",
        f"| UAR (mean per-class recall, pooled) | {metrics['uar']:.4f} |",
        f"| mean of per-fold accuracy (not pooled) | {metrics['per_fold_mean']['accuracy']:.4f} |",
        f"| mean of per-fold macro-F1 (not pooled) | {metrics['per_fold_mean']['f1_macro']:.4f} |",
        "",
    ]
    label = metrics.get("label_protocol") or {}
    column = paper_column(metrics)
    if column is not None:
        for table, row in MODEL_ROWS.get(metrics["model"], []):
            if table in PAPER and PAPER[table][row][column][0] is not None:
                lines.append(f"Paper, {table} row {row}: accuracy / F1 = {_pair(*PAPER[table][row][column])}.")
    elif label and not is_megc2019_composite(metrics):
        lines.append(f"Set beside no published column: {unplaced_reason(metrics)}.")
    if "by_dataset" in metrics:
        lines += ["", "| part | clips | UF1 | UAR | accuracy |", "|---|---|---|---|---|"]
        parts = {"all": {**metrics, "clips": metrics.get("clips", "?"), "uf1": metrics["f1_macro"]}}
        for name, part in {**parts, **metrics["by_dataset"]}.items():
            lines.append(
                f"| {name} | {part['clips']} | {part['uf1']:.4f} | {part['uar']:.4f} | {part['accuracy']:.4f} |"
            )
    if is_megc2019_composite(metrics):
        place = published_row(metrics["model"], ("MEGC2019",))
        if place is not None:
            uf1, uar = place[2]["full"]
            lines += ["", f"{SOURCES['MEGC2019']}, {place[1]}: full composite UF1 / UAR = {_pair(uf1, uar)}."]
    if "oracle" in metrics:
        o = metrics["oracle"]
        lines += [
            "",
            f"ORACLE ({o['note']}): accuracy {o['accuracy']:.4f}, macro-F1 {o['f1_macro']:.4f}, UAR {o['uar']:.4f}.",
        ]
    lines += ["", "![confusion](confusion.png)", "", "| fold (test subject) | clips | accuracy | macro-F1 |"]
    lines.append("|---|---|---|---|")
    for subject, fold in metrics["per_fold"].items():
        lines.append(f"| {subject} | {fold['n']} | {fold['accuracy']:.3f} | {fold['f1_macro']:.3f} |")
    return "\n".join(lines) + "\n"
