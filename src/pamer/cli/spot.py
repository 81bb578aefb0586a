"""`pamer spot VIDEO|FRAMES_DIR`: find the micro- and macro-expressions in a long video, and recognise each
micro-expression with a trained model.

`spot` is a command group: `pamer spot score ...` and `pamer spot evaluate ...` are its sub-commands, and any
other first argument (a video or a folder) runs the default sub-command `video` on it (`pamer spot VIDEO` is
`pamer spot video VIDEO`; a video named like a sub-command is spotted with `pamer spot video score`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from pamer.cli._app import app, fail

DEFAULT_COMMAND = "video"


class DefaultGroup(TyperGroup):
    """A group whose first argument, when it names no sub-command (and is no option), goes to `DEFAULT_COMMAND`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


spot_app = typer.Typer(
    cls=DefaultGroup,
    name="spot",
    help="Find micro- and macro-expressions in long videos: `pamer spot VIDEO|FRAMES_DIR [--model DIR] [--out DIR]`.",
    no_args_is_help=True,
)
app.add_typer(spot_app, name="spot")


@spot_app.command(DEFAULT_COMMAND)
def spot_command(
    video: Annotated[Path, typer.Argument(help="A video file, or a folder of numbered frame images (needs --fps).")],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model directory from `pamer train`: recognise each micro-expression with it."),
    ] = None,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frames per second (needed for a folder; overrides a video's).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write intervals.csv, spot.json and timeline.png into this folder."),
    ] = None,
    device: Annotated[str, typer.Option(help="Torch device for --model, e.g. cpu or cuda.")] = "cpu",
) -> None:
    """Spot the expressions in VIDEO (the default action of `pamer spot`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pamer.outputs import write_problem
    from pamer.predict import Recognizer
    from pamer.spot.recognise import recognise
    from pamer.spot.source import open_source
    from pamer.spot.spotter import spot_video

    source = open_source(video, fps)
    if out is not None:
        problem = write_problem(out, create=True)
        if problem is not None:
            raise fail(f"--out {out}: {problem}")
    recognizer = None if model is None else Recognizer.from_dir(model, device=device)
    columns = (
        TextColumn("spotting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("spot", total=source.frames or None)
        result = spot_video(source, progress=lambda done: progress.update(task, completed=done))
    recognised = {} if recognizer is None else recognise(result, recognizer, source)

    for line in result.messages():
        typer.secho(f"warning: {line}", err=True, fg=typer.colors.YELLOW)
    _print_table(result, recognised)
    if out is not None:
        written = _write_outputs(result, recognised, out)
        typer.echo("wrote " + ", ".join(str(p) for p in written))


def _print_table(result, recognised: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    micro = sum(i.type == "micro" for i in result.intervals)
    title = (
        f"{Path(os.path.abspath(result.source)).name}: {micro} micro, {len(result.intervals) - micro} macro "
        f"in {result.frames} frames ({result.frames / result.fps:.1f} s at {result.fps:.3g} fps)"
    )
    table = Table(title=title, title_justify="left")
    for name in ("onset", "apex", "offset", "seconds", "type", "peak px"):
        table.add_column(name, justify="right" if name not in ("type", "seconds") else "left")
    if recognised:
        table.add_column("class")
        table.add_column("probabilities")
    fps = result.fps
    for interval in result.intervals:
        row = [
            str(interval.onset),
            str(interval.apex),
            str(interval.offset),
            f"{interval.onset / fps:.2f}-{interval.apex / fps:.2f}-{interval.offset / fps:.2f}",
            interval.type,
            f"{interval.peak:.2f}",
        ]
        if recognised:
            prediction = recognised.get(interval.apex)
            if prediction is None:
                row += ["", ""]
            else:
                ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])
                row += [prediction.label, " ".join(f"{c} {p:.2f}" for c, p in ranked)]
        table.add_row(*row)
    console.print(table)
    if not result.intervals:
        console.print("no expression found" + ("" if result.face_seen else ": no face was seen"))
    residual = result.to_dict()["median_residual_px"]
    if residual is not None:
        console.print(f"registration: median motion left at the nose {residual:.2f} px (face at 256 px)")


def _write_outputs(result, recognised: dict, out: Path) -> list[Path]:
    from pamer.spot.intervals_csv import write_intervals
    from pamer.spot.spotter import interval_dict
    from pamer.spot.timeline import plot_timeline

    classes = sorted({c for p in recognised.values() for c in p.probabilities})
    rows, extra = [], []
    for interval in result.intervals:
        row = interval_dict(interval, result.fps)
        prediction = recognised.get(interval.apex)
        row["class"] = "" if prediction is None else prediction.label
        for c in classes:
            row[f"p_{c}"] = "" if prediction is None else round(prediction.probabilities[c], 4)
        rows.append(row)
        # the CSV: the interval file's columns, then seconds, and the class columns where a model was given
        keep = ("onset_s", "apex_s", "offset_s", *(("class", *(f"p_{c}" for c in classes)) if recognised else ()))
        extra.append({key: row[key] for key in keep})
    csv_path = write_intervals(out / "intervals.csv", result.intervals, extra)
    summary = result.to_dict()
    summary["intervals"] = rows
    summary["warnings"] = result.messages()
    json_path = out / "spot.json"
    json_path.write_text(json.dumps(summary, indent=2, allow_nan=False), encoding="utf-8")
    labels = {apex: p.label for apex, p in recognised.items()}
    png = plot_timeline(result, out / "timeline.png", labels)
    return [csv_path, json_path, png]
