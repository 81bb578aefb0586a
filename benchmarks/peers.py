"""Time per LOSO of each peer network under its shipped config, on a synthetic set of the MEGC2019 composite's
shape (442 clips, 68 subjects, 3 classes): random flow for the flow peers, random onset/apex faces and an AU table
(the first 164 clips, SMIC's share, uncoded) for the peers designed from their papers (lbp_attention, madfn, on
their `*_composite.yaml` configs).

For each network: the one-off input preparation, wall time of a training epoch of one fold (the last subject held
out; measured on the second epoch, after model building and first-call warm-up), test prediction time, and the
projected time of the full LOSO at the config's epoch count (68 folds x epochs x epoch time + predictions).
`--full` instead runs the whole LOSO (`run_loso`, every fold at the config's epochs) and reports its wall time.

    python benchmarks/peers.py [--models ststnet dssn lbp_attention madfn] [--threads 0] [--device auto] [--full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pamer.config import load_config
from pamer.engine import run_loso
from pamer.engine.augment import channel_stats
from pamer.engine.fold import fit, fold_plan, predict_probs
from pamer.engine.inputs import as_inputs, device_for, network_inputs
from pamer.models.peers import DESIGNED, NAMES
from pamer.preprocess.cache import Cache

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "peers"
# each network's config: its own file, or for the designed peers their composite one
CONFIG_FILES = {**{name: f"{name}.yaml" for name in NAMES}, "lbp_attention": "lbp_attention_composite.yaml"}
CONFIG_FILES["madfn"] = "madfn_composite.yaml"
MODELS = [*NAMES, *(name for name in DESIGNED if name in CONFIG_FILES)]


def synthetic_composite(seed: int = 0, size: int = 64, clips: int = 442) -> Cache:
    """`clips` clips (the composite's 442) of random flow and random onset/apex frames over 68 subjects, 3 classes;
    an AU table of 12 AUs with SMIC's share of the composite (164 of 442) uncoded."""
    rng = np.random.default_rng(seed)
    per_subject = np.full(68, clips // 68)
    per_subject[: clips - per_subject.sum()] += 1
    subjects = [f"s{i + 1:02d}" for i, k in enumerate(per_subject) for _ in range(k)]
    n = len(subjects)
    aus = rng.integers(0, 2, (n, 12)).astype(np.float32)
    aus[: round(n * 164 / 442)] = np.nan
    return Cache(
        onset=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        apex=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        labels=rng.integers(0, 3, n).astype(np.int64),
        subjects=subjects,
        clips=[f"clip{i}" for i in range(n)],
        classes=("negative", "positive", "surprise"),
        config={"size": size, "representation": "flow"},
        flow=rng.normal(0, 1, (n, size, size, 3)).astype(np.float32),
        aus=aus,
        au_names=tuple(str(a) for a in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17)),
    )


def projected(name: str, cache: Cache, overrides: list[str]) -> str:
    config = load_config(CONFIGS / CONFIG_FILES[name], [*overrides, "train.epochs=2", "data.dataset=composite"])
    epochs = load_config(CONFIGS / CONFIG_FILES[name]).train.epochs
    device = device_for(config)
    t0 = time.perf_counter()
    inputs = network_inputs(cache, config, device)
    t_prep = time.perf_counter() - t0
    subject, train_idx, test_idx = fold_plan(cache.subjects)[-1]
    fold_clips = len(train_idx)
    stamps: list[float] = []
    result = fit(
        config, inputs, cache.labels, 3, train_idx, None, seed=0, on_epoch=lambda *_: stamps.append(time.perf_counter())
    )
    epoch = stamps[1] - stamps[0]
    t0 = time.perf_counter()
    # the training clips' normalisation of each input, as the fold computes it
    norms = [channel_stats(x[torch.as_tensor(train_idx, device=device)]) for x in as_inputs(inputs)]
    predict_probs(result.model, inputs, test_idx, *norms[0], config.train.batch_size, norms=norms)
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
    config = load_config(CONFIGS / CONFIG_FILES[name], [*overrides, "data.dataset=composite"])
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
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--full", action="store_true", help="run every fold at the config's epochs")
    parser.add_argument("--clips", type=int, default=442, help="fewer for a quick check that it runs (>= 136)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = synthetic_composite(clips=args.clips)
    overrides = [f"train.device={args.device}"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(cache)} clips, 68 subjects")
    for name in args.models:
        print(full(name, cache, overrides) if args.full else projected(name, cache, overrides), flush=True)


if __name__ == "__main__":
    main()
