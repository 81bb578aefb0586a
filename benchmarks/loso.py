"""LOSO training speed on a synthetic data set of CASME II's shape (26 subjects, 255 clips, 5 classes, 256 px).

For each input size: the one-off input preparation, wall time per training epoch of one fold (the 26th subject
held out), samples/s, the share of an epoch spent outside the network's forward/backward/optimiser step
(indexing, augmentation, normalisation, bookkeeping; target <= 5 %), test-set prediction time, and the
projected time of a full LOSO run at the paper configs' epoch count.

    python benchmarks/loso.py [--sizes 112 224] [--model pamnet] [--epochs 40] [--threads 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pamer.config import load_config
from pamer.engine.augment import random_affine, warp
from pamer.engine.fold import fit, fold_plan, predict_probs
from pamer.engine.inputs import device_for, prepare_inputs
from pamer.models import create_model
from pamer.preprocess.cache import Cache
from pamer.preprocess.network_input import normalize


def synthetic_casme2(seed: int = 0, size: int = 256) -> Cache:
    rng = np.random.default_rng(seed)
    per_subject = np.full(26, 255 // 26)
    per_subject[: 255 - per_subject.sum()] += 1
    subjects = [f"sub{i + 1:02d}" for i, k in enumerate(per_subject) for _ in range(k)]
    n = len(subjects)
    onset = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    apex = np.clip(onset.astype(np.int16) + rng.integers(-8, 9, onset.shape), 0, 255).astype(np.uint8)
    return Cache(
        onset=onset,
        apex=apex,
        labels=rng.integers(0, 5, n).astype(np.int64),
        subjects=subjects,
        clips=[f"clip{i}" for i in range(n)],
        classes=("happiness", "disgust", "surprise", "repression", "others"),
        config={"size": size},
    )


def pure_step_time(config, num_classes: int, batches: list[int], device: torch.device) -> float:
    """Forward + backward + Adam step alone, on ready tensors, for the same batch sizes as one epoch."""
    torch.manual_seed(0)
    model = create_model(config.model.name, num_classes=num_classes, **config.model.args).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    s = config.train.input_size
    data = [
        (torch.randn(b, 3, s, s, device=device), torch.randint(0, num_classes, (b,), device=device)) for b in batches
    ]
    x, y = data[0]  # warm-up, as the measured epoch of `fit` is its second
    torch.nn.functional.cross_entropy(model(x), y).backward()
    start = time.perf_counter()
    for x, y in data:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def input_pipeline_time(config, inputs: torch.Tensor, train_idx: np.ndarray, mean, std) -> float:
    """What an epoch does outside the network: shuffle, index, draw and apply the warps, normalise."""
    g = torch.Generator().manual_seed(0)
    a = config.augment
    order = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=g)]
    start = time.perf_counter()
    for begin in range(0, len(order), config.train.batch_size):
        idx = order[begin : begin + config.train.batch_size].to(inputs.device)
        theta = random_affine(len(idx), hflip=a.hflip, rotation=a.rotation, crop_scale=a.crop_scale, generator=g)
        normalize(warp(inputs[idx], theta), mean, std)
    if inputs.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument("--model", default="pamnet")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the projected full run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--clips", type=int, default=0, help="time epochs over this many training clips (0: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = synthetic_casme2()
    subject, train_idx, test_idx = fold_plan(cache.subjects)[-1]
    fold_clips = len(train_idx)
    if args.clips:  # a shorter epoch on a slow machine; the projection scales samples/s to the full fold
        train_idx = train_idx[: args.clips]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(cache)} clips, fold {subject}")
    for size in args.sizes:
        config = load_config(
            None,
            [
                f"model.name={args.model}",
                f"train.input_size={size}",
                f"train.batch_size={args.batch_size}",
                "train.epochs=2",
            ],
        )
        device = device_for(config)
        t0 = time.perf_counter()
        inputs = prepare_inputs(cache, config, device)
        t_prep = time.perf_counter() - t0
        stamps = []
        result = fit(
            config,
            inputs,
            cache.labels,
            5,
            train_idx,
            None,
            seed=0,
            on_epoch=lambda *_, stamps=stamps: stamps.append(time.perf_counter()),
        )
        epoch = stamps[1] - stamps[0]  # the second epoch: no model building or first-call warm-up
        b = config.train.batch_size
        batches = [min(b, len(train_idx) - i) for i in range(0, len(train_idx), b)]
        batches = [k for k in batches if k >= 2]
        pure = pure_step_time(config, 5, batches, device)
        t0 = time.perf_counter()
        predict_probs(result.model, inputs, test_idx, result.mean, result.std, b)
        t_eval = time.perf_counter() - t0
        pipeline = input_pipeline_time(config, inputs, train_idx, result.mean, result.std)
        folds = len(set(cache.subjects))
        full_epoch = epoch * fold_clips / len(train_idx)
        projected = folds * (args.epochs * full_epoch + t_eval) + t_prep
        print(
            f"{args.model} @ {size}: prepare inputs {t_prep:.2f} s; epoch of {len(train_idx)} clips {epoch:.2f} s "
            f"({sum(batches) / epoch:.1f} samples/s); forward/backward/step alone {pure:.2f} s; input pipeline alone "
            f"{pipeline:.3f} s = {100 * pipeline / epoch:.1f} % of the epoch; test prediction {t_eval:.2f} s; "
            f"projected LOSO ({folds} folds x {args.epochs} epochs) {projected / 3600:.2f} h"
        )


if __name__ == "__main__":
    main()
