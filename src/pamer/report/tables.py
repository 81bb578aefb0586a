"""Paper-style tables (Zhan et al. 2024, Tables 2-4) with the paper's numbers beside the measured ones."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

__all__ = ["DATASETS", "MODEL_ROWS", "PAPER", "ReportError", "compare_runs", "load_run", "run_report"]

DATASETS = {"smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}

# (accuracy, F1) per dataset, as printed in the paper (SPEC.md section 5); None where the paper has "-"
_T = tuple[float | None, float | None]
PAPER: dict[str, dict[str, dict[str, _T]]] = {
    "Table 2": {
        "LBP-TOP": {"smic": (0.544, 0.567), "casme2": (0.651, 0.674), "samm": (0.462, 0.488)},
        "Bi-WOOF": {"smic": (0.583, 0.573), "casme2": (0.803, 0.781), "samm": (0.514, 0.521)},
        "DSSN": {"smic": (0.634, 0.646), "casme2": (0.708, 0.729), "samm": (0.574, 0.464)},
        "DConv+ETran+AUGCN+AUFusion": {"smic": (0.719, 0.722), "casme2": (0.743, 0.705), "samm": (0.743, 0.704)},
        "LBP+attention": {"smic": (0.812, None), "casme2": (0.745, None), "samm": (None, None)},
        "MADFN": {"smic": (0.817, 0.810), "casme2": (0.821, 0.801), "samm": (0.772, 0.749)},
        "Dual-ATME": {"smic": (0.646, 0.645), "casme2": (0.817, 0.765), "samm": (0.714, 0.560)},
        "this paper": {"smic": (0.826, 0.817), "casme2": (0.880, 0.864), "samm": (0.787, 0.761)},
    },
    "Table 3": {
        "A": {"smic": (0.653, 0.552), "casme2": (0.671, 0.598), "samm": (0.610, 0.607)},
        "B": {"smic": (0.719, 0.615), "casme2": (0.711, 0.658), "samm": (0.669, 0.652)},
        "C": {"smic": (0.778, 0.759), "casme2": (0.859, 0.827), "samm": (0.735, 0.721)},
        "D": {"smic": (0.826, 0.817), "casme2": (0.880, 0.864), "samm": (0.787, 0.761)},
    },
    "Table 4": {
        "E": {"smic": (0.796, 0.782), "casme2": (0.835, 0.822), "samm": (0.750, 0.742)},
        "F": {"smic": (0.826, 0.817), "casme2": (0.880, 0.864), "samm": (0.787, 0.761)},
        "G": {"smic": (0.808, 0.796), "casme2": (0.855, 0.846), "samm": (0.742, 0.730)},
        "H": {"smic": (0.802, 0.780), "casme2": (0.859, 0.839), "samm": (0.746, 0.733)},
        "I": {"smic": (0.784, 0.775), "casme2": (0.831, 0.797), "samm": (0.735, 0.726)},
    },
}
TITLES = {
    "Table 2": "Table 2: comparison with other methods",
    "Table 3": "Table 3: ablation (A backbone, B +PA, C +MSC, D both)",
    "Table 4": "Table 4: MSC kernel sizes (E 1,3,5,7; F 3,5,7,9; G 5,7,9,11; H 3,3,3,3; I 9,9,9,9)",
}
# which registered network measures which row of the paper
MODEL_ROWS: dict[str, list[tuple[str, str]]] = {
    "pamnet": [("Table 2", "this paper"), ("Table 3", "D"), ("Table 4", "F")],
    "pamnet_backbone": [("Table 3", "A")],
    "pamnet_pa": [("Table 3", "B")],
    "pamnet_msc": [("Table 3", "C")],
    "pamnet_k1357": [("Table 4", "E")],
    "pamnet_k57911": [("Table 4", "G")],
    "pamnet_k3333": [("Table 4", "H")],
    "pamnet_k9999": [("Table 4", "I")],
}
MEASURED = "pamer, last epoch"
ORACLE = "pamer ORACLE: best epoch chosen on the test subject (optimistic, not a result)"


class ReportError(ValueError):
    """A run directory that cannot be reported (the message names it)."""


def load_run(run_dir: str | Path) -> dict:
    """The `metrics.json` of a finished run, with its directory under `run`."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise ReportError(f"{run_dir}: no metrics.json (not a finished `pamer loso` run directory)")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from None
    missing = [k for k in ("dataset", "model", "accuracy", "f1_macro", "uar") if k not in metrics]
    if missing:
        raise ReportError(f"{path}: missing {', '.join(missing)}")
    metrics["run"] = str(run_dir)
    return metrics


def _pair(a: float | None, f1: float | None) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None or v != v else f"{v:.3f}"  # v != v: NaN from pandas

    return f"{fmt(a)} / {fmt(f1)}"


def _row(table: str, row: str, network: str, source: str, dataset: str, a: float | None, f1: float | None, run: str):
    return {
        "table": table,
        "row": row,
        "network": network,
        "source": source,
        "dataset": dataset,
        "accuracy": a,
        "f1": f1,
        "run": run,
    }


def _rows(runs: list[dict]) -> list[dict]:
    """Long-form rows: one per (table, row, source, dataset), paper's first."""
    rows = []
    for table, entries in PAPER.items():
        for row, values in entries.items():
            models = [m for m, places in MODEL_ROWS.items() if (table, row) in places]
            network = models[0] if models else ""
            for dataset, (a, f1) in values.items():
                rows.append(_row(table, row, network, "paper", dataset, a, f1, ""))
            for run in runs:
                if run["model"] not in models:
                    continue
                rows.append(
                    _row(
                        table, row, run["model"], MEASURED, run["dataset"], run["accuracy"], run["f1_macro"], run["run"]
                    )
                )
                if "oracle" in run:
                    o = run["oracle"]
                    rows.append(
                        _row(table, row, run["model"], ORACLE, run["dataset"], o["accuracy"], o["f1_macro"], run["run"])
                    )
    return rows


def compare_runs(run_dirs: list[str | Path], fmt: str = "md") -> str:
    """Tables 2-4 of the paper with the measured runs beside the printed numbers (Markdown or CSV).

    A run enters every table row its network measures (`MODEL_ROWS`) in its dataset's column; runs on other
    datasets or networks are listed in a table of their own. Oracle numbers, when a run has them, are rows
    of their own, labelled as such.
    """
    if fmt not in ("md", "csv"):
        raise ReportError(f"unknown format {fmt!r}; expected md or csv")
    runs = [load_run(d) for d in run_dirs]
    rows = _rows(runs)
    others = [r for r in runs if r["model"] not in MODEL_ROWS or r["dataset"] not in DATASETS]
    if fmt == "csv":
        table = pd.DataFrame(rows)
        extra = [
            _row("other", "", r["model"], MEASURED, r["dataset"], r["accuracy"], r["f1_macro"], r["run"])
            for r in others
        ]
        table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True) if extra else table
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
    if others:
        out += ["## Other runs", "", "| run | dataset | network | accuracy | macro-F1 (UF1) | UAR | oracle A / F1 |"]
        out.append("|---|---|---|---|---|---|---|")
        for r in others:
            oracle = _pair(r["oracle"]["accuracy"], r["oracle"]["f1_macro"]) + " (ORACLE)" if "oracle" in r else ""
            out.append(
                f"| {r['run']} | {r['dataset']} | {r['model']} | {r['accuracy']:.3f} | {r['f1_macro']:.3f} | "
                f"{r['uar']:.3f} | {oracle} |"
            )
        out.append("")
    return "\n".join(out)


def run_report(metrics: dict) -> str:
    """`report.md` of one run: headline metrics, the paper's numbers for the same network and dataset, folds."""
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
    for table, row in MODEL_ROWS.get(metrics["model"], []):
        a, f1 = PAPER[table][row].get(metrics["dataset"], (None, None))
        if a is not None:
            lines.append(f"Paper, {table} row {row}: accuracy / F1 = {_pair(a, f1)}.")
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
