"""One fold: which clips it trains and tests on, its seed, and its training (fixed epochs, Adam, cross-entropy,
batched augmentation) and prediction.

The training path is written once for one fold and for K folds at once (`engine/stacked.py`): the per-fold setup
(`setup_fold`: seed, network, normalisation, class weights, in one order), the optimiser (`make_optimizer`), the epoch
loop with its finite check, oracle and final prediction (`train_learner`) and the wrapping into `FoldOutput`s
(`fold_outputs`). A `Learner` supplies only what differs: one fold's plain step and prediction (`OneFold`), or the
stack's vmapped, masked ones (`stacked.FoldStack`).

A network that declares its own inputs, loss or fold statistics (`pamer.models.method.Method`) trains on the same
one-fold path: `setup_fold` normalises each of its inputs like the standard one and gives its builder the `fold_args`
of the training clips (`fold_arguments`), and `OneFold`'s step calls its `loss`. The stack refuses such networks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from pamer.classic import check_classic, is_classic
from pamer.config import AugmentConfig, Config, ConfigError
from pamer.engine.allocator import reuse_freed_memory
from pamer.engine.augment import channel_stats, random_affine, warp
from pamer.engine.inputs import Inputs, as_inputs
from pamer.errors import PamerError
from pamer.models import create_model, model_input_size, model_method
from pamer.preprocess.cache import Cache, CacheError

__all__ = [
    "AUTO_BF16",
    "BF16_CPU_FLAGS",
    "DivergedError",
    "EpochCallback",
    "FitResult",
    "FoldOutput",
    "FoldSetup",
    "Learner",
    "OneFold",
    "compute_dtype",
    "cpu_has_native_bf16",
    "dtype_name",
    "emulated_bf16_warning",
    "channel_tensors",
    "class_weights",
    "autocast",
    "check_model",
    "device_name",
    "epoch_draws",
    "fit",
    "fold_arguments",
    "fold_outputs",
    "fold_plan",
    "fold_seed",
    "make_optimizer",
    "predict_probs",
    "setup_fold",
    "train_fold",
    "train_learner",
]

# (epoch 1-based, mean training loss, training accuracy) after each epoch
EpochCallback = Callable[[int, float, float], None]


class DivergedError(PamerError):
    """Training whose loss became NaN or infinite (the message names the fold, the epoch and what to change).

    Attributes:
        positions: which of the folds trained together diverged (indices among them; [0] for one fold).
    """

    def __init__(self, message: str, positions: list[int] | None = None) -> None:
        super().__init__(message)
        self.positions = [0] if positions is None else positions


# x86 CPU flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic: AVX-512 BF16 (AMD Zen 4 and later, Intel
# Cooper Lake and later) and AMX-BF16 (Intel Sapphire Rapids and later); oneDNN runs bf16 convolutions on either
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
# Whether `auto` takes bf16 where it runs natively (CUDA, a CPU with native bf16). Issue 19's rule: only once pooled
# LOSO metrics of bf16 and float32 over several seeds (`benchmarks/precision.py`) show that bf16 learns what float32
# learns. Five seeds did not show it on the demo set (bf16 lower on 4 of 5 paired seeds, mean -0.068 macro-F1;
# BENCHMARKS.md, "bfloat16 vs float32"), and autocast's arithmetic is the same on a GPU, so `auto` is float32 on
# every device, as the papers trained, although pamnet's step is 1.6-1.7x faster in bf16 on such a CPU at 112 px and
# 2.0x at 224 px (BENCHMARKS.md, 2026-12-06); `train.precision: bfloat16` takes it on request.
AUTO_BF16 = False


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively: a `flags` line of /proc/cpuinfo names `avx512_bf16` or `amx_bf16`.

    Without /proc/cpuinfo (macOS, Windows) or on other CPUs (ARM's BF16 is not looked for): False, and `auto`
    precision trains in float32 there. `cpuinfo` replaces the file's text (tests).
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and set(value.split()) & set(BF16_CPU_FLAGS):
            return True
    return False


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype a fold's network computes in (`train.precision` on `device`): the one decision, used by training,
    prediction and the run's record of each fold.

    `float32` and `bfloat16` are taken as named; `auto` is bfloat16 on CUDA and on a CPU that runs it natively
    (`cpu_has_native_bf16`) when `AUTO_BF16` is on (today it is off: see there), float32 elsewhere. bfloat16
    means autocast: the weights, their gradients, Adam's state and batch norm's running statistics stay float32;
    convolutions and linear layers compute in bfloat16.
    """
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if precision != "auto":
        raise ConfigError(f"train.precision = {precision!r}, expected auto, float32 or bfloat16")
    if AUTO_BF16 and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return torch.bfloat16
    return torch.float32


def emulated_bf16_warning(precision: str, device: torch.device) -> str:
    """One line to show before training when `train.precision` gives bfloat16 on a CPU without native bf16
    (`cpu_has_native_bf16`); else ''. Without AVX-512 (a Zen 3, say), torch has no oneDNN bf16 convolution and falls
    back to its im2col kernels (`aten::_slow_conv2d_*`), many times slower than float32's; with AVX-512 but not its
    BF16 extension, oneDNN emulates bf16 (not measured here).

    `auto` never gives that; `bfloat16`, asked for explicitly, is still honoured (its numbers are bf16's).
    """
    if compute_dtype(precision, device) != torch.bfloat16 or device.type != "cpu" or cpu_has_native_bf16():
        return ""
    return (
        f"train.precision = {precision} on a CPU without native bf16 (pamer found no avx512_bf16 or amx_bf16 flag "
        "in /proc/cpuinfo): bf16 has no fast kernels there; pamnet's training step ran 11-16x slower than in float32 "
        "on a Zen 3 EPYC without AVX-512 (BENCHMARKS.md, 2026-12-06); train.precision=float32 avoids that"
    )


def dtype_name(dtype: torch.dtype) -> str:
    """`float32`, `bfloat16`: a dtype as fold files and run records write it."""
    return str(dtype).removeprefix("torch.")


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
        model: the network after the last epoch, in eval mode (None where the caller asked for predictions only).
        mean, std: the per-channel normalisation computed on the training clips.
        probs: (n_test, C) softmax probabilities after the last epoch (None without test clips).
        epoch_preds: (epochs, n_test) predicted class per epoch, only when `oracle` is on.
        history: per epoch (loss, accuracy) on the augmented training batches.
        seconds: wall time of the training.
    """

    model: nn.Module | None
    mean: list[float]
    std: list[float]
    probs: np.ndarray | None
    epoch_preds: np.ndarray | None
    history: list[tuple[float, float]]
    seconds: float


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
    except PamerError:  # refused by name already (an unknown name or option, a value the network checks)
        raise
    except (TypeError, ValueError, RuntimeError) as err:  # an option torch's layers refuse (drop_rate: 20)
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


@dataclass
class FoldSetup:
    """A fold's starting point, made in one order by `setup_fold` for the one-fold trainer and the stack alike.

    Attributes:
        train_t: the training clips (a CPU int64 tensor of indices), which `epoch_draws` shuffles.
        generator: the fold's CPU generator of shuffles and affine maps.
        mean, std: the per-channel normalisation computed on the training clips.
        norms: (mean, std) of each input (a network that declares several inputs); norms[0] is (mean, std).
        model: the freshly initialised network, on the inputs' device.
        rng_state: the global CPU generator's state right after initialisation (what a CPU fold's dropout draws from).
        weight: the loss's class weights on the inputs' device (None without `train.class_weights`).
    """

    train_t: Tensor
    generator: torch.Generator
    mean: list[float]
    std: list[float]
    norms: list[tuple[list[float], list[float]]]
    model: nn.Module
    rng_state: Tensor
    weight: Tensor | None


def fold_arguments(config: Config, cache: Cache, train_idx: np.ndarray) -> dict:
    """The network's builder arguments computed from the fold's training clips (`Method.fold_args`), or {}.

    The declared function sees `cache.subset(train_idx)` only: no clip, label or action unit of the test subject.
    """
    fold_args = model_method(config.model.name).fold_args
    return {} if fold_args is None else fold_args(cache.subset(train_idx))


def setup_fold(
    config: Config,
    inputs: Inputs,
    labels: np.ndarray,
    num_classes: int,
    train_idx: np.ndarray,
    seed: int,
    fold_args: dict | None = None,
) -> FoldSetup:
    """Seed a fold and build what it starts from, in the order that fixes every random number it draws.

    The global seed (initialisation, and dropout on the CPU), the fold's own generator (`epoch_draws`), the
    normalisation statistics, the network, the class weights. `fit` and the stack both start a fold here, so a seed
    gives a fold the same initial weights and draws on either path. `fold_args` (from `fold_arguments`) go to the
    network's builder.

    Raises:
        CacheError: fewer than 2 training clips (a cache too small for the fold).
    """
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if len(train_idx) < 2:
        raise CacheError(f"a fold needs at least 2 training clips, got {len(train_idx)}")
    xs = as_inputs(inputs)
    device = xs[0].device
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_dev = torch.as_tensor(train_idx, device=device)
    norms = [channel_stats(x[train_dev]) for x in xs]
    model = create_model(config.model.name, num_classes=num_classes, **config.model.args, **(fold_args or {}))
    rng_state = torch.get_rng_state()
    weight = class_weights(config, labels, train_idx, num_classes)
    return FoldSetup(
        train_t=torch.as_tensor(train_idx),
        generator=generator,
        mean=norms[0][0],
        std=norms[0][1],
        norms=norms,
        model=model.to(device),
        rng_state=rng_state,
        weight=None if weight is None else weight.to(device),
    )


def make_optimizer(config: Config, params: Iterable[Tensor]) -> torch.optim.Optimizer:
    """A fold's optimiser: Adam at `train.lr` with `train.weight_decay` (the stack passes one flat leaf per fold)."""
    return torch.optim.Adam(params, lr=config.train.lr, weight_decay=config.train.weight_decay)


class Learner(Protocol):
    """What `train_learner` drives: one fold (`OneFold`) or K folds at once (`stacked.FoldStack`).

    Attributes:
        means, stds: each fold's normalisation (`FoldSetup.mean`, `FoldSetup.std`), in the order of the folds.
    """

    means: list[list[float]]
    stds: list[list[float]]

    def train_epoch(self) -> list[tuple[float, float]]:
        """Train one epoch; each fold's (mean training loss, training accuracy)."""
        ...

    def predict(self) -> list[np.ndarray | None]:
        """Each fold's softmax probabilities of its test clips, float64 on the CPU (None without test clips)."""
        ...

    def model(self, k: int) -> nn.Module:
        """Fold `k`'s network after training, in eval mode."""
        ...


def train_learner(
    config: Config,
    learner: Learner,
    *,
    start: float,
    on_epoch: Callable[[int, list[tuple[float, float]]], None] | None = None,
    models: bool = True,
) -> list[FitResult]:
    """Train every fold of `learner` for `train.epochs` epochs, then predict its test clips: the one epoch loop.

    After each epoch a non-finite loss stops the run (`DivergedError`, with the positions of the folds that
    diverged); with `config.oracle` the test predictions of every epoch but the last are recorded (never used for
    any choice; the last comes from the final prediction).

    Args:
        start: `time.perf_counter()` when the folds' setup began (their `seconds` share the time since).
        on_epoch: called after each epoch with (epoch, each fold's (mean loss, accuracy)).
        models: keep each fold's network in its result (a stack that only predicts skips the copies).
    """
    k = len(learner.means)
    epochs = config.train.epochs
    history: list[list[tuple[float, float]]] = [[] for _ in range(k)]
    oracle: list[list[np.ndarray]] = [[] for _ in range(k)]
    with reuse_freed_memory():  # the steps' large activations reuse freed memory (engine/allocator.py)
        for epoch in range(1, epochs + 1):
            stats = learner.train_epoch()
            for h, s in zip(history, stats, strict=True):
                h.append(s)
            diverged = [i for i, (loss, _) in enumerate(stats) if not math.isfinite(loss)]
            if diverged:
                # the weights are NaN or infinite from here on: stop before anything is scored, saved or printed
                raise DivergedError(
                    f"training diverged at epoch {epoch}: the mean training loss is {stats[diverged[0]][0]} "
                    f"(train.lr = {config.train.lr:g}; try a smaller one)",
                    diverged,
                )
            if on_epoch is not None:
                on_epoch(epoch, stats)
            if config.oracle and epoch < epochs:
                for i, probs in enumerate(learner.predict()):
                    if probs is not None:
                        oracle[i].append(probs.argmax(1))
        probs = learner.predict()
    seconds = (time.perf_counter() - start) / k
    results = []
    for i in range(k):
        epoch_preds = None
        if config.oracle and probs[i] is not None:
            epoch_preds = np.stack([*oracle[i], probs[i].argmax(1)])
        results.append(
            FitResult(
                model=learner.model(i) if models else None,
                mean=learner.means[i],
                std=learner.stds[i],
                probs=probs[i],
                epoch_preds=epoch_preds,
                history=history[i],
                seconds=seconds,
            )
        )
    return results


class OneFold:
    """One fold's network, optimiser and data: the `Learner` that `fit` trains (one network, plain autograd).

    Args: as `fit`'s.
    """

    def __init__(
        self,
        config: Config,
        inputs: Inputs,
        labels: np.ndarray,
        num_classes: int,
        train_idx: np.ndarray,
        test_idx: np.ndarray | None,
        seed: int,
        fold_args: dict | None = None,
    ) -> None:
        setup = self.setup = setup_fold(config, inputs, labels, num_classes, train_idx, seed, fold_args)
        self.means, self.stds = [setup.mean], [setup.std]
        self.config = config
        self.inputs = inputs
        self.xs = as_inputs(inputs)
        self.loss = model_method(config.model.name).loss
        self.test_idx = test_idx
        self.device = self.xs[0].device
        self.cuda = self.device.type == "cuda"
        self.dtype = compute_dtype(config.train.precision, self.device)
        self.net = setup.model.to(memory_format=torch.channels_last) if self.cuda else setup.model
        self.optimizer = make_optimizer(config, self.net.parameters())
        self.y_all = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        self.vector_channels = (0, 1) if config.data.representation == "flow" else None
        # made once, not per step: the normalisation as device tensors (normalize() would rebuild them every batch)
        self.norm_t = [channel_tensors(m, s, x) for (m, s), x in zip(setup.norms, self.xs, strict=True)]

    def train_epoch(self) -> list[tuple[float, float]]:
        setup, config, device, xs = self.setup, self.config, self.device, self.xs
        aug = config.augment
        model, optimizer = self.net, self.optimizer
        model.train()
        order, thetas, spans = epoch_draws(setup.train_t, config.train.batch_size, aug, setup.generator)
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
                warp(xs[0][idx], thetas[at : at + end - begin], vector_channels=self.vector_channels)
                if aug.active
                else xs[0][idx],
                *(x[idx] for x in xs[1:]),  # a network's own extra inputs (never augmented: check_model)
            ]
            # warp's output and indexing are fresh: normalise in place, as normalize() computes
            batch_xs = [x.sub_(m).div_(s) for x, (m, s) in zip(batch_xs, self.norm_t, strict=True)]
            y = self.y_all[idx]
            if self.cuda:
                batch_xs = [channels_last(x) for x in batch_xs]
            with autocast(device, self.dtype):
                # cross-entropy of the logits unless the network declares its own loss (pamer.models.method)
                loss, logits = self.loss(model, batch_xs, y, setup.weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # accumulated on the device: no host sync per step
            loss_sum += loss.detach() * (end - begin)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += end - begin
        return [(float(loss_sum) / max(seen, 1), float(correct) / max(seen, 1))]

    def predict(self) -> list[np.ndarray | None]:
        if self.test_idx is None:
            return [None]
        setup = self.setup
        return [
            predict_probs(
                self.net,
                self.inputs,
                self.test_idx,
                setup.mean,
                setup.std,
                self.config.train.batch_size,
                norms=setup.norms,
                dtype=self.dtype,
            )
        ]

    def model(self, k: int) -> nn.Module:
        return self.net.eval()


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
    fold = OneFold(config, inputs, labels, num_classes, train_idx, test_idx, seed, fold_args)
    each = None if on_epoch is None else lambda epoch, stats: on_epoch(epoch, *stats[0])
    return train_learner(config, fold, start=start, on_epoch=each)[0]


def autocast(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """Autocast to `dtype` on `device` (`compute_dtype`'s choice); off for float32."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


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
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Softmax probabilities of the clips `idx`, without augmentation, the network computing in `dtype` (autocast;
    None: what `train.precision: auto` gives on the inputs' device).

    `mean`, `std` normalise a single input; `norms` gives (mean, std) of each input of a network with several.

    Shape:
        - Output: (len(idx), C) float64 on the CPU.
    """
    model.eval()
    xs = as_inputs(inputs)
    norm_t = [channel_tensors(m, s, x) for (m, s), x in zip(norms or [(mean, std)], xs, strict=True)]
    device = xs[0].device
    dtype = compute_dtype("auto", device) if dtype is None else dtype
    idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=device)
    out = []
    for begin in range(0, len(idx_t), 2 * batch):
        part = idx_t[begin : begin + 2 * batch]
        batch_xs = [x[part].sub_(m).div_(s) for x, (m, s) in zip(xs, norm_t, strict=True)]
        if device.type == "cuda":
            batch_xs = [channels_last(x) for x in batch_xs]
        with autocast(device, dtype):
            logits = model(*batch_xs)
        out.append(torch.softmax(logits.double(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def fold_outputs(
    config: Config,
    cache: Cache,
    folds: Sequence[int],
    train: Callable[[], list[FitResult]],
    device: torch.device,
) -> list[FoldOutput]:
    """The `FoldOutput`s of the folds `folds` (indices into the cache's fold plan), from `train()`'s results.

    Used by the one-fold trainer and the stack alike: a divergence is named by fold and test subject, a trained
    network whose class scores are not finite is refused, and each output records where its fold ran.
    """
    plan = fold_plan(cache.subjects)

    def name(fold: int) -> str:
        return f"fold {fold + 1} (test subject {plan[fold][0]})"

    try:
        results = train()
    except DivergedError as err:
        named = ", ".join(name(folds[k]) for k in err.positions)
        raise DivergedError(f"{named}: {err}", err.positions) from None
    outputs = []
    for fold, result in zip(folds, results, strict=True):
        if not np.isfinite(result.probs).all():
            raise DivergedError(
                f"{name(fold)}: the trained network gives NaN or infinite class scores "
                f"(train.lr = {config.train.lr:g}; try a smaller one)"
            )
        outputs.append(
            FoldOutput(
                plan[fold][0],
                plan[fold][2],
                result.probs,
                result.epoch_preds,
                result.history,
                result.seconds,
                device=device_name(device),
                dtype=dtype_name(compute_dtype(config.train.precision, device)),
                threads=torch.get_num_threads(),
            )
        )
    return outputs


def train_fold(
    config: Config, cache: Cache, inputs: Inputs, fold: int, on_epoch: EpochCallback | None = None
) -> FoldOutput:
    """Train fold `fold` of the cache's fold plan on `inputs` (from `network_inputs`) and predict its test subject."""
    _, train_idx, test_idx = fold_plan(cache.subjects)[fold]
    labels = np.asarray(cache.labels, dtype=np.int64)

    def train() -> list[FitResult]:
        seed = fold_seed(config.seed, fold)
        # statistics of the training clips only (a subset of the cache without the test subject)
        stats = fold_arguments(config, cache, train_idx)
        return [
            fit(
                config,
                inputs,
                labels,
                len(cache.classes),
                train_idx,
                test_idx,
                seed=seed,
                on_epoch=on_epoch,
                fold_args=stats,
            )
        ]

    return fold_outputs(config, cache, [fold], train, as_inputs(inputs)[0].device)[0]


def device_name(device: torch.device) -> str:
    """`cpu`, or `cuda NVIDIA H100 80GB HBM3`: the kind of device, not which of several alike."""
    return f"cuda {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type
