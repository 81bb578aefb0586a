"""`pamer train`: one network on every clip of a cache, saved as `model.safetensors` + `model.json`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import pamer
from pamer.config import Config
from pamer.engine.fold import EpochCallback, check_model, fit
from pamer.engine.inputs import device_for, load_cache_for, prepare_inputs
from pamer.preprocess.cache import Cache

__all__ = ["train_final"]


def train_final(
    config: Config, out_dir: str | Path, *, cache: Cache | None = None, on_epoch: EpochCallback | None = None
) -> Path:
    """Train on every clip of the cache and save `model.safetensors` + `model.json` into `out_dir`.

    `model.json` holds what inference needs: the model name and options, class names, input size,
    normalisation, representation and the cache's preprocessing config. Never pickled.

    Returns:
        `out_dir`.
    """
    cache = load_cache_for(config) if cache is None else cache
    check_model(config, len(cache.classes))
    device = device_for(config)
    threads = torch.get_num_threads()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    try:
        inputs = prepare_inputs(cache, config, device)
        labels = np.asarray(cache.labels, dtype=np.int64)
        every = np.arange(len(cache))
        result = fit(config, inputs, labels, len(cache.classes), every, seed=config.seed, on_epoch=on_epoch)
    finally:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
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
        "history": [{"loss": loss, "accuracy": acc} for loss, acc in result.history],
    }
    (out_dir / "model.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    return out_dir
