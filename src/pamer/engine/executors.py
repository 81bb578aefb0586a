"""Where folds run: in this process (`local`), in worker processes (`process`), as Ray tasks (`ray`), K at a time as
one stacked model (`stacked`), or whichever of these suits the network and the machine (`auto`, the default).

`local`, `process` and `ray` run the same fold task (`run_fold`) and yield `FoldOutput`s as folds end, in any order;
with the same seed on the CPU (and the same `train.threads`) all of them give the same predictions. `stacked` trains
with the same semantics (`engine/stacked.py`): the same predictions to floating-point rounding, not bit for bit.
`auto` resolves to one of them when the run directory is created (`choose_executor`) and says which and why.

A run executes one way: `choose_executor` decides device, dtype, threads per fold, executor, processes and stack
once, from the whole fold plan (never from how many folds are left), and the run directory records the decision
(`provenance.json`, `executor_choice`). A later invocation adopts the record (`ExecutorChoice.from_record`), so a
resumed run trains its remaining folds exactly as its first ones; an explicit option that differs from the record is
named by `execution_conflicts`. The executors then only schedule folds: every fold task runs on the recorded threads
(`threads.torch_threads`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from pamer.classic import is_classic
from pamer.config import Config
from pamer.engine.fold import FoldOutput, compute_dtype, device_name, dtype_name, train_fold
from pamer.engine.inputs import Inputs, device_for, network_inputs
from pamer.engine.progress import LosoProgress
from pamer.engine.stacked import StackedError, check_stackable, stack_size, train_folds_stacked
from pamer.engine.threads import torch_threads
from pamer.errors import PamerError
from pamer.models import count_flops, create_model, model_method
from pamer.preprocess.cache import Cache, load_cache
from pamer.workers import WorkerPool

__all__ = [
    "EXECUTORS",
    "ExecutorChoice",
    "ExecutorError",
    "adopt",
    "available_cores",
    "check_executor",
    "choose_executor",
    "clear_inputs",
    "execution_dtype",
    "execution_conflicts",
    "run_fold",
    "run_folds",
]

EXECUTORS = ("auto", "local", "process", "ray", "stacked")

# `auto` on a CPU: a training step whose forward pass costs less than this (at the run's input size and batch) has
# operations too small for intra-op threads to pay: STSTNet's recipe costs about 0.2 GFLOP a step, and for such
# networks one fold per core trains about twice as fast as one fold on every core (issue 12's measurement on 2
# cores). Above it (pamnet at 112 px: 38 GFLOP a step) one fold on all threads scales, and keeps one fold's memory.
SMALL_STEP_FLOPS = 2e9
IN_CHANS = 3  # prepare_inputs: every representation is a 3-channel image


class ExecutorError(PamerError):
    """An executor that cannot run here (the message says what to install or change)."""


def check_executor(executor: str) -> None:
    """Refuse an executor name that is not one of `EXECUTORS` (an `ExecutorError` listing them)."""
    if executor not in EXECUTORS:
        raise ExecutorError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")


@dataclass
class ExecutorChoice:
    """How a run executes: device and dtype, threads per fold, the executor, its processes and folds per stack.

    Attributes:
        executor: local, process, ray or stacked (never auto).
        workers: processes of `process` (0 otherwise); they only schedule folds.
        threads: torch threads of each fold, as its fold file records them (0 for a classic method, whose numpy
            threads are not torch's).
        stack: folds trained at once by `stacked` (0 otherwise).
        device: where the folds run, as fold files record it (`fold.device_name`: `cpu`, `cuda <GPU name>`).
        dtype: what the network computes in, as fold files record it (`execution_dtype`).
        reason: why `auto` chose this (empty for an explicit executor).
    """

    executor: str
    workers: int = 0
    threads: int = 0
    stack: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    reason: str = ""

    def describe(self) -> str:
        """One line: the choice and, for `auto`, why."""
        threads = f"{self.threads} threads" if self.threads else "numpy's threads"  # 0: a classic method's
        what = {
            "local": f"local, one fold at a time on {threads}",
            "process": f"process, {self.workers} worker processes x {threads}",
            "stacked": f"stacked, {self.stack} folds at once on {threads}",
            "ray": f"ray, {threads} a fold",
        }[self.executor]
        return f"executor {what}, {self.device} {self.dtype}" + (f" ({self.reason})" if self.reason else "")

    def execution(self) -> dict[str, str]:
        """What every fold file of the run must record: device, dtype and threads (as text, as `rundir` reads them)."""
        return {"device": self.device, "dtype": self.dtype, "threads": str(self.threads)}

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> ExecutorChoice | None:
        """The choice recorded in a run directory, or None for a record without all of it (an older pamer's)."""
        try:
            choice = cls(**{f.name: record[f.name] for f in fields(cls)})
        except (KeyError, TypeError):
            return None
        valid = choice.executor in EXECUTORS[1:] and all(
            isinstance(getattr(choice, name), int) and getattr(choice, name) >= 0
            for name in ("workers", "threads", "stack")
        )
        return choice if valid and isinstance(choice.device, str) and isinstance(choice.dtype, str) else None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's share; else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# per process: the prepared inputs of the last cache. The cache itself is kept too, so `is` identifies it: an id()
# alone could be reused by another cache after the first is freed.
_INPUTS: dict[str, Any] = {}


def run_fold(config_dict: dict, cache: Cache, fold: int, on_epoch=None) -> FoldOutput:
    """The fold task of local, process and ray: on the run's threads, make (or reuse) this process's inputs and
    train `fold`."""
    config = Config.from_dict(config_dict)
    if is_classic(config.model.name):  # features + SVM: no network inputs, no device, no epochs
        from pamer.engine.classic import classic_fold  # scikit-learn loads (~1 s) for classic runs only

        return classic_fold(config, cache, fold)
    with torch_threads(config.train.threads):
        return train_fold(config, cache, inputs_for(config, cache), fold, on_epoch=on_epoch)


def inputs_for(config: Config, cache: Cache) -> Inputs:
    """This process's network inputs of `cache` on the configured device: made once, reused by later folds."""
    device = device_for(config)
    key = (config.train.input_size, config.data.representation, config.model.name, str(device))
    if _INPUTS.get("cache") is not cache or _INPUTS.get("key") != key:
        _INPUTS.clear()
        _INPUTS.update(cache=cache, key=key, inputs=network_inputs(cache, config, device))
    return _INPUTS["inputs"]


def clear_inputs() -> None:
    """Free this process's prepared inputs (the local executor's copy) at the end of a run."""
    _INPUTS.clear()


def choose_executor(
    executor: str,
    config: Config,
    num_classes: int,
    n_folds: int,
    *,
    workers: int | None = None,
    stack: int | None = None,
    cpus_per_fold: float = 1.0,
) -> ExecutorChoice:
    """Decide how a run executes: `executor` (`auto` included) resolved, with device, dtype and threads per fold.

    `n_folds` is the run's whole fold plan, never the folds left to train, so that a run decides once and its resumed
    folds run as its first ones did. Threads are always a number: `train.threads`, else for `process` the cores split
    between its processes, for `ray` the task's `cpus_per_fold`, for `local` and `stacked` torch's default.

    `auto`: CUDA (by `train.device`) -> `stacked`, as many folds at once as the free memory holds; on a CPU, a
    network whose training step's forward pass costs under `SMALL_STEP_FLOPS` -> `process` with one fold per core;
    a larger one -> `local` on all cores. An explicit `train.threads` is kept (processes = cores / threads), so
    predictions match any executor run with the same threads. A network the stack cannot train (a random layer it
    cannot reproduce) falls back to `local`.

    Raises:
        ExecutorError: an unknown executor.
    """
    check_executor(executor)
    threads = config.train.threads
    if is_classic(config.model.name):  # features + SVM in numpy float64: no device, no torch threads recorded
        if executor == "stacked":
            raise ExecutorError(
                f"{config.model.name!r} is a classic method (features + SVM): there is no network to stack; "
                "use --executor local, process or auto"
            )
        choice = _resolve(executor, config, num_classes, n_folds, workers, stack, cpus_per_fold)
        return replace(choice, threads=0, device="cpu", dtype="float64")  # see `engine.classic.classic_fold`
    device = device_for(config)
    choice = _resolve(executor, config, num_classes, n_folds, workers, stack, cpus_per_fold)
    return replace(
        choice,
        threads=choice.threads or threads or torch.get_num_threads(),
        device=device_name(device),
        dtype=execution_dtype(config, device),
    )


def _resolve(
    executor: str,
    config: Config,
    num_classes: int,
    n_folds: int,
    workers: int | None,
    stack: int | None,
    cpus_per_fold: float,
) -> ExecutorChoice:
    threads = config.train.threads
    cores = available_cores()
    if is_classic(config.model.name) and executor == "auto":  # auto computes the features once, here
        return ExecutorChoice("local", reason="classic method: features once, in this process")
    if executor == "local":
        return ExecutorChoice("local", threads=threads)
    if executor == "process":
        n = max(1, min(workers or cores, n_folds))
        return ExecutorChoice("process", workers=n, threads=threads or max(1, cores // n))
    if executor == "ray":
        return ExecutorChoice("ray", threads=threads or max(1, round(cpus_per_fold)))
    device = device_for(config)
    if executor == "stacked":
        method = model_method(config.model.name)
        if method.declared:
            raise ExecutorError(
                f"model {config.model.name!r} declares {method.what()}, which the stacked executor does not train; "
                "use --executor local, process or auto"
            )
        k = stack or stack_size(config, device, IN_CHANS, num_classes, max(n_folds, 1))
        return ExecutorChoice("stacked", threads=threads, stack=k)
    if device.type == "cuda":
        with torch.device("meta"):
            model = create_model(config.model.name, num_classes=num_classes, **config.model.args)
        try:
            check_stackable(model, config.model.name)
        except StackedError as err:
            return ExecutorChoice("local", threads=threads, reason=f"CUDA, but the stack cannot train it: {err}")
        k = stack or stack_size(config, device, IN_CHANS, num_classes, max(n_folds, 1))
        return ExecutorChoice("stacked", threads=threads, stack=k, reason=f"CUDA; {n_folds} folds to train")
    try:
        flops = count_flops(
            config.model.name,
            config.train.input_size,
            batch=config.train.batch_size,
            num_classes=num_classes,
            **config.model.args,
        )
    except (RuntimeError, NotImplementedError) as err:  # a network the meta device cannot run: cost unknown
        return ExecutorChoice("local", threads=threads or cores, reason=f"cost not countable ({err}); all threads")
    cost = f"forward pass {flops / 1e9:.2g} GFLOP a step at {config.train.input_size} px, {cores} cores"
    if flops < SMALL_STEP_FLOPS and n_folds > 1 and cores > 1:
        per_fold = threads or 1
        n = max(1, min(workers or cores // per_fold, n_folds))
        return ExecutorChoice(
            "process", workers=n, threads=per_fold, reason=f"small network: {cost}; one fold per core"
        )
    return ExecutorChoice("local", threads=threads or cores, reason=f"{cost}; all threads on one fold")


def execution_conflicts(
    record: ExecutorChoice, executor: str, config: Config, *, stack: int | None = None
) -> list[tuple[str, str]]:
    """What this invocation asks explicitly that differs from a run's recorded execution.

    Only explicit choices count (`auto`, `train.threads: 0`, `train.device: auto` and no `--stack` adopt the
    record); `--workers` only schedules folds and never conflicts.

    Returns:
        (what was asked, the option that matches the record) for each conflict.
    """
    conflicts = []
    if executor != "auto" and executor != record.executor:
        conflicts.append((f"--executor {executor}", f"--executor {record.executor}"))
    if config.train.threads and config.train.threads != record.threads and not is_classic(config.model.name):
        conflicts.append((f"train.threads={config.train.threads}", f"--set train.threads={record.threads}"))
    if stack is not None and record.executor == "stacked" and stack != record.stack:
        conflicts.append((f"--stack {stack}", f"--stack {record.stack}"))
    if config.train.device != "auto" and not is_classic(config.model.name):
        device = device_for(config)
        name, dtype = device_name(device), execution_dtype(config, device)
        if (name, dtype) != (record.device, record.dtype):
            conflicts.append(
                (f"train.device={config.train.device} ({name} {dtype})", f"--set train.device={_device_option(record)}")
            )
    return conflicts


def execution_dtype(config: Config, device: torch.device) -> str:
    """The dtype folds of `config` compute in on `device`, as their fold files record it: decided by
    `fold.compute_dtype` (from `train.precision`), the one function that decides it."""
    return dtype_name(compute_dtype(config.train.precision, device))


def _device_option(record: ExecutorChoice) -> str:
    """The `train.device` value that gives the recorded device (`cuda <name>` -> cuda)."""
    return record.device.split()[0]


def adopt(record: ExecutorChoice, config: Config) -> Config:
    """`config` with the device of `record` where `train.device` is `auto`, so a resumed run trains where it began
    (a machine without it fails before training, instead of training folds that would be refused)."""
    if config.train.device != "auto" or is_classic(config.model.name):
        return config
    values = config.to_dict()
    return Config.from_dict({**values, "train": {**values["train"], "device": _device_option(record)}})


def run_folds(
    choice: ExecutorChoice | str,
    config: Config,
    cache: Cache,
    folds: list[int],
    progress: LosoProgress,
    *,
    cache_source: Cache | str,
    address: str | None = None,
    cpus_per_fold: float = 1.0,
    gpus_per_fold: float = 0.0,
) -> Iterator[FoldOutput]:
    """Run `folds` (indices into the cache's fold plan) as `choice` says, yielding each fold's output as it ends.

    Args:
        choice: from `choose_executor` (or an executor's name, resolved here with its defaults).
        cache_source: what `process` workers load the cache from (a path, so they do not each receive a pickled
            copy; or the in-memory cache).
        address, cpus_per_fold, gpus_per_fold: the `ray` executor's cluster and per-task resources.
    """
    if isinstance(choice, str):
        choice = choose_executor(choice, config, len(cache.classes), len(folds), cpus_per_fold=cpus_per_fold)
    if not folds:
        return _run_local(config, cache, [], progress)
    if choice.threads != config.train.threads:  # the decided threads travel with the config to every fold task
        values = config.to_dict()
        config = Config.from_dict({**values, "train": {**values["train"], "threads": choice.threads}})
    if choice.executor == "local":
        return _run_local(config, cache, folds, progress)
    if choice.executor == "process":
        return _run_process(config, cache_source, folds, choice.workers)
    if choice.executor == "stacked":
        return _run_stacked(config, cache, folds, progress, choice.stack)
    return _run_ray(config, cache, folds, address, cpus_per_fold, gpus_per_fold)


def _run_local(config: Config, cache: Cache, folds: list[int], progress: LosoProgress) -> Iterator[FoldOutput]:
    for fold in folds:
        yield run_fold(config.to_dict(), cache, fold, on_epoch=progress.epoch_callback(fold))


_WORKER: dict[str, Any] = {}


def _worker_init(cache: Cache | str, threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
    _WORKER["cache"] = load_cache(cache) if isinstance(cache, str) else cache


def _worker_fold(config_dict: dict, fold: int) -> FoldOutput:
    return run_fold(config_dict, _WORKER["cache"], fold)


def _run_stacked(
    config: Config, cache: Cache, folds: list[int], progress: LosoProgress, stack: int
) -> Iterator[FoldOutput]:
    with torch_threads(config.train.threads):
        inputs = inputs_for(config, cache)
        for begin in range(0, len(folds), stack):
            group = folds[begin : begin + stack]
            yield from train_folds_stacked(config, cache, inputs, group, on_epoch=progress.stack_callback(group))


def _run_process(config: Config, cache_source: Cache | str, folds: list[int], workers: int) -> Iterator[FoldOutput]:
    # the pool only schedules: each fold sets the run's threads itself (config.train.threads, from the decision)
    pool = WorkerPool(min(workers, len(folds)), _worker_init, (cache_source, config.train.threads))
    with pool:
        yield from pool.run(_worker_fold, [(config.to_dict(), fold) for fold in folds])


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
