"""Where folds run: in this process (`local`), in worker processes (`process`) or as Ray tasks (`ray`).

Every executor runs the same fold task (`run_fold`) and yields `FoldOutput`s as folds end, in any order; with the
same seed on the CPU (and the same `train.threads`) all of them give the same predictions.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

import torch

from pamer.classic import is_classic
from pamer.config import Config
from pamer.engine.fold import FoldOutput, train_fold
from pamer.engine.inputs import device_for, prepare_inputs
from pamer.engine.progress import LosoProgress
from pamer.preprocess.cache import Cache, load_cache

__all__ = ["EXECUTORS", "ExecutorError", "clear_inputs", "run_fold", "run_folds"]

EXECUTORS = ("local", "process", "ray")


class ExecutorError(ValueError):
    """An executor that cannot run here (the message says what to install or change)."""


# per process: the prepared inputs of the last cache. The cache itself is kept too, so `is` identifies it: an id()
# alone could be reused by another cache after the first is freed.
_INPUTS: dict[str, Any] = {}


def run_fold(config_dict: dict, cache: Cache, fold: int, on_epoch=None) -> FoldOutput:
    """The fold task of every executor: set threads, make (or reuse) this process's inputs, train fold `fold`."""
    config = Config.from_dict(config_dict)
    if is_classic(config.model.name):  # features + SVM: no network inputs, no device, no epochs
        from pamer.engine.classic import classic_fold  # scikit-learn loads (~1 s) for classic runs only

        return classic_fold(config, cache, fold)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    device = device_for(config)
    key = (config.train.input_size, config.data.representation, str(device))
    if _INPUTS.get("cache") is not cache or _INPUTS.get("key") != key:
        _INPUTS.clear()
        _INPUTS.update(cache=cache, key=key, inputs=prepare_inputs(cache, config, device))
    return train_fold(config, cache, _INPUTS["inputs"], fold, on_epoch=on_epoch)


def clear_inputs() -> None:
    """Free this process's prepared inputs (the local executor's copy) at the end of a run."""
    _INPUTS.clear()


def run_folds(
    executor: str,
    config: Config,
    cache: Cache,
    folds: list[int],
    progress: LosoProgress,
    *,
    cache_source: Cache | str,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_fold: float = 1.0,
    gpus_per_fold: float = 0.0,
) -> Iterator[FoldOutput]:
    """Run `folds` (indices into the cache's fold plan) on `executor`, yielding each fold's output as it ends.

    Args:
        cache_source: what `process` workers load the cache from (a path, so they do not each receive a pickled
            copy; or the in-memory cache).
        workers: processes of the `process` executor (default: one per core, at most one per fold).
        address, cpus_per_fold, gpus_per_fold: the `ray` executor's cluster and per-task resources.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    if not folds:
        return iter(())
    if executor == "local":
        return _run_local(config, cache, folds, progress)
    if executor == "process":
        return _run_process(config, cache_source, folds, workers)
    return _run_ray(config, cache, folds, address, cpus_per_fold, gpus_per_fold)


def _run_local(config: Config, cache: Cache, folds: list[int], progress: LosoProgress) -> Iterator[FoldOutput]:
    for fold in folds:
        yield run_fold(config.to_dict(), cache, fold, on_epoch=progress.epoch_callback(fold))


_WORKER: dict[str, Any] = {}


def _worker_init(cache: Cache | str, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["cache"] = load_cache(cache) if isinstance(cache, str) else cache


def _worker_fold(config_dict: dict, fold: int) -> FoldOutput:
    return run_fold(config_dict, _WORKER["cache"], fold)


def _run_process(
    config: Config, cache_source: Cache | str, folds: list[int], workers: int | None
) -> Iterator[FoldOutput]:
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
        import ray  # optional extra pamer[ray]
    except ImportError:
        raise ExecutorError("executor 'ray' needs Ray: pip install 'pamer[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    task = ray.remote(num_cpus=cpus_per_fold, num_gpus=gpus_per_fold)(run_fold)
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
