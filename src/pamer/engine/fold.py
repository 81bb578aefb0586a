"""One fold: which clips it trains and tests on, its seed, and its training (fixed epochs, Adam, cross-entropy,
batched augmentation) and prediction.

A network that declares its own inputs, loss or fold statistics (`pamer.models.method.Method`) trains on the same
path: its inputs are normalised like the standard one, its builder gets `fold_args` of the training clips
(`fold_arguments`), and its `loss` replaces the cross-entropy step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from pamer.classic import check_classic, is_classic
from pamer.config import AugmentConfig, Config, ConfigError
from pamer.engine.augment import channel_stats, random_affine, warp
from pamer.engine.inputs import Inputs, as_inputs
from pamer.models import create_model, model_input_size, model_method
from pamer.preprocess.cache import Cache

__all__ = [
    "DivergedError",
    "EpochCallback",
    "FitResult",
    "FoldOutput",
    "autocast_dtype",
    "channel_tensors",
    "class_weights",
    "check_model",
    "device_name",
    "epoch_draws",
    "fit",
    "fold_arguments",
    "fold_plan",
    "fold_seed",
    "predict_probs",
    "train_fold",
]

# (epoch 1-based, mean training loss, training accuracy) after each epoch
EpochCallback = Callable[[int, float, float], None]


class DivergedError(ValueError):
    """Training whose loss became NaN or infinite (the message names the fold, the epoch and what to change)."""


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The dtype the network computes in on `device`: bfloat16 autocast on CUDA, float32 elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


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


@dataclass
class FoldOutput:
    """What a fold sends back to the driver (plain arrays, so it crosses process and machine boundaries)."""

    subject: str
    test_idx: np.ndarray
    probs: np.ndarray
    epoch_preds: np.ndarray | None
    history: list[tuple[float, float]]
    seconds: float
    # where it ran: folds of one run that ran on other devices, dtypes or thread counts give other numbers
    device: str = ""
    dtype: str = ""
    threads: int = 0


@dataclass
class FitResult:
    """A trained model and, when test clips were given, their class probabilities.

    Attributes:
        model: the network after the last epoch, in eval mode.
        mean, std: the per-channel normalisation computed on the training clips (of the first input).
        norms: (mean, std) of each input (one entry for a network with one input).
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
    norms: list[tuple[list[float], list[float]]] | None = None


def epoch_draws(
    train_t: Tensor, batch: int, aug: AugmentConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor, list[tuple[int, int, int]]]:
    """One epoch's random numbers, drawn on the CPU in the order training uses them.

    The shuffle first, then one affine map per batch (`random_affine`) in batch order. A batch of one clip is
    skipped without a draw (batch norm cannot train on one clip; it rejoins the shuffle next epoch). Every path
    that trains a fold (`fit`, `stacked`) draws through here, so a seed gives each fold the same epoch anywhere.

    Returns:
        order: the shuffled training indices; thetas: the maps of the trained batches, concatenated;
        spans: (begin, end, offset) per trained batch: its clips `order[begin:end]`, its maps from `thetas[offset]`.
    """
    order = train_t[torch.randperm(len(train_t), generator=generator)]
    spans, draws, at = [], [], 0
    for begin in range(0, len(order), batch):
        end = min(begin + batch, len(order))
        if end - begin < 2:
            continue
        draws.append(
            random_affine(
                end - begin, hflip=aug.hflip, rotation=aug.rotation, crop_scale=aug.crop_scale, generator=generator
            )
        )
        spans.append((begin, end, at))
        at += end - begin
    thetas = torch.cat(draws) if draws else torch.zeros(0, 2, 3)
    return order, thetas, spans


def class_weights(config: Config, labels: np.ndarray, train_idx: np.ndarray, num_classes: int) -> Tensor | None:
    """The loss's class weights of a fold with `train.class_weights` (float32, CPU), else None.

    Inverse frequency over the training clips, normalised to mean 1 over the classes present; absent classes weigh
    nothing.
    """
    if not config.train.class_weights:
        return None
    counts = np.bincount(labels[train_idx], minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return torch.as_tensor(w, dtype=torch.float32)


def channel_tensors(mean: list[float], std: list[float], like: Tensor) -> tuple[Tensor, Tensor]:
    """`normalize`'s per-channel mean and std as (1, C, 1, 1) tensors of `like`'s dtype and device."""
    m = torch.tensor(mean, device=like.device, dtype=like.dtype)[None, :, None, None]
    s = torch.tensor(std, device=like.device, dtype=like.dtype)[None, :, None, None]
    return m, s


def check_model(config: Config, num_classes: int, cache: Cache | None = None) -> None:
    """Build the configured network once, so a bad name, option or input size fails before any fold starts.

    A classic method (`pamer.classic`) is checked instead: its options, and, given, that `cache` holds what it reads.
    """
    if is_classic(config.model.name):
        check_classic(config, cache)
        return
    try:
        create_model(config.model.name, num_classes=num_classes, **config.model.args)
    except TypeError as err:  # an option the network's constructor does not take
        raise ConfigError(f"model.args {config.model.args!r} for {config.model.name!r}: {err}") from None
    method = model_method(config.model.name)
    if method.inputs is not None and config.augment.active:
        raise ConfigError(
            f"model {config.model.name!r} builds its own inputs, which pamer's augmentation does not warp; "
            "set augment.hflip: 0, augment.rotation: 0 and augment.crop_scale: 1 (its recipe trains without)"
        )
    size = model_input_size(config.model.name)
    if size is not None and config.train.input_size != size:
        raise ConfigError(
            f"train.input_size = {config.train.input_size}, but {config.model.name!r} takes {size} x {size} inputs "
            f"only (its classifier is sized for them); set train.input_size: {size}"
        )


def fold_arguments(config: Config, cache: Cache, train_idx: np.ndarray) -> dict:
    """The network's builder arguments computed from the fold's training clips (`Method.fold_args`), or {}.

    The declared function sees `cache.subset(train_idx)` only: no clip, label or action unit of the test subject.
    """
    fold_args = model_method(config.model.name).fold_args
    return {} if fold_args is None else fold_args(cache.subset(train_idx))


def fit(
    config: Config,
    inputs: Inputs,
    labels: np.ndarray,
    num_classes: int,
    train_idx: np.ndarray,
    test_idx: np.ndarray | None = None,
    *,
    seed: int,
    on_epoch: EpochCallback | None = None,
    fold_args: dict | None = None,
) -> FitResult:
    """Train a fresh network on `train_idx` for `train.epochs` epochs; predict `test_idx` after the last one.

    The test clips are never used for any choice: with `config.oracle` their per-epoch predictions are only
    recorded. Random numbers (initialisation, batch order, augmentation) all derive from `seed`, drawn on the
    CPU, so a seed gives the same result on any executor.

    Args:
        config: the run's configuration.
        inputs: every clip's un-normalised input(s) from `network_inputs` (on the training device).
        labels: class index of every clip.
        num_classes: number of classes.
        train_idx, test_idx: clip indices.
        seed: seed of this fold.
        on_epoch: called after each epoch with (epoch, mean loss, training accuracy).
        fold_args: builder arguments from the training clips (`fold_arguments`), for a network that declares them.

    Shape:
        - inputs: (N, 3, S, S), or a tuple of (N, ...) tensors; labels: (N,).
    """
    start = time.perf_counter()
    xs = as_inputs(inputs)
    method = model_method(config.model.name)
    device = xs[0].device
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if len(train_idx) < 2:
        raise ValueError(f"a fold needs at least 2 training clips, got {len(train_idx)}")
    train_dev = torch.as_tensor(train_idx, device=device)
    norms = [channel_stats(x[train_dev]) for x in xs]
    mean, std = norms[0]
    model = create_model(config.model.name, num_classes=num_classes, **config.model.args, **(fold_args or {}))
    model = model.to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    y_all = torch.as_tensor(labels, dtype=torch.long, device=device)
    weight = class_weights(config, labels, train_idx, num_classes)
    weight = None if weight is None else weight.to(device)
    vector_channels = (0, 1) if config.data.representation == "flow" else None
    aug = config.augment
    batch = config.train.batch_size
    # made once, not per step: the normalisation as device tensors (normalize() would rebuild them every batch)
    norm_t = [channel_tensors(m, s, x) for (m, s), x in zip(norms, xs, strict=True)]
    oracle_preds = []
    history = []
    train_t = torch.as_tensor(train_idx)
    for epoch in range(1, config.train.epochs + 1):
        model.train()
        order, thetas, spans = epoch_draws(train_t, batch, aug, generator)
        # one host-to-device copy per epoch, not two per step (a pageable copy to CUDA waits for the device)
        order, thetas = order.to(device), thetas.to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for begin, end, at in spans:
            idx = order[begin:end]
            # the maps are drawn either way (the random stream stays that of an augmented run), but with every
            # augmentation off they are identities: indexing already gives a fresh copy to normalise in place
            batch_xs = [
                warp(xs[0][idx], thetas[at : at + end - begin], vector_channels=vector_channels)
                if aug.active
                else xs[0][idx],
                *(x[idx] for x in xs[1:]),
            ]
            # warp's output and indexing are fresh: normalise in place, as normalize() computes
            batch_xs = [x.sub_(m).div_(s) for x, (m, s) in zip(batch_xs, norm_t, strict=True)]
            y = y_all[idx]
            if cuda:
                batch_xs = [channels_last(x) for x in batch_xs]
            with torch.autocast(device_type=device.type, dtype=autocast_dtype(device), enabled=cuda):
                loss, logits = method.loss(model, batch_xs, y, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # accumulated on the device: no host sync per step
            loss_sum += loss.detach() * (end - begin)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += end - begin
        history.append((float(loss_sum) / max(seen, 1), float(correct) / max(seen, 1)))
        if not math.isfinite(history[-1][0]):
            # the weights are NaN or infinite from here on: stop before anything is scored, saved or printed
            raise DivergedError(
                f"training diverged at epoch {epoch}: the mean training loss is {history[-1][0]} "
                f"(train.lr = {config.train.lr:g}; try a smaller one)"
            )
        if on_epoch is not None:
            on_epoch(epoch, *history[-1])
        if config.oracle and test_idx is not None and epoch < config.train.epochs:
            oracle_preds.append(predict_probs(model, inputs, test_idx, mean, std, batch, norms=norms).argmax(1))
    probs = None
    if test_idx is not None:
        probs = predict_probs(model, inputs, test_idx, mean, std, batch, norms=norms)
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
        norms=norms,
    )


def channels_last(x: Tensor) -> Tensor:
    """An image batch in channels_last (the CUDA layout); any other tensor as it is."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    inputs: Inputs,
    idx: np.ndarray,
    mean: list[float],
    std: list[float],
    batch: int,
    *,
    norms: list[tuple[list[float], list[float]]] | None = None,
) -> np.ndarray:
    """Softmax probabilities of the clips `idx`, without augmentation.

    `mean`, `std` normalise a single input; `norms` gives (mean, std) of each input of a network with several.

    Shape:
        - Output: (len(idx), C) float64 on the CPU.
    """
    model.eval()
    xs = as_inputs(inputs)
    norm_t = [channel_tensors(m, s, x) for (m, s), x in zip(norms or [(mean, std)], xs, strict=True)]
    device = xs[0].device
    idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=device)
    out = []
    for begin in range(0, len(idx_t), 2 * batch):
        part = idx_t[begin : begin + 2 * batch]
        batch_xs = [x[part].sub_(m).div_(s) for x, (m, s) in zip(xs, norm_t, strict=True)]
        if device.type == "cuda":
            batch_xs = [channels_last(x) for x in batch_xs]
        with torch.autocast(device_type=device.type, dtype=autocast_dtype(device), enabled=device.type == "cuda"):
            logits = model(*batch_xs)
        out.append(torch.softmax(logits.double(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def train_fold(
    config: Config, cache: Cache, inputs: Inputs, fold: int, on_epoch: EpochCallback | None = None
) -> FoldOutput:
    """Train fold `fold` of the cache's fold plan on `inputs` (from `network_inputs`) and predict its test subject."""
    subject, train_idx, test_idx = fold_plan(cache.subjects)[fold]
    try:
        result = fit(
            config,
            inputs,
            np.asarray(cache.labels, dtype=np.int64),
            len(cache.classes),
            train_idx,
            test_idx,
            seed=fold_seed(config.seed, fold),
            on_epoch=on_epoch,
            fold_args=fold_arguments(config, cache, train_idx),
        )
    except DivergedError as err:
        raise DivergedError(f"fold {fold + 1} (test subject {subject}): {err}") from None
    if not np.isfinite(result.probs).all():
        raise DivergedError(
            f"fold {fold + 1} (test subject {subject}): the trained network gives NaN or infinite class scores "
            f"(train.lr = {config.train.lr:g}; try a smaller one)"
        )
    device = as_inputs(inputs)[0].device
    return FoldOutput(
        subject,
        test_idx,
        result.probs,
        result.epoch_preds,
        result.history,
        result.seconds,
        device=device_name(device),
        dtype=str(autocast_dtype(device)).removeprefix("torch."),
        threads=torch.get_num_threads(),
    )


def device_name(device: torch.device) -> str:
    """`cpu`, or `cuda NVIDIA H100 80GB HBM3`: the kind of device, not which of several alike."""
    return f"cuda {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type
