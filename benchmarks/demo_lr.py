"""The demo's learning rate, chosen on training loss on a synthetic set seeded apart from the demo's own.

No test subject is looked at: for each candidate rate, the demo's network and settings (`demo_config`: batch 8,
the demo's epochs and input size) train one model on every clip of a synthetic set rendered with `--seed`
(default 1; the demo's set uses seed 0), and the mean training loss of each epoch is printed. The demo takes the
rate whose last-epoch training loss is lowest: with a budget of a few epochs, the rate that fits fastest.

    python benchmarks/demo_lr.py [--out /tmp/pamer-demo-lr] [--lrs 1e-4 3e-4 1e-3 3e-3] [--seed 1]
    python benchmarks/demo_lr.py --subjects 2 --clips-per-class 1 --epochs 1 --size 32 --lrs 1e-3   # a smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pamer.cli.demo import (
    DEFAULT_CLIPS_PER_CLASS,
    DEFAULT_EPOCHS,
    DEFAULT_SIZE,
    DEFAULT_SUBJECTS,
    PROTOCOLS,
    demo_config,
)
from pamer.data import read
from pamer.data.synthetic import SyntheticConfig, generate
from pamer.engine.fold import fit
from pamer.engine.inputs import device_for, prepare_inputs
from pamer.preprocess.cache import load_cache, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pamer-demo-lr"))
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    parser.add_argument("--seed", type=int, default=1, help="seed of the set and of training (the demo's is 0)")
    parser.add_argument("--subjects", type=int, default=DEFAULT_SUBJECTS)
    parser.add_argument("--clips-per-class", type=int, default=DEFAULT_CLIPS_PER_CLASS)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--model", default="pamnet")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    synthetic = SyntheticConfig(subjects=args.subjects, clips_per_class=args.clips_per_class, seed=args.seed)
    root = generate(args.out / "data", synthetic)
    index = read("casme2", root, PROTOCOLS[synthetic.classes])
    cache_dir = prepare(index, args.out / "cache", size=args.size, workers=1, progress=False, protocol="megc2019")
    cache = load_cache(cache_dir)
    labels = np.asarray(cache.labels, dtype=np.int64)
    every = np.arange(len(cache))
    print(f"{len(cache)} clips of {len(set(cache.subjects))} subjects (set seed {args.seed}), {args.model} at "
          f"{args.size} px, {args.epochs} epochs, batch 8, torch threads {torch.get_num_threads()}")  # fmt: skip
    final = {}
    for lr in args.lrs:
        config = demo_config(cache_dir, model=args.model, size=args.size, epochs=args.epochs, seed=args.seed)
        config.train.lr = lr
        config.validate("--lrs")
        inputs = prepare_inputs(cache, config, device_for(config))
        start = time.perf_counter()
        result = fit(config, inputs, labels, len(cache.classes), every, seed=config.seed)
        losses = [loss for loss, _ in result.history]
        final[lr] = losses[-1]
        print(
            f"lr {lr:g}: training loss per epoch {' '.join(f'{x:.3f}' for x in losses)}; "
            f"last-epoch training accuracy {result.history[-1][1]:.3f}; {time.perf_counter() - start:.0f} s"
        )
    best = min(final, key=final.get)
    print(f"lowest last-epoch training loss: lr {best:g} ({final[best]:.3f})")


if __name__ == "__main__":
    main()
