"""Leave-one-subject-out evaluation: folds by subject, executors (local, process, ray), resumable run directory.

Run directory:
    config.yaml        the resolved configuration (a rerun with another config is refused)
    provenance.json    code version, seed, library versions, device, cache fingerprint, timings
    folds/<subject>.csv  one per finished fold, written atomically: clip, subject, true, pred, prob_<class>...
                       (and pred_e<k> per epoch with `oracle: true`)
    metrics.json       pooled accuracy / f1_macro (= uf1) / uar, per-fold numbers, `oracle` block if asked
    confusion.png, report.md
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

import pamer
from pamer.config import Config
from pamer.engine.metrics import pooled_metrics
from pamer.preprocess.cache import Cache

__all__ = ["EXECUTORS", "FoldOutput", "RunDirError", "fold_plan", "run_loso"]

EXECUTORS = ("local", "process", "ray")
# where and how fast a fold runs, not what it computes: a run may resume on another device or thread count
EXECUTION_KEYS = ("train.device:", "train.threads:")
ORACLE_NOTE = (
    "best epoch per fold chosen by looking at the test subject: optimistic, for comparison with papers that "
    "do so; not a result"
)


class RunDirError(ValueError):
    """A run directory that cannot be resumed with the given configuration or cache (the message says why)."""


@dataclass
class FoldOutput:
    """What a fold sends back to the driver (plain arrays, so it crosses process and machine boundaries)."""

    subject: str
    test_idx: np.ndarray
    probs: np.ndarray
    epoch_preds: np.ndarray | None
    history: list[tuple[float, float]]
    seconds: float


def fold_plan(subjects: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(subject, train indices, test indices) for each subject, sorted by subject name.

    Each subject's clips are the test set of exactly one fold and in no fold's training set beside.
    """
    subjects_arr = np.asarray(subjects)
    plan = []
    for subject in sorted(set(subjects)):
        test = np.flatnonzero(subjects_arr == subject)
        train = np.flatnonzero(subjects_arr != subject)
        plan.append((subject, train, test))
    return plan


def fold_seed(seed: int, fold: int) -> int:
    """The seed of fold `fold` (its index in the sorted subjects): independent of executor and resume order."""
    return int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])


# ---------------------------------------------------------------- the fold task, shared by every executor

# per process: the prepared inputs of the last cache. The cache itself is kept too, so `is` identifies it: an id()
# alone could be reused by another cache after the first is freed.
_INPUTS: dict[str, Any] = {}


def _fold_task(
    config_dict: dict,
    cache: Cache,
    fold: int,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> FoldOutput:
    import torch

    from pamer.engine.train import device_for, fit, prepare_inputs

    config = Config.from_dict(config_dict)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    device = device_for(config)
    key = (config.train.input_size, config.data.representation, str(device))
    if _INPUTS.get("cache") is not cache or _INPUTS.get("key") != key:
        _INPUTS.clear()
        _INPUTS.update(cache=cache, key=key, inputs=prepare_inputs(cache, config, device))
    subject, train_idx, test_idx = fold_plan(cache.subjects)[fold]
    result = fit(
        config,
        _INPUTS["inputs"],
        np.asarray(cache.labels, dtype=np.int64),
        len(cache.classes),
        train_idx,
        test_idx,
        seed=fold_seed(config.seed, fold),
        on_epoch=on_epoch,
    )
    return FoldOutput(subject, test_idx, result.probs, result.epoch_preds, result.history, result.seconds)


_WORKER: dict[str, Any] = {}


def _worker_init(cache: Cache | str, threads: int) -> None:
    import torch

    from pamer.preprocess.cache import load_cache

    torch.set_num_threads(threads)
    _WORKER["cache"] = load_cache(cache) if isinstance(cache, str) else cache


def _worker_fold(config_dict: dict, fold: int) -> FoldOutput:
    return _fold_task(config_dict, _WORKER["cache"], fold)


# ---------------------------------------------------------------- executors: yield FoldOutputs as folds end


def _run_local(config: Config, cache: Cache, folds: list[int], progress: Any) -> Iterator[FoldOutput]:
    for fold in folds:
        yield _fold_task(config.to_dict(), cache, fold, on_epoch=progress.epoch_callback(fold))


def _run_process(
    config: Config, cache: Cache, cache_source: Cache | str, folds: list[int], workers: int | None
) -> Iterator[FoldOutput]:
    import multiprocessing

    workers = max(1, min(workers or os.cpu_count() or 1, len(folds)))
    threads = config.train.threads or max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: a forked torch with live threads can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(cache_source, threads)
    ) as pool:
        pending = {pool.submit(_worker_fold, config.to_dict(), fold) for fold in folds}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def _run_ray(
    config: Config,
    cache: Cache,
    folds: list[int],
    address: str | None,
    cpus_per_fold: float,
    gpus_per_fold: float,
) -> Iterator[FoldOutput]:
    try:
        import ray
    except ImportError:
        raise RunDirError("executor 'ray' needs Ray: pip install 'pamer[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    task = ray.remote(num_cpus=cpus_per_fold, num_gpus=gpus_per_fold)(_fold_task)
    cache_ref = ray.put(cache)  # one copy in the object store, shared by the folds on a node
    pending = [task.remote(config.to_dict(), cache_ref, fold) for fold in folds]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref)


# ---------------------------------------------------------------- the run directory


def _safe_name(subject: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", subject)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cache_fingerprint(cache: Cache) -> str:
    """A hash of the cache's clips, subjects, labels, classes and pixels (resume refuses a changed cache)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([cache.clips, list(cache.subjects), list(cache.classes)]).encode())
    for array in (cache.labels, cache.onset, cache.apex, cache.flow):
        if array is not None:
            h.update(str(array.shape).encode())
            h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def _fold_frame(output: FoldOutput, cache: Cache) -> pd.DataFrame:
    classes = list(cache.classes)
    idx = output.test_idx
    frame = pd.DataFrame(
        {
            "clip": [cache.clips[i] for i in idx],
            "subject": [cache.subjects[i] for i in idx],
            "true": [classes[i] for i in np.asarray(cache.labels)[idx]],
            "pred": [classes[i] for i in output.probs.argmax(1)],
        }
    )
    for c, name in enumerate(classes):
        frame[f"prob_{name}"] = output.probs[:, c]
    if output.epoch_preds is not None:
        for e, preds in enumerate(output.epoch_preds, start=1):
            frame[f"pred_e{e}"] = [classes[i] for i in preds]
    return frame


def _provenance(config: Config, cache: Cache, executor: str) -> dict:
    import torch

    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    device = config.train.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "pamer_version": pamer.__version__,
        "git": commit,
        "seed": config.seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu",
        "executor": executor,
        "cache": config.data.cache,
        "cache_fingerprint": cache_fingerprint(cache),
        "cache_config": cache.config,
    }


def _open_run_dir(out_dir: Path, config: Config, provenance: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "folds").mkdir(exist_ok=True)
    config_path = out_dir / "config.yaml"
    resolved = config.to_dict()
    if config_path.exists():
        old = yaml.safe_load(config_path.read_text()) or {}
        diff = [d for d in _differences(old, resolved) if not d.startswith(EXECUTION_KEYS)]
        if diff:
            raise RunDirError(
                f"{out_dir} holds a run with another configuration ({'; '.join(diff)}); "
                "use another --out directory or the same configuration to resume"
            )
        prov_path = out_dir / "provenance.json"
        if prov_path.exists():
            old_print = json.loads(prov_path.read_text()).get("cache_fingerprint")
            if old_print and old_print != provenance["cache_fingerprint"]:
                raise RunDirError(
                    f"{out_dir} was run on a cache with other contents than {config.data.cache or 'the given one'}; "
                    "use another --out directory"
                )
    else:
        _write_atomic(config_path, yaml.safe_dump(resolved, sort_keys=False))


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} in the directory, {new!r} now"]


def collect_metrics(out_dir: Path, cache: Cache, config: Config) -> dict:
    """Pooled metrics from the fold CSVs of a finished run (so fresh and resumed runs give the same numbers)."""
    classes = list(cache.classes)
    index = {name: i for i, name in enumerate(classes)}
    frames = [
        pd.read_csv(out_dir / "folds" / f"{_safe_name(s)}.csv", dtype=str, keep_default_na=False)
        for s, _, _ in fold_plan(cache.subjects)
    ]
    table = pd.concat(frames, ignore_index=True)
    y_true = table["true"].map(index).to_numpy()
    y_pred = table["pred"].map(index).to_numpy()
    metrics = {
        "dataset": config.data.dataset or str(cache.config.get("dataset", "")),
        "model": config.model.name,
        "protocol": f"LOSO, {len(frames)} folds, model after the last of {config.train.epochs} epochs",
        "clips": len(table),
        "folds": len(frames),
    }
    metrics.update(pooled_metrics(y_true, y_pred, table["subject"].to_numpy(), classes))
    if config.oracle:
        metrics["oracle"] = _oracle(table, index, classes, config.train.epochs)
    return metrics


def _oracle(table: pd.DataFrame, index: dict[str, int], classes: list[str], epochs: int) -> dict:
    y_true = table["true"].map(index).to_numpy()
    columns = [f"pred_e{e}" for e in range(1, epochs + 1)]
    per_epoch = np.stack([table[c].map(index).to_numpy() for c in columns], axis=1)  # (clips, epochs)
    subjects = table["subject"].to_numpy()
    best_pred = np.empty_like(y_true)
    best_epoch = {}
    for subject in sorted(set(subjects.tolist())):
        mask = subjects == subject
        hits = (per_epoch[mask] == y_true[mask, None]).sum(axis=0)
        e = int(hits.argmax())  # first epoch with the most correct test clips: what the peers' practice picks
        best_epoch[subject] = e + 1
        best_pred[mask] = per_epoch[mask, e]
    block = {"note": ORACLE_NOTE}
    m = pooled_metrics(y_true, best_pred, subjects, classes)
    block.update({k: m[k] for k in ("accuracy", "f1_macro", "uf1", "uar", "per_fold_mean", "confusion")})
    block["best_epoch"] = best_epoch
    return block


# ---------------------------------------------------------------- progress


class _Progress:
    """Rich bars (overall over folds, one per fold over epochs) or, quiet, one log line per finished fold."""

    def __init__(self, total: int, done: int, epochs: int, quiet: bool) -> None:
        self.quiet = quiet
        self.epochs = epochs
        self.bar = None
        if not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
            )
            self.overall = self.bar.add_task("folds", total=total, completed=done)
            self.fold_task = None

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def epoch_callback(self, fold: int) -> Callable[[int, float, float], None] | None:
        if self.bar is None:
            return None
        if self.fold_task is not None:
            self.bar.remove_task(self.fold_task)
        self.fold_task = self.bar.add_task(f"fold {fold + 1}", total=self.epochs)

        def update(epoch: int, loss: float, acc: float) -> None:
            self.bar.update(
                self.fold_task, completed=epoch, description=f"fold {fold + 1} loss {loss:.3f} acc {acc:.3f}"
            )

        return update

    def fold_done(self, output: FoldOutput, accuracy: float) -> None:
        if self.bar is not None:
            self.bar.advance(self.overall)
        else:
            import sys

            print(
                f"fold {output.subject}: {len(output.test_idx)} clips, accuracy {accuracy:.3f}, {output.seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )


# ---------------------------------------------------------------- entry point


def run_loso(
    config: Config,
    out_dir: str | Path,
    executor: str = "local",
    *,
    cache: Cache | None = None,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_fold: float = 1.0,
    gpus_per_fold: float = 0.0,
    quiet: bool = False,
) -> dict:
    """Run (or resume) a LOSO evaluation into `out_dir` and return its metrics.

    Folds already in `out_dir/folds/` are skipped; the pooled numbers are computed from the fold files, so a
    resumed run gives the same metrics as an uninterrupted one. With the same seed on the CPU, every executor
    gives the same predictions (given the same `train.threads`).

    Args:
        config: the run's configuration.
        out_dir: the run directory.
        executor: `local` (in this process), `process` (`workers` processes, CPU threads split between them)
            or `ray` (each fold a task with `cpus_per_fold` CPUs and `gpus_per_fold` GPUs, fractional to
            share a GPU; `address` of an existing cluster, otherwise a local one).
        cache: the cache (default: loaded from `data.cache`).
        quiet: log one line per fold instead of progress bars.

    Raises:
        RunDirError: `out_dir` holds a run with another configuration or cache.
        ValueError: an empty cache, fewer than two subjects, an unknown executor.
    """
    import torch

    from pamer.engine.train import cache_path, check_model, load_cache_for

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    # process workers load the cache from disk themselves rather than receive a pickled copy each
    cache_source: Cache | str = cache if cache is not None else str(cache_path(config))
    cache = load_cache_for(config) if cache is None else cache
    subjects = sorted(set(cache.subjects))
    if len(subjects) < 2:
        raise ValueError(f"LOSO needs at least 2 subjects; cache {config.data.cache or '(in memory)'} has {subjects}")
    check_model(config, len(cache.classes))
    names = [_safe_name(s) for s in subjects]
    if len(set(names)) != len(names):
        raise ValueError(f"subject names collide as file names: {subjects}")
    out_dir = Path(out_dir)
    provenance = _provenance(config, cache, executor)
    _open_run_dir(out_dir, config, provenance)
    plan = fold_plan(cache.subjects)
    todo = [i for i, (s, _, _) in enumerate(plan) if not (out_dir / "folds" / f"{_safe_name(s)}.csv").exists()]
    start = time.perf_counter()
    threads = torch.get_num_threads()  # a fold may set train.threads; the caller's setting comes back after
    try:
        with _Progress(len(plan), len(plan) - len(todo), config.train.epochs, quiet) as progress:
            if not todo:
                outputs: Iterator[FoldOutput] = iter(())
            elif executor == "local":
                outputs = _run_local(config, cache, todo, progress)
            elif executor == "process":
                outputs = _run_process(config, cache, cache_source, todo, workers)
            else:
                outputs = _run_ray(config, cache, todo, address, cpus_per_fold, gpus_per_fold)
            for output in outputs:
                frame = _fold_frame(output, cache)
                _write_atomic(out_dir / "folds" / f"{_safe_name(output.subject)}.csv", frame.to_csv(index=False))
                progress.fold_done(output, float((frame["true"] == frame["pred"]).mean()))
    finally:
        _INPUTS.clear()  # free this run's inputs (the local executor's copy)
        torch.set_num_threads(threads)
    metrics = collect_metrics(out_dir, cache, config)
    _write_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    provenance["seconds_last_invocation"] = round(time.perf_counter() - start, 3)
    provenance["folds_trained_last_invocation"] = len(todo)
    _write_atomic(out_dir / "provenance.json", json.dumps(provenance, indent=2, default=str) + "\n")
    from pamer.report.plots import plot_confusion
    from pamer.report.tables import run_report

    title = f"{metrics['model']} on {metrics['dataset'] or 'unnamed'}: accuracy {metrics['accuracy']:.3f}, "
    title += f"macro-F1 {metrics['f1_macro']:.3f} (LOSO, last epoch)"
    plot_confusion(np.asarray(metrics["confusion"]), metrics["classes"], out_dir / "confusion.png", title=title)
    _write_atomic(out_dir / "report.md", run_report(metrics))
    return metrics
