"""The demo's pipeline (`run_demo`): generate a CASME II-style set (`demo.synthetic`) -> read it with the CASME II
reader -> align and cache the faces (`pamer.preprocess.prepare`) -> LOSO (`pamer.engine.run_loso`) -> metrics,
confusion matrix and a picture of the progressive attention maps of one fold's model on its test clips
(`attention_picture`).

It prints nothing itself: stage lines and notes go to callbacks, and progress bars are opened by the caller's
`ProgressBar` (`pamer demo` draws them with rich). The face alignment and the LOSO draw their own bars unless `quiet`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import yaml

from pamer.config import Config, ConfigError
from pamer.data import read
from pamer.demo.settings import (
    DEFAULT_CLIPS_PER_CLASS,
    DEFAULT_EPOCHS,
    DEFAULT_SIZE,
    DEFAULT_SUBJECTS,
    DEFAULT_WORKERS,
    MIN_SIZE,
    PROTOCOLS,
    demo_config,
)
from pamer.demo.synthetic import SyntheticConfig, generate, skipped_photos
from pamer.engine import run_loso
from pamer.engine.executors import ExecutorChoice
from pamer.engine.fold import fit, fold_plan, fold_seed
from pamer.engine.inputs import device_for, prepare_inputs
from pamer.engine.rundir import EXECUTION_RECORD, fold_file, recorded_execution
from pamer.engine.threads import torch_threads
from pamer.models import model_input_size, model_method
from pamer.outputs import write_atomic
from pamer.preprocess import Cache, load_cache, prepare, read_manifest
from pamer.preprocess.network_input import normalize
from pamer.report.plots import plot_attention

__all__ = ["DemoResult", "ProgressBar", "attention_picture", "check_demo_model", "run_demo"]

# opens a progress bar: (description, total or None while unknown) -> a context manager giving update(done, total)
ProgressBar = Callable[[str, int | None], AbstractContextManager[Callable[[int, int], None]]]


@dataclass(frozen=True)
class DemoResult:
    """What a demo run made: its pooled LOSO metrics, the chance level beside them, and where its files are.

    Attributes:
        attention: the attention-map picture; None for a network without progressive attention.
    """

    metrics: dict
    chance: float
    run_dir: Path
    confusion: Path
    report: Path
    attention: Path | None


def _ignore(text: str) -> None:
    pass


def _bar(bar: ProgressBar | None, description: str, total: int | None) -> AbstractContextManager:
    return nullcontext() if bar is None else bar(description, total)


def run_demo(
    out: Path,
    *,
    subjects: int = DEFAULT_SUBJECTS,
    clips_per_class: int = DEFAULT_CLIPS_PER_CLASS,
    epochs: int = DEFAULT_EPOCHS,
    size: int = DEFAULT_SIZE,
    classes: int = 3,
    faces: Path | None = None,
    model: str = "pamnet",
    seed: int = 0,
    workers: int = DEFAULT_WORKERS,
    quiet: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    bar: ProgressBar | None = None,
) -> DemoResult:
    """The whole demo into `out`: render the synthetic set (`out/data`), align its faces (`out/cache`), run LOSO
    (`out/runs/<setting>`), write `out/demo.yaml` (the configuration, for `pamer loso`) and the attention picture.

    Rerunning with the same settings reuses the set, the cache and the finished folds; each setting has its own run
    folder. The set's settings are checked before any work starts.

    Args:
        out: the demo's folder.
        subjects: subjects of the synthetic set (`SyntheticConfig`), one LOSO fold each.
        clips_per_class: clips of each class per subject.
        epochs: training epochs per fold (`demo_config`).
        size: side of the aligned face crops and of the network's input.
        classes: 3 (the CASME II reader's `megc2019` protocol) or 5 (CASME II's five emotions).
        faces: a folder of face photos to use instead of the built-in ones.
        model: the network (a name of `pamer.models.list_models`).
        seed: seed of the set and of training.
        workers: processes aligning faces.
        quiet: no progress bars of the face alignment and the LOSO (they log one line per fold instead).
        on_stage: called with one line as each of the four stages begins (None: not told).
        on_note: called with a remark on the results: faces not found, a retrained fold that predicts otherwise.
        bar: opens the progress bars of rendering and of the attention picture's retraining (None: no bars).

    Raises:
        PamerError: a network the demo cannot train (`check_demo_model`), a bad set setting or faces folder
            (`SyntheticError`), dlib missing (`NotInstalledError`), a folder that cannot be written, or the cache's
            and the LOSO's own refusals; anything else is a bug and keeps its traceback.
    """
    on_stage, on_note = on_stage or _ignore, on_note or _ignore
    check_demo_model(model, size)
    synthetic = SyntheticConfig(subjects=subjects, clips_per_class=clips_per_class, classes=classes, seed=seed)
    n_clips = subjects * clips_per_class * classes
    on_stage(f"[1/4] rendering {n_clips} clips of {subjects} subjects into {out / 'data'}")
    with _bar(bar, "rendering clips", None) as update:
        root = generate(out / "data", synthetic, faces, progress=update)
    skipped = skipped_photos(root)
    if skipped:  # recorded in the set's manifest only: a user whose photos were dropped is told which and why
        on_note(f"{len(skipped)} photo(s) of the faces folder not used: {'; '.join(skipped)}")
    protocol = PROTOCOLS[classes]
    index = read("casme2", root, protocol)

    on_stage(f"[2/4] aligning the faces of {len(index)} clips (dlib, 68 landmarks) into {out / 'cache'}")
    cache_dir = prepare(index, out / "cache", size=size, workers=workers, progress=not quiet, protocol=protocol)
    faceless = [r["clip"] for r in read_manifest(cache_dir) if r.get("face") == "none"]
    if faceless:
        on_note(f"no face found in {len(faceless)} clips (centre crops used): {', '.join(faceless)}")
    cache = load_cache(cache_dir)

    config = demo_config(cache_dir, model=model, size=size, epochs=epochs, seed=seed)
    # one run folder per setting, so a rerun with other options never collides with an earlier run
    key = hashlib.sha256(json.dumps([config.to_dict(), str(cache_dir.name)], sort_keys=True).encode()).hexdigest()
    run_dir = out / "runs" / f"{model}-{size}px-{epochs}ep-seed{seed}-{key[:8]}"
    on_stage(f"[3/4] LOSO: {model} at {size} px, {epochs} epochs, {len(index.subjects)} folds into {run_dir}")
    metrics = run_loso(config, run_dir, cache=cache, quiet=quiet)
    (out / "demo.yaml").write_text(
        f"# the demo's last LOSO configuration: pamer loso {out / 'demo.yaml'} --out RUN_DIR\n"
        + yaml.safe_dump(config.to_dict(), sort_keys=False)
    )

    on_stage("[4/4] attention maps")
    attention = attention_picture(config, cache, run_dir, run_dir / "attention.png", bar=bar, on_note=on_note)
    return DemoResult(
        metrics=metrics,
        chance=1.0 / len(cache.classes),
        run_dir=run_dir,
        confusion=run_dir / "confusion.png",
        report=run_dir / "report.md",
        attention=attention,
    )


def check_demo_model(model: str, size: int) -> None:
    """Refuse, before any work, a network the demo cannot train: one that builds its own inputs (the demo trains on
    the apex - onset image, with pamer's augmentation), or one of a fixed input size other than `size`.

    Raises:
        ConfigError: naming the network, what it takes and what to do instead.
    """
    elsewhere = "evaluate it with `pamer loso` and its configuration (`pamer configs`) on a dataset's cache"
    if model_method(model).inputs is not None:
        raise ConfigError(
            f"--model {model} builds its own inputs, but pamer demo trains on the apex - onset image with pamer's "
            f"augmentation: {elsewhere}"
        )
    fixed = model_input_size(model)
    if fixed is not None and fixed != size:
        how = (
            f"pass --size {fixed}" if fixed >= MIN_SIZE else f"the demo's faces are {MIN_SIZE} px or more: {elsewhere}"
        )
        raise ConfigError(f"--model {model} takes {fixed} x {fixed} inputs only, not --size {size}; {how}")


def attention_picture(
    config: Config,
    cache: Cache,
    run_dir: Path,
    path: Path,
    *,
    bar: ProgressBar | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Path | None:
    """Retrain the first fold exactly as the LOSO run did (same seed, the run's recorded threads), and draw its four
    progressive attention maps over the aligned faces of one test clip per class. Returns None for a network without
    attention.

    The retrained model's test predictions are checked against the run's fold file, so the picture shows the model
    that was evaluated (`on_note` is told when they differ).
    """
    device = device_for(config)
    inputs = prepare_inputs(cache, config, device)
    labels = np.asarray(cache.labels, dtype=np.int64)
    subject, train_idx, test_idx = fold_plan(cache.subjects)[0]

    record = recorded_execution(run_dir)
    choice = ExecutorChoice.from_record(record[EXECUTION_RECORD]) if record else None

    with _bar(bar, f"fold {subject} again, for its attention maps", config.train.epochs) as update:
        on_epoch = None if update is None else lambda epoch, loss, acc: update(epoch, config.train.epochs)
        # the threads the run's folds trained on: the same model
        with torch_threads(choice.threads if choice is not None else None):
            result = fit(
                config, inputs, labels, len(cache.classes), train_idx, test_idx, seed=fold_seed(config.seed, 0),
                on_epoch=on_epoch,
            )  # fmt: skip
    fold = pd.read_csv(fold_file(run_dir, subject), dtype={"subject": str})
    preds = result.probs.argmax(1)
    if [cache.classes[p] for p in preds] != fold["pred"].tolist() and on_note is not None:
        on_note(
            f"the retrained fold {subject} predicts differently from the run's fold file "
            "(a different number of CPU threads?); the picture shows the retrained model"
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
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in parts]
    width = max(im.shape[1] for im in images)
    images = [
        cv2.copyMakeBorder(im, 0, 0, 0, width - im.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
        for im in images
    ]
    write_atomic(path, cv2.imencode(".png", np.vstack(images))[1].tobytes())
    for p in parts:
        p.unlink()
