"""Does bfloat16 autocast change what a run learns? Pooled LOSO metrics of bf16 vs float32, several seeds, two sets.

For each training seed, the same LOSO runs twice, `train.precision=float32` and `train.precision=bfloat16`, and the
pooled accuracy and macro-F1 are printed side by side (per seed, then mean +- std over the seeds), on:

- demo: `pamer demo`'s default set (5 subjects x 3 classes x 5 clips, rendered with set seed 0, aligned by dlib)
  and its configuration (`demo_config`: pamnet at 112 px, 8 epochs, batch 8, Adam 1e-3);
- composite: a set of MEGC2019 composite's shape (442 clips of 68 subjects, 250/109/83 negative/positive/surprise,
  `loso_speed.composite_cache`) whose apex differs from its onset by a class-dependent blob (position by class,
  jittered, random strength, under noise): `--composite-model` (pamnet; pamnet_test, its tiny variant, costs a
  hundredth) at `--composite-size` px for `--composite-epochs` epochs (batch 32, Adam 1e-3), all 68 folds.

Only the training seed changes between seeds (initialisation, batch order, augmentation); the sets stay fixed. The
rule fixed before the run: bf16 becomes the default (`train.precision: auto`) unless its mean macro-F1 on a set
differs from float32's by more than the seed-to-seed standard deviation of float32's macro-F1 on that set.

    python benchmarks/precision.py                                  # 3 seeds, both sets (est. 40 min, 2 idle cores)
    python benchmarks/precision.py --threads 1 --composite-model pamnet_test --composite-epochs 8   # as recorded
    python benchmarks/precision.py --seeds 0 --sets composite --composite-epochs 1 --composite-subjects 4  # smoke
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from loso_speed import composite_cache
from pamer.config import Config, load_config
from pamer.data import read
from pamer.demo.settings import (
    DEFAULT_CLIPS_PER_CLASS,
    DEFAULT_EPOCHS,
    DEFAULT_SIZE,
    DEFAULT_SUBJECTS,
    PROTOCOLS,
    demo_config,
)
from pamer.demo.synthetic import SyntheticConfig, generate
from pamer.engine import run_loso
from pamer.engine.fold import cpu_has_native_bf16
from pamer.preprocess.cache import Cache, load_cache
from pamer.preprocess.pipeline import prepare

PRECISIONS = ("float32", "bfloat16")


def learnable_composite(size: int, subjects: int, seed: int = 0) -> Cache:
    """`composite_cache`'s clips (first `subjects` subjects), each apex = onset + a class-placed blob under noise."""
    cache = composite_cache(size=size, flow_size=8, seed=seed)
    keep = [i for i, s in enumerate(cache.subjects) if int(s[1:]) < subjects]
    rng = np.random.default_rng(seed + 1)
    yy, xx = np.mgrid[0:size, 0:size] / size
    onset = cache.onset[keep]
    apex = onset.astype(np.float32)
    centres = [(0.3, 0.3), (0.3, 0.7), (0.7, 0.5)]  # negative, positive, surprise
    for j, i in enumerate(keep):
        cy, cx = centres[cache.labels[i]]
        cy, cx = cy + rng.normal(0, 0.08), cx + rng.normal(0, 0.08)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.08**2))
        apex[j] += rng.uniform(5, 30) * blob[..., None] + rng.normal(0, 12, apex[j].shape)
    return Cache(
        onset=onset,
        apex=np.clip(apex, 0, 255).astype(np.uint8),
        labels=cache.labels[keep],
        subjects=[cache.subjects[i] for i in keep],
        clips=[cache.clips[i] for i in keep],
        classes=cache.classes,
        config={"dataset": "composite-shaped synthetic (learnable)", "size": size},
    )


def demo_set(out: Path) -> tuple[Cache, Path]:
    synthetic = SyntheticConfig(subjects=DEFAULT_SUBJECTS, clips_per_class=DEFAULT_CLIPS_PER_CLASS, seed=0)
    root = generate(out / "data", synthetic)
    index = read("casme2", root, PROTOCOLS[synthetic.classes])
    cache_dir = prepare(index, out / "cache", size=DEFAULT_SIZE, workers=1, progress=False, protocol="megc2019")
    return load_cache(cache_dir), cache_dir


def composite_config(args: argparse.Namespace, seed: int) -> Config:
    return load_config(
        None,
        [
            f"model.name={args.composite_model}",
            f"train.input_size={args.composite_size}",
            f"train.epochs={args.composite_epochs}",
            "train.batch_size=32",
            "train.lr=1e-3",
            "train.device=cpu",
            f"seed={seed}",
        ],
    )


def summary(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pamer-precision"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=["demo", "composite"], choices=["demo", "composite"])
    parser.add_argument("--composite-model", default="pamnet")
    parser.add_argument("--composite-size", type=int, default=28)
    parser.add_argument("--composite-epochs", type=int, default=4)
    parser.add_argument("--composite-subjects", type=int, default=68, help="the first N of the 68 subjects")
    parser.add_argument("--threads", type=int, default=0, help="train.threads (0: torch's default)")
    args = parser.parse_args()
    print(f"precision: {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}, {platform.processor() or 'cpu'}")
    threads = args.threads or torch.get_num_threads()
    print(f"  torch {torch.__version__}, {threads} threads; native bf16: {cpu_has_native_bf16()}")
    for name in args.sets:
        if name == "demo":
            cache, cache_dir = demo_set(args.out / "demo")

            def config_for(seed: int, cache_dir: Path = cache_dir) -> Config:
                return demo_config(cache_dir, model="pamnet", size=DEFAULT_SIZE, epochs=DEFAULT_EPOCHS, seed=seed)

            what = f"pamnet at {DEFAULT_SIZE} px, {DEFAULT_EPOCHS} epochs, batch 8, Adam 1e-3 (demo_config)"
        else:
            cache = learnable_composite(args.composite_size, args.composite_subjects)

            def config_for(seed: int) -> Config:
                return composite_config(args, seed)

            what = (
                f"{args.composite_model} at {args.composite_size} px, {args.composite_epochs} epochs, batch 32, "
                "Adam 1e-3"
            )
        print(f"\n{name}: {len(cache)} clips of {len(set(cache.subjects))} subjects; {what}")
        print(f"  {'seed':>4}  {'precision':<9} {'accuracy':>8} {'macro-F1':>8} {'seconds':>8}")
        scores: dict[str, dict[str, list[float]]] = {p: {"accuracy": [], "f1_macro": []} for p in PRECISIONS}
        for seed in args.seeds:
            for precision in PRECISIONS:
                config = config_for(seed)
                config.train.precision = precision
                config.train.threads = args.threads
                config.validate("--precision")
                start = time.perf_counter()
                run = args.out / "runs" / name / f"seed{seed}-{precision}"
                metrics = run_loso(config, run, "local", cache=cache, quiet=True)
                seconds = time.perf_counter() - start
                for key in ("accuracy", "f1_macro"):
                    scores[precision][key].append(metrics[key])
                print(
                    f"  {seed:>4}  {precision:<9} {metrics['accuracy']:>8.3f} {metrics['f1_macro']:>8.3f} "
                    f"{seconds:>8.0f}",
                    flush=True,
                )
        for precision in PRECISIONS:
            s = scores[precision]
            print(f"  mean  {precision:<9} accuracy {summary(s['accuracy'])}, macro-F1 {summary(s['f1_macro'])}")
        if len(args.seeds) > 1:
            gap = statistics.mean(scores["bfloat16"]["f1_macro"]) - statistics.mean(scores["float32"]["f1_macro"])
            spread = statistics.stdev(scores["float32"]["f1_macro"])
            verdict = "within" if abs(gap) <= spread else "BEYOND"
            print(f"  bf16 - float32 mean macro-F1 {gap:+.3f}: {verdict} float32's seed-to-seed std ({spread:.3f})")


if __name__ == "__main__":
    main()
