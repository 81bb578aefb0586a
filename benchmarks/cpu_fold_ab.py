"""channels_last weights, torch.compile and glibc's default allocator on the CPU: whole-fold wall time against pamer's
training as it is.

One fold (fold 0 of `loso_speed`'s composite-shaped set: about 430 training clips) of pamnet (`--size`) or of
STSTNet's recipe (`--model ststnet`) trains for `--epochs` epochs and predicts its test clips, through the engine's
own one-fold path (`fold.OneFold` + `fold.train_learner`, what `fit` runs), in each variant, alternated in
`--rounds` paired rounds so load from other jobs hits all alike:

    base           as `fit` trains (pamnet converts its input to channels_last inside `forward` already)
    channels_last  the network's weights converted to channels_last too
    compile        the network wrapped in `torch.compile` (inductor; its compile time counts: it is part of a fold)
    glibc_default  glibc's allocator as it is outside training (`engine/allocator.py` switched off: large blocks
                   mmapped and unmapped every step, what pamer trained with before 2026-12-06)

The ratio base / variant per round (> 1: the variant is faster) and its median are printed.

    python benchmarks/cpu_fold_ab.py                                   # pamnet at 56 px, 2 epochs, 3 rounds
    python benchmarks/cpu_fold_ab.py --size 112 --precision float32 --variants base compile
    python benchmarks/cpu_fold_ab.py --size 224 --epochs 1 --precision float32 --variants base glibc_default
    python benchmarks/cpu_fold_ab.py --model ststnet --epochs 100 --precision float32 --variants base glibc_default
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

import pamer.engine.fold
from loso_speed import WORKLOADS, composite_cache, workload_config
from pamer.engine.fold import OneFold, compute_dtype, dtype_name, fold_plan, train_learner
from pamer.engine.inputs import prepare_inputs

REUSE = pamer.engine.fold.reuse_freed_memory
VARIANTS = ("base", "channels_last", "compile", "glibc_default")


def one_fold(variant: str, config, inputs: torch.Tensor, labels: np.ndarray, train_idx, test_idx) -> float:
    """Seconds of one whole fold (setup, training, prediction) in `variant`."""
    start = time.perf_counter()
    fold = OneFold(config, inputs, labels, 3, train_idx, test_idx, seed=0)
    if variant == "channels_last":
        fold.net = fold.net.to(memory_format=torch.channels_last)
    elif variant == "compile":
        torch._dynamo.reset()  # every fold compiles afresh, as each fold of a run would
        fold.net = torch.compile(fold.net)
    # the engine's allocator setting, or (glibc_default) none: train_learner looks the name up in its module
    pamer.engine.fold.reuse_freed_memory = contextlib.nullcontext if variant == "glibc_default" else REUSE
    results = train_learner(config, fold, start=start)
    assert np.isfinite(results[0].probs).all()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=56, help="pamnet's input side")
    parser.add_argument(
        "--model",
        default="pamnet",
        choices=["pamnet", "ststnet"],
        help="pamnet at --size, batch 32, or STSTNet's recipe (loso_speed's ststnet: 28 px flow, batch 256)",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    w = WORKLOADS["ststnet"] if args.model == "ststnet" else replace(WORKLOADS["pamnet-28"], size=args.size)
    config = workload_config(w, argparse.Namespace(device="cpu", threads=0), args.epochs, args.precision)
    cache = composite_cache(size=w.size, flow_size=w.size if w.representation == "flow" else 8)
    inputs = prepare_inputs(cache, config, torch.device("cpu"))
    labels = np.asarray(cache.labels, dtype=np.int64)
    _, train_idx, test_idx = fold_plan(cache.subjects)[0]
    dtype = dtype_name(compute_dtype(args.precision, torch.device("cpu")))
    print(f"cpu_fold_ab: {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}, {platform.processor() or 'cpu'}")
    print(
        f"  torch {torch.__version__}, {torch.get_num_threads()} threads; {w.model} at {w.size} px, {dtype}, "
        f"batch {w.batch}, "
        f"{len(train_idx)} training clips x {args.epochs} epochs per fold, {args.rounds} paired rounds"
    )
    one_fold("base", config, inputs, labels, train_idx[:64], test_idx)  # warm-up: first calls, oneDNN's choices
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    for r in range(args.rounds):
        for variant in args.variants:
            times[variant].append(one_fold(variant, config, inputs, labels, train_idx, test_idx))
        print(f"  round {r + 1}: " + ", ".join(f"{v} {t[-1]:.1f} s" for v, t in times.items()), flush=True)
    if "base" in times:
        for variant in args.variants:
            if variant != "base":
                ratios = [b / v for b, v in zip(times["base"], times[variant], strict=True)]
                print(
                    f"  base / {variant}: median {statistics.median(ratios):.2f}x "
                    f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; > 1: {variant} is faster)"
                )


if __name__ == "__main__":
    main()
