"""Time per LOSO of each peer network under its shipped config, on a synthetic flow set of the MEGC2019
composite's shape (442 clips, 68 subjects, 3 classes).

The peers that build their own inputs (`dual_atme`, `fgrmer`: `pamer.models.method`) run their
`configs/peers/<name>_composite.yaml` on the same set, with landmarks of a fixed face layout and random AU coding
(a third of the clips uncoded, as SMIC's part of the composite).

For each network: the one-off input preparation, wall time of a training epoch of one fold (the last subject held
out; measured on the second epoch, after model building and first-call warm-up), test prediction time, and the
projected time of the full LOSO at the config's epoch count (68 folds x epochs x epoch time + predictions).
`--full` instead runs the whole LOSO (`run_loso`, every fold at the config's epochs) and reports its wall time.

    python benchmarks/peers.py [--models ststnet dssn dual_atme fgrmer] [--threads 0] [--device auto] [--full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pamer.config import SHIPPED, load_config
from pamer.engine import run_loso
from pamer.engine.augment import channel_stats
from pamer.engine.fold import fit, fold_arguments, fold_plan, predict_probs
from pamer.engine.inputs import as_inputs, device_for, network_inputs
from pamer.models.peers import METHOD_NAMES, NAMES
from pamer.models.peers.fgrmer import AUS
from pamer.preprocess.cache import Cache

CONFIGS = SHIPPED / "peers"


def face_layout(size: int) -> np.ndarray:
    """68 (x, y) points of a plausible aligned face in a `size` crop: brows, eyes, nose, mouth, jaw."""
    f = np.zeros((68, 2))
    f[0:17] = np.c_[np.linspace(0.1, 0.9, 17), 0.5 + 0.4 * np.sin(np.linspace(0, np.pi, 17))]
    f[17:22] = np.c_[np.linspace(0.15, 0.4, 5), np.full(5, 0.2)]
    f[22:27] = np.c_[np.linspace(0.6, 0.85, 5), np.full(5, 0.2)]
    f[27:36] = np.c_[np.full(9, 0.5), np.linspace(0.3, 0.6, 9)]
    f[36:42] = np.c_[np.linspace(0.2, 0.38, 6), np.full(6, 0.33)]
    f[42:48] = np.c_[np.linspace(0.62, 0.8, 6), np.full(6, 0.33)]
    f[48:68] = np.c_[np.linspace(0.33, 0.67, 20), 0.72 + 0.08 * np.sin(np.linspace(0, 2 * np.pi, 20))]
    return f * size


def synthetic_composite(seed: int = 0, size: int = 64) -> Cache:
    """442 clips of random flow over 68 subjects (6 or 7 each), 3 classes, with landmarks and AU coding."""
    rng = np.random.default_rng(seed)
    per_subject = np.full(68, 442 // 68)
    per_subject[: 442 - per_subject.sum()] += 1
    subjects = [f"s{i + 1:02d}" for i, k in enumerate(per_subject) for _ in range(k)]
    n = len(subjects)
    frames = np.zeros((n, size, size, 3), dtype=np.uint8)  # unused by the flow representation
    aus = (rng.random((n, len(AUS))) < 0.3).astype(np.float32)
    aus[: n // 3] = np.nan  # uncoded clips, as SMIC's
    return Cache(
        onset=frames,
        apex=frames,
        labels=rng.integers(0, 3, n).astype(np.int64),
        subjects=subjects,
        clips=[f"clip{i}" for i in range(n)],
        classes=("negative", "positive", "surprise"),
        config={"size": size, "representation": "flow"},
        flow=rng.normal(0, 1, (n, size, size, 3)).astype(np.float32),
        aus=aus,
        au_names=AUS,
        landmarks=np.broadcast_to(face_layout(size), (n, 2, 68, 2)).astype(np.float32).copy(),
    )


def config_path(name: str) -> Path:
    """The shipped config of a peer: the composite one for the peers with configs per dataset."""
    return CONFIGS / (f"{name}_composite.yaml" if name in METHOD_NAMES else f"{name}.yaml")


def projected(name: str, cache: Cache, overrides: list[str]) -> str:
    config = load_config(config_path(name), [*overrides, "train.epochs=2"])
    epochs = load_config(config_path(name)).train.epochs
    device = device_for(config)
    t0 = time.perf_counter()
    inputs = network_inputs(cache, config, device)
    t_prep = time.perf_counter() - t0
    subject, train_idx, test_idx = fold_plan(cache.subjects)[-1]
    fold_clips = len(train_idx)
    stamps: list[float] = []
    result = fit(
        config,
        inputs,
        cache.labels,
        3,
        train_idx,
        None,
        seed=0,
        on_epoch=lambda *_: stamps.append(time.perf_counter()),
        fold_args=fold_arguments(config, cache, train_idx),
    )
    epoch = stamps[1] - stamps[0]
    norms = [channel_stats(x[torch.as_tensor(train_idx, device=device)]) for x in as_inputs(inputs)]
    t0 = time.perf_counter()
    predict_probs(result.model, inputs, test_idx, result.mean, result.std, config.train.batch_size, norms=norms)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_eval = time.perf_counter() - t0
    folds = len(set(cache.subjects))
    total = folds * (epochs * epoch + t_eval) + t_prep
    return (
        f"{name} ({config.train.input_size} px, batch {config.train.batch_size}, {device}): prepare inputs "
        f"{t_prep:.2f} s; epoch of {fold_clips} clips {epoch:.3f} s ({fold_clips / epoch:.0f} samples/s); "
        f"test prediction {t_eval:.3f} s; projected LOSO ({folds} folds x {epochs} epochs) {total / 3600:.2f} h"
    )


def full(name: str, cache: Cache, overrides: list[str]) -> str:
    config = load_config(config_path(name), overrides)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        metrics = run_loso(config, Path(out) / name, "local", cache=cache, quiet=True)
        seconds = time.perf_counter() - t0
    return (
        f"{name} ({config.train.input_size} px, {config.train.epochs} epochs, {device_for(config)}): full LOSO "
        f"{metrics['folds']} folds in {seconds / 60:.1f} min (UF1 {metrics['f1_macro']:.3f} on random flow)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[*NAMES, *METHOD_NAMES], choices=[*NAMES, *METHOD_NAMES])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--full", action="store_true", help="run every fold at the config's epochs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = synthetic_composite()
    overrides = [f"train.device={args.device}"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(cache)} clips, 68 subjects")
    for name in args.models:
        print(full(name, cache, overrides) if args.full else projected(name, cache, overrides), flush=True)


if __name__ == "__main__":
    main()
