"""Time per LOSO of each classic method (LBP-TOP, Bi-WOOF + linear SVM) under its shipped config, on a synthetic set
of the MEGC2019 composite's shape (442 clips, 68 subjects, 3 classes, 256 px crops, 10 clip frames, flow).

For each method: the features of every clip (once per run), then the whole LOSO through `run_loso` (local
executor) with the config's C choice (an inner LOSO over c_grid on each fold's training subjects) and, for
comparison, with a fixed C. The content is random, so the accuracies printed are chance; only the times matter.

    python benchmarks/classic.py [--methods lbptop biwoof] [--clips 442] [--subjects 68] [--size 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from pamer.classic import classic_features, list_classic
from pamer.config import SHIPPED, Config, load_config
from pamer.engine import run_loso
from pamer.preprocess.cache import Cache

CONFIGS = SHIPPED / "peers"


def synthetic_composite(clips: int = 442, subjects: int = 68, size: int = 256, frames: int = 10) -> Cache:
    """`clips` clips over `subjects` subjects (as even as possible), 3 classes: random grey clip frames and flow."""
    rng = np.random.default_rng(0)
    per_subject = np.full(subjects, clips // subjects)
    per_subject[: clips - per_subject.sum()] += 1
    names = [f"s{i + 1:02d}" for i, k in enumerate(per_subject) for _ in range(k)]
    still = np.zeros((clips, size, size, 3), dtype=np.uint8)  # onset / apex: not read by the classic methods
    return Cache(
        onset=still,
        apex=still,
        labels=rng.integers(0, 3, clips).astype(np.int64),
        subjects=names,
        clips=[f"clip{i}" for i in range(clips)],
        classes=("negative", "positive", "surprise"),
        config={"size": size, "representation": "flow", "frames": frames},
        flow=rng.normal(0, 1, (clips, size, size, 3)).astype(np.float32),
        frames=rng.integers(0, 256, (clips, frames, size, size), dtype=np.uint8),
    )


def measure(name: str, cache: Cache) -> str:
    shipped = load_config(CONFIGS / f"{name}.yaml")
    t0 = time.perf_counter()
    features = classic_features(shipped, cache)
    t_features = time.perf_counter() - t0
    lines = [f"{name}: features of {len(cache)} clips {t_features:.1f} s ({features.shape[1]} values per clip)"]
    fixed = shipped.to_dict()
    fixed["model"]["args"] = {**shipped.model.args, "c_grid": [], "C": 1.0}
    for label, config in (("C from c_grid by inner LOSO", shipped), ("fixed C = 1", Config.from_dict(fixed))):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            metrics = run_loso(config, Path(out) / name, "local", cache=cache, quiet=True)
            seconds = time.perf_counter() - t0
        lines.append(
            f"  LOSO, {label}: {metrics['folds']} folds in {seconds:.1f} s (features included; "
            f"accuracy {metrics['accuracy']:.3f} on random data)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list_classic(), choices=list_classic())
    parser.add_argument("--clips", type=int, default=442)
    parser.add_argument("--subjects", type=int, default=68)
    parser.add_argument("--size", type=int, default=256, help="side of the cached crops (pamer prepare's default)")
    args = parser.parse_args()
    cache = synthetic_composite(args.clips, args.subjects, args.size)
    print(f"{len(cache)} clips, {args.subjects} subjects, {args.size} px, 10 clip frames", flush=True)
    for name in args.methods:
        print(measure(name, cache), flush=True)


if __name__ == "__main__":
    main()
