"""Training of one fold (or of the final model): fixed epochs, Adam, cross-entropy, batched augmentation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import pamer
from pamer.config import Config, ConfigError
from pamer.engine.augment import channel_stats, motion_inputs, normalize, random_affine, warp
from pamer.preprocess.cache import Cache

__all__ = [
    "FitResult",
    "cache_path",
    "check_model",
    "device_for",
    "fit",
    "load_cache_for",
    "prepare_inputs",
    "train_final",
]

# (epoch 1-based, mean training loss, training accuracy) after each epoch
EpochCallback = Callable[[int, float, float], None]


@dataclass
class FitResult:
    """A trained model and, when test clips were given, their class probabilities.

    Attributes:
        model: the network after the last epoch, in eval mode.
        mean, std: the per-channel normalisation computed on the training clips.
        probs: (n_test, C) softmax probabilities after the last epoch (None without test clips).
        epoch_preds: (epochs, n_test) predicted class per epoch, only when `oracle` is on.
        history: per epoch (loss, accuracy) on the augmented training batches.
        seconds: wall time of the training.
    """

    model: nn.Module
    mean: list[float]
    std: list[float]
    probs: np.ndarray | None
    epoch_preds: np.ndarray | None
    history: list[tuple[float, float]]
    seconds: float


def device_for(config: Config) -> torch.device:
    """The device named by `train.device` (`auto`: CUDA when available)."""
    name = config.train.device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device = {name!r}, expected auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but no CUDA device is available here")
    return device


def cache_path(config: Config) -> Path:
    """The cache directory named by `data.cache`; also accepts `pamer prepare`'s `--out` folder holding one cache."""
    if not config.data.cache:
        raise ConfigError("data.cache is empty: name a cache written by `pamer prepare` (--set data.cache=PATH)")
    path = Path(config.data.cache)
    inside = sorted(p.parent for p in path.glob("*/cache.json")) if path.is_dir() else []
    if not (path / "cache.json").is_file() and len(inside) == 1:
        return inside[0]
    return path


def load_cache_for(config: Config) -> Cache:
    """The cache named by `data.cache` (see `cache_path`), checked against `data.representation`."""
    from pamer.preprocess.cache import load_cache

    expect = {"representation": "flow"} if config.data.representation == "flow" else None
    return load_cache(cache_path(config), expect=expect)


def check_model(config: Config, num_classes: int) -> None:
    """Build the configured network once, so a bad name or option fails before any fold starts."""
    from pamer.models import create_model

    try:
        create_model(config.model.name, num_classes=num_classes, **config.model.args)
    except TypeError as err:  # an option the network's constructor does not take
        raise ConfigError(f"model.args {config.model.args!r} for {config.model.name!r}: {err}") from None


def prepare_inputs(cache: Cache, config: Config, device: torch.device) -> Tensor:
    """Every clip's un-normalised network input on `device`, computed once per run.

    Shape:
        - Output: (N, 3, train.input_size, train.input_size) float32.
    """
    if len(cache) == 0:
        raise ValueError(f"cache {config.data.cache or '(in memory)'} holds no clips")
    if config.data.representation == "flow":
        if cache.flow is None:
            raise ValueError(
                f"data.representation is 'flow' but cache {config.data.cache or '(in memory)'} has no flow field; "
                "prepare it with --representation flow"
            )
        return motion_inputs(cache.flow, None, config.train.input_size, representation="flow", device=device)
    return motion_inputs(cache.onset, cache.apex, config.train.input_size, device=device)


def fit(
    config: Config,
    inputs: Tensor,
    labels: np.ndarray,
    num_classes: int,
    train_idx: np.ndarray,
    test_idx: np.ndarray | None = None,
    *,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train a fresh network on `train_idx` for `train.epochs` epochs; predict `test_idx` after the last one.

    The test clips are never used for any choice: with `config.oracle` their per-epoch predictions are only
    recorded. Random numbers (initialisation, batch order, augmentation) all derive from `seed`, drawn on the
    CPU, so a seed gives the same result on any executor.

    Args:
        config: the run's configuration.
        inputs: every clip's un-normalised input from `prepare_inputs` (on the training device).
        labels: class index of every clip.
        num_classes: number of classes.
        train_idx, test_idx: clip indices.
        seed: seed of this fold.
        on_epoch: called after each epoch with (epoch, mean loss, training accuracy).

    Shape:
        - inputs: (N, 3, S, S); labels: (N,).
    """
    from pamer.models import create_model

    start = time.perf_counter()
    device = inputs.device
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if len(train_idx) < 2:
        raise ValueError(f"a fold needs at least 2 training clips, got {len(train_idx)}")
    mean, std = channel_stats(inputs[torch.as_tensor(train_idx, device=device)])
    model = create_model(config.model.name, num_classes=num_classes, **config.model.args).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    y_all = torch.as_tensor(labels, dtype=torch.long, device=device)
    weight = None
    if config.train.class_weights:
        counts = np.bincount(labels[train_idx], minlength=num_classes).astype(np.float64)
        # inverse frequency, normalised to mean 1 over the classes present; absent classes weigh nothing
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
        weight = torch.as_tensor(w, dtype=torch.float32, device=device)
    vector_channels = (0, 1) if config.data.representation == "flow" else None
    aug = config.augment
    batch = config.train.batch_size
    oracle_preds = []
    history = []
    train_t = torch.as_tensor(train_idx)
    for epoch in range(1, config.train.epochs + 1):
        model.train()
        order = train_t[torch.randperm(len(train_t), generator=generator)]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for begin in range(0, len(order), batch):
            idx = order[begin : begin + batch]
            if len(idx) < 2:  # batch norm cannot train on one clip; it rejoins the shuffle next epoch
                continue
            theta = random_affine(
                len(idx), hflip=aug.hflip, rotation=aug.rotation, crop_scale=aug.crop_scale, generator=generator
            )
            idx = idx.to(device)
            x = normalize(warp(inputs[idx], theta, vector_channels=vector_channels), mean, std)
            y = y_all[idx]
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # accumulated on the device: no host sync per step
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(idx)
        history.append((float(loss_sum) / max(seen, 1), float(correct) / max(seen, 1)))
        if on_epoch is not None:
            on_epoch(epoch, *history[-1])
        if config.oracle and test_idx is not None and epoch < config.train.epochs:
            oracle_preds.append(predict_probs(model, inputs, test_idx, mean, std, batch).argmax(1))
    probs = None
    if test_idx is not None:
        probs = predict_probs(model, inputs, test_idx, mean, std, batch)
        if config.oracle:
            oracle_preds.append(probs.argmax(1))
    model.eval()
    return FitResult(
        model=model,
        mean=mean,
        std=std,
        probs=probs,
        epoch_preds=np.stack(oracle_preds) if config.oracle and oracle_preds else None,
        history=history,
        seconds=time.perf_counter() - start,
    )


@torch.inference_mode()
def predict_probs(
    model: nn.Module, inputs: Tensor, idx: np.ndarray, mean: list[float], std: list[float], batch: int
) -> np.ndarray:
    """Softmax probabilities of the clips `idx`, without augmentation.

    Shape:
        - Output: (len(idx), C) float64 on the CPU.
    """
    model.eval()
    device = inputs.device
    idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=device)
    out = []
    for begin in range(0, len(idx_t), 2 * batch):
        x = normalize(inputs[idx_t[begin : begin + 2 * batch]], mean, std)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x)
        out.append(torch.softmax(logits.double(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def train_final(
    config: Config, out_dir: str | Path, *, cache: Cache | None = None, on_epoch: EpochCallback | None = None
) -> Path:
    """Train on every clip of the cache and save `model.safetensors` + `model.json` into `out_dir`.

    `model.json` holds what inference needs: the model name and options, class names, input size,
    normalisation, representation and the cache's preprocessing config. Never pickled.

    Returns:
        `out_dir`.
    """
    from safetensors.torch import save_file

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
