"""Full-LOSO speed on a composite-shaped synthetic set: float32 vs bfloat16, every executor, stacked vs one by one,
the bare model step.

The set lives in memory and has the MEGC2019 composite's shape: 442 clips of 68 subjects (uneven, 1 to 19 clips
each), three classes (250 negative, 109 positive, 83 surprise). Workloads (each its published recipe; the first four
run by default):

    ststnet      STSTNet: 28x28 flow input (u, v, strain), batch 256, 800 epochs, Adam 5e-5
    pamnet-28    pamnet at 28 px, batch 32, 40 epochs, Adam 1e-4 (configs/paper's recipe at a smaller input)
    pamnet-56    the same at 56 px
    pamnet-112   the same at 112 px
    pamnet-224   the same at 224 px (only when named)

For each workload, all in one run:

- float32 vs bfloat16 (`train.precision`, `--precisions`): the bare model step of each (steady: two untimed steps
  of each new model first), interleaved `--rounds` times, and their ratio (issue 19's target: pamnet's step at
  112 px at least 1.7x faster in bf16 on a CPU with native bf16); then everything below once per precision, and
  the full-LOSO ratio of each executor;
- the bare model step: forward + backward + Adam on ready batches of one fold's batch sizes (bf16 autocast and
  channels_last on CUDA, as `fit`), and one fold's `fit` over the same epochs: the engine's overhead per step
  (everything `fit` adds: shuffle, indexing, augmentation, normalisation, bookkeeping) as fit / bare - 1, the
  minimum over interleaved rounds so a burst of load hits both alike;
- each executor (`--executors`, default local, process, stacked, auto; ray if asked) on `--folds` folds for
  `--epochs` epochs: MEASURED wall time and samples/s (training clip-steps per second), and a PROJECTED full LOSO
  (68 folds x the recipe's epochs) = the full run's clip-steps / the measured samples/s. A projection from fewer
  folds than an executor runs at once (processes, a stack) understates that executor; the table says so.
- on CUDA: achieved TFLOP/s (training FLOPs by `count_flops`, convolutions and linear layers) beside a bf16
  matmul rate measured in the same run.

    python benchmarks/loso_speed.py                                   # everything, full runs (hours on a CPU)
    python benchmarks/loso_speed.py --quick                           # minutes: 2 folds x 1 epoch, auto only
    python benchmarks/loso_speed.py --folds 4 --epochs 3              # measured on 4 folds x 3 epochs, projected
    python benchmarks/loso_speed.py --workloads ststnet --executors local process --folds 2 --epochs 2
    python benchmarks/loso_speed.py --device cuda --executors stacked local --folds 68 --epochs 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pamer.config import Config, load_config
from pamer.engine.allocator import reuse_freed_memory
from pamer.engine.executors import choose_executor, clear_inputs, run_folds
from pamer.engine.fold import autocast, compute_dtype, cpu_has_native_bf16, dtype_name, fit, fold_plan
from pamer.engine.inputs import device_for, prepare_inputs
from pamer.engine.progress import LosoProgress
from pamer.errors import PamerError
from pamer.models import count_flops, create_model
from pamer.preprocess.cache import Cache

CLASSES = ("negative", "positive", "surprise")
CLASS_COUNTS = (250, 109, 83)
SUBJECTS = 68


@dataclass
class Workload:
    name: str
    model: str
    representation: str
    size: int
    batch: int
    epochs: int
    lr: float
    augment: bool  # the recipe's augmentation (STSTNet's authors use none: configs/peers/ststnet.yaml)


WORKLOADS = {
    "ststnet": Workload("ststnet", "ststnet", "flow", 28, 256, 800, 5e-5, False),
    **{f"pamnet-{s}": Workload(f"pamnet-{s}", "pamnet", "diff", s, 32, 40, 1e-4, True) for s in (28, 56, 112, 224)},
}
DEFAULT_WORKLOADS = ("ststnet", "pamnet-28", "pamnet-56", "pamnet-112")
PRECISIONS = ("float32", "bfloat16")


def composite_cache(size: int, flow_size: int, seed: int = 0) -> Cache:
    """442 random clips in MEGC2019 composite's shape: 68 subjects of 1-19 clips, three classes."""
    rng = np.random.default_rng(seed)
    per_subject = 1 + rng.multinomial(442 - SUBJECTS, rng.dirichlet(np.full(SUBJECTS, 2.0)))
    subjects = [f"s{i:02d}" for i, k in enumerate(per_subject) for _ in range(k)]
    labels = rng.permutation(np.repeat(np.arange(3), CLASS_COUNTS))
    n = len(subjects)
    onset = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    apex = np.clip(onset.astype(np.int16) + rng.integers(-8, 9, onset.shape), 0, 255).astype(np.uint8)
    flow = rng.normal(0, 1, (n, flow_size, flow_size, 3)).astype(np.float32)
    return Cache(
        onset=onset,
        apex=apex,
        labels=labels.astype(np.int64),
        subjects=subjects,
        clips=[f"clip{i:03d}" for i in range(n)],
        classes=CLASSES,
        config={"dataset": "composite-shaped synthetic", "size": size},
        flow=flow,
    )


def workload_config(w: Workload, args: argparse.Namespace, epochs: int, precision: str = "float32") -> Config:
    return load_config(
        None,
        [
            f"model.name={w.model}",
            f"data.representation={w.representation}",
            f"train.input_size={w.size}",
            f"train.batch_size={w.batch}",
            f"train.epochs={epochs}",
            f"train.lr={w.lr}",
            f"train.device={args.device}",
            f"train.threads={args.threads}",
            f"train.precision={precision}",
            "seed=0",
            *([] if w.augment else ["augment.hflip=0", "augment.rotation=0", "augment.crop_scale=1"]),
        ],
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_epochs(config: Config, batches: list[int], epochs: int, device: torch.device, warmup: int = 0) -> float:
    """Seconds of `epochs` epochs of forward + backward + Adam alone on ready batches, as `fit` steps them (in the
    dtype `train.precision` gives on `device`); `warmup` untimed steps on the first batch go first (the new model's
    first steps: the optimiser's state, oneDNN's choices for its tensors), so the time is that of a steady step."""
    torch.manual_seed(0)
    dtype = compute_dtype(config.train.precision, device)
    cuda = device.type == "cuda"
    model = create_model(config.model.name, num_classes=3, **config.model.args).to(device).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    s = config.train.input_size
    data = [(torch.randn(b, 3, s, s, device=device), torch.randint(0, 3, (b,), device=device)) for b in batches]
    if cuda:
        data = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in data]
    for x, y in data[:1] * warmup:
        with autocast(device, dtype):
            logits = model(x)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(logits.float(), y).backward()
        optimizer.step()
    sync(device)
    start = time.perf_counter()
    with reuse_freed_memory():  # glibc as `fit` trains with it (engine/allocator.py)
        for _ in range(epochs):
            for x, y in data:
                with autocast(device, dtype):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    sync(device)
    return time.perf_counter() - start


def fold_batches(w: Workload, cache: Cache) -> list[int]:
    """The batch sizes of fold 0's epoch (a last batch of one clip is skipped, as `fit` skips it)."""
    _, train_idx, _ = fold_plan(cache.subjects)[0]
    return [k for k in (min(w.batch, len(train_idx) - i) for i in range(0, len(train_idx), w.batch)) if k >= 2]


def precision_steps(w: Workload, args: argparse.Namespace, device: torch.device) -> dict[str, list[float]]:
    """Seconds per training step, bare (forward + backward + Adam on ready batches), of each of `--precisions`,
    interleaved `--rounds` times (at least once) so a burst of load hits them alike."""
    batches = [w.batch] * args.steps
    configs = {p: workload_config(w, args, 1, p) for p in args.precisions}
    if args.threads:
        torch.set_num_threads(args.threads)
    for config in configs.values():
        bare_epochs(config, batches[:1], 1, device)  # warm-up: first calls, oneDNN's and cuDNN's choices
    times: dict[str, list[float]] = {p: [] for p in configs}
    for _ in range(max(args.rounds, 1)):
        for p, config in configs.items():
            times[p].append(bare_epochs(config, batches, 1, device, warmup=2) / len(batches))
    return times


def overhead(w: Workload, args: argparse.Namespace, cache: Cache, device: torch.device, precision: str) -> dict:
    """Bare step vs one fold's `fit` over `--overhead-epochs` epochs, interleaved `--rounds` times."""
    epochs = args.overhead_epochs
    config = workload_config(w, args, epochs, precision)
    if args.threads:
        torch.set_num_threads(args.threads)
    inputs = prepare_inputs(cache, config, device)
    labels = np.asarray(cache.labels)
    _, train_idx, _ = fold_plan(cache.subjects)[0]
    batches = fold_batches(w, cache)
    bare_epochs(config, batches, 1, device)  # warm-up: first calls, allocator, cuDNN's choices
    fit(config, inputs, labels, 3, train_idx, seed=0)
    bare, fitted = [], []
    for _ in range(args.rounds):
        bare.append(bare_epochs(config, batches, epochs, device))
        sync(device)
        start = time.perf_counter()
        fit(config, inputs, labels, 3, train_idx, seed=0)
        sync(device)
        fitted.append(time.perf_counter() - start)
    samples = sum(batches) * epochs
    return {
        "bare": min(bare),
        "fit": min(fitted),
        "bare_median": statistics.median(bare),
        "fit_median": statistics.median(fitted),
        "samples": samples,
    }


def run_executor(
    name: str, w: Workload, args: argparse.Namespace, cache: Cache, folds: list[int], epochs: int, precision: str
) -> dict | None:
    """Wall time of `folds` on executor `name`, as `pamer loso` runs them (inputs made, workers started)."""
    config = workload_config(w, args, epochs, precision)
    device = device_for(config)
    try:
        choice = choose_executor(name, config, len(CLASSES), len(folds), stack=args.stack or None)
    except PamerError as err:  # an executor that cannot run this workload here
        print(f"  {name}: not run ({err})", file=sys.stderr)
        return None
    threads = torch.get_num_threads()
    clear_inputs()
    sync(device)
    start = time.perf_counter()
    try:
        with LosoProgress(len(folds), 0, epochs, quiet=True) as progress:
            outputs = list(run_folds(choice, config, cache, folds, progress, cache_source=cache))
    except Exception as err:  # an executor that cannot run here (no Ray, a refused network) is reported, not fatal
        print(f"  {name}: failed ({type(err).__name__}: {err})", file=sys.stderr)
        return None
    finally:
        clear_inputs()
        torch.set_num_threads(threads)
    sync(device)
    wall = time.perf_counter() - start
    plan = fold_plan(cache.subjects)
    samples = sum(len(plan[f][1]) for f in folds) * epochs
    # what the folds spent training (a stack's time is shared among its folds), spread over the folds run at once;
    # the rest of the wall time is start-up: inputs, worker processes, imports
    width = min(choice.workers or 1, len(folds))
    training = sum(o.seconds for o in outputs) / width
    return {
        "choice": choice,
        "wall": wall,
        "samples": samples,
        "training": training,
        "startup": wall - training,
        "width_now": width,
    }


def project(r: dict, full_samples: int, n_folds: int) -> float:
    """Full-LOSO wall time: the measured start-up plus the training time scaled to the full run's clip-steps
    (processes: spread over as many workers as the full run keeps busy)."""
    choice = r["choice"]
    scale = full_samples / r["samples"]
    width_now = r["width_now"]
    width_full = min(choice.workers or 1, n_folds)
    return max(r["startup"], 0.0) + r["training"] * scale * width_now / width_full


def matmul_rate(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    """bf16 matmul FLOP/s of this device (the ceiling the achieved TFLOP/s are read against)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def hours(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.1f} min"
        if seconds < 7200
        else f"{seconds / 3600:.2f} h"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(DEFAULT_WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--executors", nargs="+", default=["local", "process", "stacked", "auto"])
    parser.add_argument("--folds", type=int, default=0, help="folds measured (default: all 68)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs measured (default: the recipe's)")
    parser.add_argument(
        "--one-by-one-folds", type=int, default=0, help="folds measured on local/process/ray (default: --folds)"
    )
    parser.add_argument(
        "--one-by-one-epochs", type=int, default=0, help="epochs measured on local/process/ray (default: --epochs)"
    )
    parser.add_argument("--steps", type=int, default=5, help="steps per round of the float32 vs bf16 bare step")
    parser.add_argument("--overhead-epochs", type=int, default=2, help="epochs of the bare-step vs fit comparison")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds of the bare-step comparisons (0: skip bare vs fit)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="train.threads (0: each executor's own choice)")
    parser.add_argument("--stack", type=int, default=0, help="folds per stack (0: from free memory)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check in minutes: 2 folds x 1 epoch on auto, one round of 2 bare steps, no bare vs fit",
    )
    args = parser.parse_args()
    if args.quick:
        args.folds, args.epochs, args.executors, args.rounds, args.steps = 2, 1, ["auto"], 0, 2
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device here (torch {torch.__version__})")
    print(f"loso_speed: {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}, Python {platform.python_version()}")
    what = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or 'cpu'}"
    print(f"  device {what}; torch {torch.__version__}, {torch.get_num_threads()} threads by default")
    if not cuda:
        print(f"  native bf16 (avx512_bf16 or amx_bf16 in /proc/cpuinfo): {cpu_has_native_bf16()}")
    peak = matmul_rate(device) if cuda else None
    if peak is not None:
        print(f"  bf16 matmul (8192^3), measured now: {peak / 1e12:.0f} TFLOP/s")
    # frames as large as the largest diff workload's input (resized once per run, as a real cache would be)
    sizes = [WORKLOADS[w].size for w in args.workloads if WORKLOADS[w].representation == "diff"]
    cache = composite_cache(size=max(sizes, default=32), flow_size=28)
    plan = fold_plan(cache.subjects)
    print(f"  set: {len(cache)} clips, {len(plan)} subjects, classes {dict(zip(CLASSES, CLASS_COUNTS, strict=True))}")
    for name in args.workloads:
        w = WORKLOADS[name]
        full_samples = sum(len(train) for _, train, _ in plan) * w.epochs
        # per clip, counted on two (batch norm in training mode refuses one clip whose features are 1 x 1 at 28 px)
        flops = count_flops(w.model, w.size, batch=2, backward=True, num_classes=3) / 2
        print(
            f"\n{name}: {w.model}, {w.representation} {w.size}x{w.size}, batch {w.batch}, {w.epochs} epochs, "
            f"Adam {w.lr:g}; {flops / 1e9:.3g} GFLOP per training clip-step"
        )
        steps = precision_steps(w, args, device)
        for precision, t in steps.items():
            dtype = dtype_name(compute_dtype(precision, device))
            print(
                f"  MEASURED bare step, {precision} ({dtype}), batch {w.batch}, median of {len(t)} rounds x "
                f"{args.steps} steps: {1000 * statistics.median(t):.0f} ms (min {1000 * min(t):.0f} ms)"
            )
        if "float32" in steps and "bfloat16" in steps:
            ratios = [a / b for a, b in zip(steps["float32"], steps["bfloat16"], strict=True)]
            print(
                f"  bare step float32 / bfloat16: {statistics.median(ratios):.2f}x faster in bf16 (median of the "
                f"paired rounds; range {min(ratios):.2f}-{max(ratios):.2f}x)"
            )
        full: dict[str, dict[str, float]] = {}
        for precision in args.precisions:
            print(f"  -- {precision}")
            if args.rounds:
                o = overhead(w, args, cache, device, precision)
                print(
                    f"  MEASURED bare step vs fit, one fold x {args.overhead_epochs} epochs, best of {args.rounds}: "
                    f"bare {o['bare']:.3f} s ({o['samples'] / o['bare']:.0f} samples/s), fit {o['fit']:.3f} s "
                    f"({o['samples'] / o['fit']:.0f} samples/s): engine overhead "
                    f"{100 * (o['fit'] / o['bare'] - 1):+.1f} % (medians: "
                    f"{100 * (o['fit_median'] / o['bare_median'] - 1):+.1f} %)"
                )
            rows = run_executors(w, args, cache, plan, flops, peak, full_samples, precision)
            full[precision] = {executor: r["full"] for executor, r in rows.items()}
        if "float32" in full and "bfloat16" in full:
            for executor in full["float32"].keys() & full["bfloat16"].keys():
                ratio = full["float32"][executor] / full["bfloat16"][executor]
                print(f"  full LOSO {executor}, float32 / bfloat16 as above: {ratio:.2f}x faster in bf16")


def run_executors(
    w: Workload,
    args: argparse.Namespace,
    cache: Cache,
    plan: list,
    flops: float,
    peak: float | None,
    full_samples: int,
    precision: str,
) -> dict[str, dict]:
    """Each of `--executors` on the workload in `precision`: measured, projected to the full LOSO, printed."""
    cuda = args.device.startswith("cuda")
    rows = {}
    for executor in args.executors:
        # the stack gets --folds x --epochs; executors that train one fold at a time may get fewer
        kind = choose_executor(executor, workload_config(w, args, 1), len(CLASSES), len(plan)).executor
        n_folds, epochs = args.folds or len(plan), args.epochs or w.epochs
        if kind != "stacked":
            n_folds, epochs = args.one_by_one_folds or n_folds, args.one_by_one_epochs or epochs
        folds = list(range(min(n_folds, len(plan))))
        r = run_executor(executor, w, args, cache, folds, epochs, precision)
        if r is None:
            continue
        rows[executor] = r
        rate, steady = r["samples"] / r["wall"], r["samples"] / r["training"]
        line = (
            f"  MEASURED {executor:8s} [{r['choice'].describe()}]: {len(folds)} folds x {epochs} epochs "
            f"{r['wall']:.1f} s, {rate:.0f} samples/s ({steady:.0f} while training)"
        )
        if cuda and peak:
            line += f", {steady * flops / 1e12:.1f} TFLOP/s while training ({100 * steady * flops / peak:.0f} % of"
            line += " the bf16 matmul rate)"
        print(line)
        partial = len(folds) < len(plan) or epochs != w.epochs
        r["full"] = project(r, full_samples, len(plan)) if partial else r["wall"]
        r["label"] = "PROJECTED" if partial else "MEASURED "
        r["note"] = f"from {len(folds)} folds x {epochs} epochs; start-up {r['startup']:.1f} s + training"
        if kind == "stacked" and len(folds) < len(plan):
            r["note"] += f"; understated: a full run stacks up to {len(plan)} folds, this one {len(folds)}"
    for executor, r in rows.items():
        print(
            f"  {r['label']} full LOSO ({len(plan)} folds x {w.epochs} epochs) {executor:8s}: {hours(r['full'])} "
            f"({r['note']})"
        )
    if rows:
        best = min(rows.values(), key=lambda r: r["full"])
        if "auto" in rows:
            print(f"  default (auto) / fastest, full LOSO as above: {rows['auto']['full'] / best['full']:.2f}x")
        if "stacked" in rows and "local" in rows:
            ratio = rows["local"]["full"] / rows["stacked"]["full"]
            print(f"  stacked vs one by one (local), full LOSO as above: stacked {ratio:.2f}x as fast")
    return rows


if __name__ == "__main__":
    main()
