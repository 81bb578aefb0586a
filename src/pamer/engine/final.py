"""`pamer train`: one network on every clip of a cache, saved as `model.safetensors` + `model.json`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

import pamer
from pamer.checkpoint import (
    MODEL_FILES,
    PREDICT_REPRESENTATIONS,
    CheckpointError,
    load_checkpoint,
    write_checkpoint,
)
from pamer.classic import is_classic
from pamer.config import Config, ConfigError
from pamer.engine.fold import (
    DivergedError,
    EpochCallback,
    check_model,
    compute_dtype,
    dtype_name,
    emulated_bf16_warning,
    fit,
    fold_arguments,
)
from pamer.engine.inputs import device_for, load_cache_for, prepare_inputs
from pamer.engine.rundir import run_stamp
from pamer.engine.threads import torch_threads
from pamer.models import create_model, model_method
from pamer.outputs import write_problem
from pamer.preprocess.cache import Cache

__all__ = ["train_final"]


def train_final(
    config: Config,
    out_dir: str | Path,
    *,
    cache: Cache | None = None,
    on_epoch: EpochCallback | None = None,
    force: bool = False,
) -> Path:
    """Train on every clip of the cache and save `model.safetensors` + `model.json` into `out_dir`.

    `model.json` holds what inference needs: the model name and options, class names, input size,
    normalisation, representation and the cache's preprocessing config; and the dtype training computed in
    (`trained_in`: `train.precision` as `loso` resolves it, bfloat16 autocast or float32; the weights are float32).
    Never pickled. The output folder is checked before training (not after it): an intact model of the same
    configuration and cache (model.json's `config_hash` and `cache_fingerprint`, as a run's fold files record them)
    is reused, so the same command run again trains nothing; another model is refused unless `force`; a folder that
    cannot be written or lacks the space for the weights is refused by name.

    Returns:
        `out_dir`.

    Raises:
        CheckpointError: `out_dir` holds a model of another configuration or cache (without `force`), cannot be
            written or is too full.
        DivergedError: the training loss became NaN or infinite (nothing is written).
    """
    if is_classic(config.model.name):
        raise ConfigError(f"{config.model.name!r} is a classic method (features + SVM): run it with `pamer loso`")
    if config.data.representation not in PREDICT_REPRESENTATIONS:
        raise ConfigError(
            f"data.representation = {config.data.representation!r}: a saved model is for `pamer predict`, which "
            f"computes no flow field from a clip (it reads {' or '.join(PREDICT_REPRESENTATIONS)}); run a flow "
            "network with `pamer loso`"
        )
    if model_method(config.model.name).inputs is not None:
        raise ConfigError(
            f"{config.model.name!r} builds its own inputs (pamer.models.method), which a saved model cannot rebuild "
            "from a user's clip yet: run it with `pamer loso`"
        )
    out_dir = Path(out_dir)
    existing = [name for name in MODEL_FILES if (out_dir / name).exists()]
    cache = load_cache_for(config) if cache is None else cache
    stamp = run_stamp(config, cache)  # the configuration (less device, threads, precision) and the cache's content
    if existing and not force:
        if _trained_as(out_dir, stamp):  # the same command again: its model, checked, is the result
            print(f"pamer train: {out_dir} holds this configuration's model of this cache already; reused "
                  "(--force trains it again)", file=sys.stderr, flush=True)  # fmt: skip
            return out_dir
        raise CheckpointError(
            f"{out_dir} already holds a model ({' and '.join(existing)}) of another configuration or cache; pass "
            "--force to replace it, or give another --out"
        )
    check_model(config, len(cache.classes))
    problem = write_problem(out_dir, create=True)  # after the inputs are checked: a refused run leaves no folder
    if problem is not None:
        raise CheckpointError(f"cannot write the model into {out_dir}: {problem}")
    device = device_for(config)
    needed = _weights_bytes(config, len(cache.classes))
    free = shutil.disk_usage(out_dir).free
    if free < 2 * needed:  # the weights and their temporary copy
        raise CheckpointError(
            f"cannot write the model into {out_dir}: its disk has {free / 2**20:.1f} MiB free, the weights need "
            f"{needed / 2**20:.1f} MiB; free some space or give another --out"
        )
    if warning := emulated_bf16_warning(config.train.precision, device):
        print(f"pamer train: warning: {warning}", file=sys.stderr, flush=True)
    with torch_threads(config.train.threads):
        inputs = prepare_inputs(cache, config, device)
        labels = np.asarray(cache.labels, dtype=np.int64)
        every = np.arange(len(cache))
        try:
            result = fit(
                config,
                inputs,
                labels,
                len(cache.classes),
                every,
                seed=config.seed,
                on_epoch=on_epoch,
                fold_args=fold_arguments(config, cache, every),
            )
        except DivergedError as err:
            raise DivergedError(f"pamer train: {err}; no model written") from None
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    card = {
        "model": config.model.name,
        "model_args": config.model.args,
        "num_classes": len(cache.classes),
        "classes": list(cache.classes),
        "input_size": config.train.input_size,
        "mean": result.mean,
        "std": result.std,
        "representation": config.data.representation,
        "preprocess": cache.config,
        "pamer_version": pamer.__version__,
        "dataset": config.data.dataset or cache.config.get("dataset", ""),
        "trained_on": {"clips": len(cache), "subjects": len(set(cache.subjects))},
        "config": config.to_dict(),
        **stamp,  # what a rerun of the same command compares (`_trained_as`)
        "trained_in": dtype_name(compute_dtype(config.train.precision, device)),  # train.precision, resolved
        "history": [{"loss": loss, "accuracy": acc} for loss, acc in result.history],
    }
    return write_checkpoint(out_dir, state, card)


def _trained_as(out_dir: Path, stamp: dict[str, str]) -> bool:
    """Whether `out_dir` holds an intact model (`load_checkpoint`'s checks) whose model.json records `stamp`: the
    config hash and cache fingerprint `train_final` writes (a model of an older pamer has neither)."""
    try:
        load_checkpoint(out_dir)
        recorded = json.loads((out_dir / "model.json").read_text())
    except (CheckpointError, OSError, ValueError):
        return False
    return isinstance(recorded, dict) and all(recorded.get(key) == value for key, value in stamp.items())


def _weights_bytes(config: Config, num_classes: int) -> int:
    model = create_model(config.model.name, num_classes=num_classes, **config.model.args)
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())
