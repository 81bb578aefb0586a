"""`pamer spot score` and `pamer spot evaluate`: the MEGC spotting score of an interval file, and of a whole
spotting dataset (CAS(ME)^2, SAMM Long Videos) spotted with pamer's defaults."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pamer.cli._app import fail
from pamer.cli.spot import spot_app

if TYPE_CHECKING:
    from pamer.data.longvideos import LongVideo
    from pamer.spot.score import Score

# pamer.spot is imported inside the commands: it loads the spotter (OpenCV, SciPy, dlib), which would add seconds
# to every `pamer` command's start-up
DEFAULT_IOU = 0.5  # pamer.spot.score.DEFAULT_IOU, the MEGC threshold (a test checks they agree)


IOU_HELP = "A truth interval is found by a prediction of its type and video with IoU at or above this."


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_score(result: Score, title: str) -> None:
    """The score as a table: one row per type and overall, counts then precision, recall and F1."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{title} (IoU >= {result.iou:g})", title_justify="left")
    for column in ("type", "truth", "predicted", "TP", "FP", "FN", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for name, c in result.counts().items():
        counts = [str(n) for n in (c.truth, c.predicted, c.tp, c.fp, c.fn)]
        style = "bold" if name == "overall" else None
        table.add_row(name, *counts, _rate(c.precision), _rate(c.recall), _rate(c.f1), style=style)
    Console().print(table)


def _check_iou(iou: float) -> None:
    if not 0 < iou <= 1:
        raise fail(f"--iou: the IoU threshold must be in (0, 1], got {iou}")


def _unknown_note(result: Score, predicted: list) -> None:
    if result.unknown_videos:
        n = sum(p.video in set(result.unknown_videos) for p in predicted)
        names = ", ".join(result.unknown_videos)
        intervals = f"{n} interval" + ("s" if n != 1 else "")
        typer.echo(f"note: predicted videos not in the truth: {names} (their {intervals} count as FP)", err=True)


def _repeated_note(result: Score, truth: str) -> None:
    if result.repeated:
        shown = ", ".join(f"{t.video} {t.onset}-{t.offset} {t.type}" for t in result.repeated[:5])
        more = f" and {len(result.repeated) - 5} more" if len(result.repeated) > 5 else ""
        intervals = f"{len(result.repeated)} interval" + ("s" if len(result.repeated) != 1 else "")
        typer.echo(f"note: {truth} repeats {intervals} given before: {shown}{more} (each counted once)", err=True)


@spot_app.command("score")
def score_command(
    truth: Annotated[Path, typer.Argument(help="Ground truth: a CSV with the header video,onset,offset,type.")],
    predicted: Annotated[Path, typer.Argument(help="Predictions in the same format (e.g. `pamer spot`'s CSV).")],
    iou: Annotated[float, typer.Option(help=IOU_HELP)] = DEFAULT_IOU,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """The MEGC spotting score: TP, FP, FN, precision, recall and F1 for micro, macro and both."""
    from pamer.spot.intervals_csv import read_intervals
    from pamer.spot.score import score

    _check_iou(iou)
    truths, predictions = read_intervals(truth), read_intervals(predicted)
    result = score(truths, predictions, iou)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_score(result, f"{predicted.name} against {truth.name}")
    _unknown_note(result, predictions)
    _repeated_note(result, str(truth))


@spot_app.command("evaluate")
def evaluate_command(
    name: Annotated[str, typer.Argument(help="Spotting dataset: casme-sq (CAS(ME)^2) or samm-lv (SAMM Long Videos).")],
    root: Annotated[Path, typer.Option(help="The dataset folder as its owners ship it (sheet + frame folders).")],
    sheet: Annotated[Path | None, typer.Option(help="The annotation workbook, when it is not in ROOT.")] = None,
    iou: Annotated[float, typer.Option(help=IOU_HELP)] = DEFAULT_IOU,
    out: Annotated[
        Path | None, typer.Option(help="Write truth.csv, predicted.csv and score.json here (re-score them later).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Spot every video of a spotting dataset with pamer's defaults, then print the MEGC score."""
    from pamer.outputs import write_problem
    from pamer.spot.evaluate import SPOTTING_DATASETS, evaluate, read_spotting
    from pamer.spot.intervals_csv import write_intervals

    if name not in SPOTTING_DATASETS:
        raise fail(f"unknown spotting dataset {name!r}; expected one of {', '.join(SPOTTING_DATASETS)}")
    _check_iou(iou)
    if out is not None and (problem := write_problem(out, create=True)) is not None:
        raise fail(f"cannot write into --out {out}: {problem}")
    index = read_spotting(name, root, sheet)
    counts = index.counts()
    typer.echo(
        f"{name}: {len(index.videos)} videos, {counts.get('micro', 0)} micro and {counts.get('macro', 0)} macro "
        f"intervals annotated, {len(index.problems)} problems; spotting at {index.fps:g} fps",
        err=True,
    )

    def progress(done: int, video: LongVideo, found: int) -> None:
        typer.echo(f"[{done}/{len(index.videos)}] {video.video}: {found} intervals", err=True)

    evaluation = evaluate(index, iou=iou, progress=progress)
    for problem in evaluation.warnings:
        typer.echo(f"warning: {problem.clip}: {problem.detail}", err=True)
    for problem in evaluation.refused:
        typer.echo(f"warning: {problem.clip}: not spotted ({problem.detail}); its intervals count as FN", err=True)
    _repeated_note(evaluation.score, f"the sheet {index.sheet.name}")
    if out is not None:
        write_intervals(out / "truth.csv", index.truth)
        write_intervals(out / "predicted.csv", evaluation.predicted)
        (out / "score.json").write_text(json.dumps(evaluation.score.to_dict(), indent=2) + "\n")
    if as_json:
        summary = {
            "dataset": name,
            "videos": len(index.videos),
            "problems": [asdict(p) for p in index.problems],
            "refused": [asdict(p) for p in evaluation.refused],
            "warnings": [asdict(p) for p in evaluation.warnings],
            **evaluation.score.to_dict(),
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    kinds: dict[str, int] = {}
    for problem in index.problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    if kinds:
        listed = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        typer.echo(f"problems in the dataset: {listed} (all listed with --json)", err=True)
    print_score(evaluation.score, f"{name}: pamer spot with its defaults")
