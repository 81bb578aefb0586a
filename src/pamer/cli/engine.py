"""`pamer loso`, `pamer train`, `pamer report`, `pamer compare`: LOSO evaluation, final training, result tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pamer.cli._app import app, fail

ConfigArg = Annotated[
    Path, typer.Argument(help="YAML config: a file, or a shipped config's name (`pamer configs`), e.g. paper/casme2.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: key=value (repeatable), e.g. --set train.epochs=2."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="One log line per fold/epoch instead of bars.")]


def _config(path: Path, overrides: list[str] | None):
    from pamer.config import load_config

    return load_config(path, overrides or [])


@app.command("loso")
def loso(
    config_path: ConfigArg,
    overrides: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default runs/<config name>); rerun to resume.")
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="auto (picks from the network's cost, the cores and the device, and says which), local (in "
            "process), process (worker processes), ray, or stacked (K folds at once as one model; the GPU path). "
            "Decided when the run starts and recorded in provenance.json; a rerun resumes as recorded."
        ),
    ] = "auto",
    workers: Annotated[int | None, typer.Option(help="Worker processes for --executor process (or auto).")] = None,
    stack: Annotated[
        int | None,
        typer.Option(help="Folds trained at once by --executor stacked (default: as many as free memory holds)."),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (--executor ray); default: start a local one.")
    ] = None,
    cpus_per_fold: Annotated[float, typer.Option(help="CPUs of each Ray fold task.")] = 1.0,
    gpus_per_fold: Annotated[
        float, typer.Option(help="GPUs of each Ray fold task (0.25: four folds share one).")
    ] = 0.0,
    quiet: QuietOption = False,
    allow_mixed_devices: Annotated[
        bool,
        typer.Option(
            "--allow-mixed-devices",
            help="Resume even if the new folds run on another device, dtype or thread count than the finished ones "
            "or the run's recorded choice (their numbers differ slightly; each fold file records its own).",
        ),
    ] = False,
) -> None:
    """Leave-one-subject-out evaluation: train one network per subject, pool the predictions, write metrics."""
    if workers is not None and workers < 1:
        raise fail(f"--workers must be at least 1, got {workers}")
    if stack is not None and stack < 1:
        raise fail(f"--stack must be at least 1, got {stack}")
    if not 0 < cpus_per_fold < float("inf") or not 0 <= gpus_per_fold < float("inf"):
        raise fail(f"--cpus-per-fold must be > 0 and --gpus-per-fold >= 0, got {cpus_per_fold} and {gpus_per_fold}")
    from pamer.engine import run_loso
    from pamer.engine.executors import check_executor

    check_executor(executor)
    # an option of another executor would be ignored without a word (`--address` with auto runs on this machine)
    given = {
        "--workers": (workers is not None, ("auto", "process")),
        "--stack": (stack is not None, ("auto", "stacked")),
        "--address": (address is not None, ("ray",)),
        "--cpus-per-fold": (cpus_per_fold != 1.0, ("ray",)),
        "--gpus-per-fold": (gpus_per_fold != 0.0, ("ray",)),
    }
    for option, (is_given, executors) in given.items():
        if is_given and executor not in executors:
            raise fail(f"{option} applies to --executor {' or '.join(executors)}, not to --executor {executor}")
    config = _config(config_path, overrides)
    run_dir = out if out is not None else Path("runs") / config_path.stem
    metrics = run_loso(
        config,
        run_dir,
        executor,
        workers=workers,
        stack=stack,
        address=address,
        cpus_per_fold=cpus_per_fold,
        gpus_per_fold=gpus_per_fold,
        quiet=quiet,
        allow_mixed_devices=allow_mixed_devices,
    )
    line = (
        f"{metrics['model']} on {metrics['dataset'] or config.data.cache}: accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 (UF1) {metrics['f1_macro']:.4f}, UAR {metrics['uar']:.4f} over {metrics['folds']} folds"
    )
    if "oracle" in metrics:
        line += f"; ORACLE (best epoch on the test subject, not a result) accuracy {metrics['oracle']['accuracy']:.4f}"
    typer.echo(line)
    typer.echo(f"run directory: {run_dir}")


@app.command("train")
def train(
    config_path: ConfigArg,
    out: Annotated[Path, typer.Option("--out", help="Model directory: model.safetensors + model.json.")],
    overrides: SetOption = None,
    quiet: QuietOption = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a model already in --out.")] = False,
) -> None:
    """Train on every subject of the cache and save a checkpoint for `pamer predict`."""
    config = _config(config_path, overrides)
    from pamer.engine import train_final

    def log(epoch: int, loss: float, acc: float) -> None:
        if quiet:
            typer.echo(f"epoch {epoch}/{config.train.epochs}: loss {loss:.4f}, train accuracy {acc:.3f}", err=True)

    if quiet:
        path = train_final(config, out, on_epoch=log, force=force)
    else:
        from rich.progress import Progress

        with Progress() as bar:
            task = bar.add_task("training", total=config.train.epochs)

            def show(epoch: int, loss: float, acc: float) -> None:
                bar.update(task, completed=epoch, description=f"loss {loss:.3f} acc {acc:.3f}")

            path = train_final(config, out, on_epoch=show, force=force)
    typer.echo(f"model: {path / 'model.safetensors'} and {path / 'model.json'}")


@app.command("report")
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories of `pamer loso`.")],
    fmt: Annotated[str, typer.Option("--format", help="md (Markdown) or csv.")] = "md",
) -> None:
    """Tables shaped like the paper's Tables 2-4, the paper's numbers beside the measured ones."""
    from pamer.report.tables import compare_runs

    notes: list[str] = []
    text = compare_runs(run_dirs, fmt, notes)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(text)


@app.command("compare")
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories of `pamer loso` (the first is row one).")],
    fmt: Annotated[str, typer.Option("--format", help="md (Markdown) or csv (one line per cell and metric).")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="Write the table to this file instead of stdout.")] = None,
) -> None:
    """Methods in rows, datasets in columns: bootstrap intervals, seeds pooled, differences, published numbers."""
    from pamer.report.compare import compare_tables, write_comparison

    notes: list[str] = []
    text = compare_tables(run_dirs, fmt, notes)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if out is None:
        typer.echo(text)
        return
    write_comparison(out, text)
    typer.echo(f"comparison written to {out}")
