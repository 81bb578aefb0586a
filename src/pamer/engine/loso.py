"""Leave-one-subject-out evaluation: the fold plan, the loop over unfinished folds, pooled metrics.

A run reads top to bottom in `run_loso`: load the cache, open (or resume) the run directory (`rundir`), run the
unfinished folds on an executor (`executors`), each writing its fold file as it ends, then pool the fold files
into `metrics.json`, `confusion.png` and `report.md`.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import closing, suppress
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from pamer.classic import describe_fit, is_classic
from pamer.config import Config, ConfigError
from pamer.data.labels import DEFAULT_PROTOCOL, get_protocol
from pamer.engine.executors import (
    ExecutorChoice,
    adopt,
    check_executor,
    choose_executor,
    clear_inputs,
    execution_conflicts,
    run_folds,
)
from pamer.engine.fold import check_model, emulated_bf16_warning, fold_plan
from pamer.engine.inputs import cache_path, device_for, load_cache_for
from pamer.engine.metrics import confusion_matrix, oracle_metrics, pooled_metrics, scores
from pamer.engine.progress import LosoProgress
from pamer.engine.rundir import (
    EXECUTION_COLUMNS,
    EXECUTION_RECORD,
    RunDirError,
    check_execution,
    execution_of,
    fold_file,
    fold_frame,
    hold_run_dir,
    open_run_dir,
    provenance,
    read_fold,
    read_folds,
    recorded_execution,
    refuse_other_execution,
    run_stamp,
    safe_name,
    write_fold,
)
from pamer.outputs import os_error_text, write_atomic
from pamer.preprocess.cache import Cache, CacheError
from pamer.report.plots import plot_confusion
from pamer.report.tables import run_report

__all__ = [
    "ORACLE_NOTE",
    "RunDirError",
    "collect_metrics",
    "decide_execution",
    "fold_plan",
    "label_protocol",
    "run_loso",
]

ORACLE_NOTE = (
    "best epoch per fold chosen by looking at the test subject: optimistic, for comparison with papers that "
    "do so; not a result"
)


def run_loso(
    config: Config,
    out_dir: str | Path,
    executor: str = "auto",
    *,
    cache: Cache | None = None,
    workers: int | None = None,
    stack: int | None = None,
    address: str | None = None,
    cpus_per_fold: float = 1.0,
    gpus_per_fold: float = 0.0,
    quiet: bool = False,
    allow_mixed_devices: bool = False,
) -> dict:
    """Run (or resume) a LOSO evaluation into `out_dir` and return its metrics.

    Folds already in `out_dir/folds/` are skipped; the pooled numbers are computed from the fold files, so a
    resumed run gives the same metrics as an uninterrupted one. With the same seed on the CPU, every executor
    gives the same predictions (given the same `train.threads`).

    How the folds execute (device, dtype, threads per fold, executor, processes, stack) is decided once, when the
    run directory is created, from the whole fold plan, and recorded in provenance.json (`executor_choice`); a
    later invocation adopts the record (`decide_execution`), so a resume never depends on how many folds are left.

    Args:
        config: the run's configuration.
        out_dir: the run directory.
        executor: `auto` (the default: chosen from the network's cost, the cores and the device; see
            `executors.choose_executor`; the choice is printed on stderr and kept in provenance.json),
            `local` (in this process), `process` (`workers` processes, CPU threads split between them),
            `ray` (each fold a task with `cpus_per_fold` CPUs and `gpus_per_fold` GPUs, fractional to
            share a GPU; `address` of an existing cluster, otherwise a local one) or `stacked` (`stack` folds
            trained at once as one model, default as many as the free memory holds; `engine/stacked.py`).
        cache: the cache (default: loaded from `data.cache`).
        quiet: log one line per fold instead of progress bars.
        allow_mixed_devices: let a resumed run's folds differ in device, dtype or thread count (each fold file
            records its own): an explicit option that differs from the run's record then wins for this invocation;
            otherwise such a resume is refused, naming the options that match the record.

    Raises:
        RunDirError: `out_dir` cannot be written, holds a run with another configuration or cache, a fold file
            that is not what the fold plan and run say, folds that would mix devices, or explicit options that
            differ from the run's recorded execution, or subjects whose names collide as file names.
        CacheError: an empty cache, fewer than two subjects.
        ExecutorError: an unknown executor.
    """
    check_executor(executor)
    # process workers load the cache from disk themselves rather than receive a pickled copy each
    cache_source: Cache | str = cache if cache is not None else str(cache_path(config))
    cache = load_cache_for(config) if cache is None else cache
    subjects = sorted(set(cache.subjects))
    if len(subjects) < 2:
        raise CacheError(f"LOSO needs at least 2 subjects; cache {config.data.cache or '(in memory)'} has {subjects}")
    check_model(config, len(cache.classes), cache)
    device = device_for(config)  # a device that is not here is refused before anything is written
    names = [safe_name(s) for s in subjects]
    if len(set(names)) != len(names):
        raise RunDirError(f"subject names collide as file names: {subjects}")
    out_dir = Path(out_dir)
    run_provenance = provenance(config, cache, executor, device)
    stamp = {k: run_provenance[k] for k in ("cache_fingerprint", "config_hash")}
    with hold_run_dir(out_dir):  # one invocation at a time: a second would train the same folds again
        open_run_dir(out_dir, config, run_provenance)
        plan = fold_plan(cache.subjects)
        epochs = config.train.epochs if config.oracle else None
        # the folds already there are checked before any new one trains: same cache, config and plan, one device
        done = [
            read_fold(out_dir, s, test, cache, stamp, epochs) for s, _, test in plan if fold_file(out_dir, s).exists()
        ]
        finished = pd.concat(done, ignore_index=True) if done else pd.DataFrame(columns=list(EXECUTION_COLUMNS))
        todo = [i for i, (s, _, _) in enumerate(plan) if not fold_file(out_dir, s).exists()]
        start = time.perf_counter()
        # the record binds once a fold has trained under it; before that no fold could mix with another, and a run that
        # failed at its start (`--executor ray` without Ray, a cluster not reached) must not stay bound to what failed
        record = recorded_execution(out_dir) if done else None
        choice = decide_execution(
            out_dir,
            record,
            executor,
            config,
            len(cache.classes),
            len(plan),
            workers=workers,
            stack=stack,
            cpus_per_fold=cpus_per_fold,
            allow_mixed_devices=allow_mixed_devices or not todo,  # nothing left to train: nothing to mix
        )
        config = adopt(choice, config)
        try:
            device = device_for(config)
        except ConfigError:
            raise RunDirError(
                f"{out_dir} was started on {choice.device}, which is not here; resume it on such a machine, use "
                "another --out directory, or pass --allow-mixed-devices --set train.device=cpu to train its other "
                "folds here"
            ) from None
        if todo:
            check_execution(out_dir, finished, choice.execution(), allow_mixed_devices)
        # provenance.json keeps the execution the run started with; a mixing invocation's own is named beside it
        run_provenance.update(record or {"executor": executor, EXECUTION_RECORD: choice.as_dict()})
        if run_provenance[EXECUTION_RECORD] != choice.as_dict():
            run_provenance["executor_choice_last_invocation"] = choice.as_dict()
        if record is None:  # recorded before the first fold trains, so that a killed run resumes as it began
            write_atomic(
                out_dir / "provenance.json", json.dumps(run_provenance, indent=2, default=str) + "\n", RunDirError
            )
        if todo:
            resumed = "" if record is None else "; as the run was started (provenance.json)"
            running = replace(choice, workers=min(choice.workers, len(todo)))  # the processes the folds left start
            print(f"pamer loso: {running.describe()}{resumed}", file=sys.stderr, flush=True)
            warning = "" if is_classic(config.model.name) else emulated_bf16_warning(config.train.precision, device)
            if warning:
                print(f"pamer loso: warning: {warning}", file=sys.stderr, flush=True)
        try:
            with LosoProgress(len(plan), len(plan) - len(todo), config.train.epochs, quiet) as progress:
                outputs = run_folds(
                    choice,
                    config,
                    cache,
                    todo,
                    progress,
                    cache_source=cache_source,
                    address=address,
                    cpus_per_fold=cpus_per_fold,
                    gpus_per_fold=gpus_per_fold,
                )
                with closing(outputs):  # closed on an error too: worker processes stop at once
                    for output in outputs:
                        check_execution(out_dir, finished, execution_of(output), allow_mixed_devices)
                        frame = fold_frame(output, cache, stamp)
                        write_fold(out_dir, output.subject, frame)
                        finished = pd.concat([finished, frame[list(EXECUTION_COLUMNS)]], ignore_index=True)
                        progress.fold_done(output, float((frame["true"] == frame["pred"]).mean()))
        finally:
            clear_inputs()
        metrics = collect_metrics(out_dir, cache, config, stamp=stamp, allow_mixed_devices=allow_mixed_devices)
        write_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n", RunDirError)
        run_provenance["seconds_last_invocation"] = round(time.perf_counter() - start, 3)
        run_provenance["folds_trained_last_invocation"] = len(todo)
        write_atomic(out_dir / "provenance.json", json.dumps(run_provenance, indent=2, default=str) + "\n", RunDirError)
        title = f"{metrics['model']} on {metrics['dataset'] or 'unnamed'}: accuracy {metrics['accuracy']:.3f}, "
        title += f"macro-F1 {metrics['f1_macro']:.3f} (LOSO, last epoch)"
        picture = out_dir / "confusion.png"
        try:
            plot_confusion(np.asarray(metrics["confusion"]), metrics["classes"], picture, title=title)
        except OSError as error:  # the disk filled up since the folds were written: no half picture stays
            with suppress(OSError):
                picture.unlink()
            raise RunDirError(f"cannot write {picture}: {os_error_text(error)}") from None
        write_atomic(out_dir / "report.md", run_report(metrics), RunDirError)
        return metrics


def decide_execution(
    out_dir: Path,
    record: dict | None,
    executor: str,
    config: Config,
    num_classes: int,
    n_folds: int,
    *,
    workers: int | None = None,
    stack: int | None = None,
    cpus_per_fold: float = 1.0,
    allow_mixed_devices: bool = False,
) -> ExecutorChoice:
    """How this invocation's folds run: the run's recorded execution (`rundir.recorded_execution`) where there is
    one, else a new decision over all `n_folds` folds of the plan (`executors.choose_executor`).

    An explicit option that differs from the record (`executors.execution_conflicts`) is refused, unless
    `allow_mixed_devices`: then this invocation decides for itself. `--workers` only schedules folds: it may differ.

    Raises:
        RunDirError: explicit options that differ from the record, naming the ones that match it.
    """
    recorded = None if record is None else ExecutorChoice.from_record(record[EXECUTION_RECORD])
    decide = dict(workers=workers, stack=stack, cpus_per_fold=cpus_per_fold)
    if recorded is None:
        return choose_executor(executor, config, num_classes, n_folds, **decide)
    conflicts = execution_conflicts(recorded, executor, config, stack=stack)
    if not conflicts:
        return recorded if workers is None or recorded.executor != "process" else replace(recorded, workers=workers)
    if not allow_mixed_devices:
        refuse_other_execution(out_dir, recorded.describe(), conflicts)
    return choose_executor(executor, config, num_classes, n_folds, **decide)


def collect_metrics(
    out_dir: Path,
    cache: Cache,
    config: Config,
    *,
    stamp: dict[str, str] | None = None,
    allow_mixed_devices: bool = False,
) -> dict:
    """Pooled metrics from the fold files of a finished run (so fresh and resumed runs give the same numbers).

    Every fold file is checked first (`rundir.read_folds`): against the fold plan, the cache's labels and `stamp`
    (default: the `run_stamp` of `config` and `cache`). Besides the pooled numbers, `label_protocol` records the
    labels the run was scored on (the cache's reader name, protocol name and classes: what reports place a run
    by), and where the fold files have a `dataset` column (a cache mixing datasets) `by_dataset` holds each
    dataset's own pooled numbers (MEGC2019's per-part UF1 and UAR).
    """
    classes = list(cache.classes)
    index = {name: i for i, name in enumerate(classes)}
    subjects = [s for s, _, _ in fold_plan(cache.subjects)]
    stamp = run_stamp(config, cache) if stamp is None else stamp
    epochs = config.train.epochs if config.oracle else None
    table = read_folds(out_dir, cache, stamp, epochs, allow_mixed=allow_mixed_devices)
    y_true = table["true"].map(index).to_numpy()
    y_pred = table["pred"].map(index).to_numpy()
    fitted = f"model after the last of {config.train.epochs} epochs"
    if is_classic(config.model.name):
        fitted = describe_fit(config)
    metrics = {
        "dataset": config.data.dataset or str(cache.config.get("dataset", "")),
        "model": config.model.name,
        "protocol": f"LOSO, {len(subjects)} folds, {fitted}",
        "label_protocol": label_protocol(cache),
        "clips": len(table),
        "folds": len(subjects),
    }
    metrics.update(pooled_metrics(y_true, y_pred, table["subject"].to_numpy(), classes))
    if "dataset" in table.columns:
        metrics["by_dataset"] = {}
        for name in sorted(set(table["dataset"])):
            mask = (table["dataset"] == name).to_numpy()
            part = scores(confusion_matrix(y_true[mask], y_pred[mask], len(classes)))
            metrics["by_dataset"][name] = {"clips": int(mask.sum()), **part}
    if config.oracle:
        metrics["oracle"] = _oracle(table, index, classes, config.train.epochs)
    return metrics


def label_protocol(cache: Cache) -> dict:
    """The labels a cache holds: `{"dataset": reader name, "protocol": protocol name, "classes": [...]}`.

    A cache prepared without a protocol name was read with its reader's default, which is named here when
    the cache's classes are that default's; a cache of an unknown dataset or with other classes keeps None.
    The dataset is the cache's (its reader's name), never the free-form `data.dataset` label.
    """
    dataset = cache.config.get("dataset") or None
    name = cache.config.get("protocol")
    if name is None and dataset in DEFAULT_PROTOCOL:
        default = get_protocol(dataset)
        if set(default.classes) == set(cache.classes):
            name = default.name
    return {"dataset": dataset, "protocol": name, "classes": list(cache.classes)}


def _oracle(table: pd.DataFrame, index: dict[str, int], classes: list[str], epochs: int) -> dict:
    y_true = table["true"].map(index).to_numpy()
    per_epoch = np.stack([table[f"pred_e{e}"].map(index).to_numpy() for e in range(1, epochs + 1)], axis=1)
    return {"note": ORACLE_NOTE, **oracle_metrics(y_true, per_epoch, table["subject"].to_numpy(), classes)}
