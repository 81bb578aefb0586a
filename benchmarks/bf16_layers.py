"""Where pamnet's bfloat16 training step gains on float32, convolution by convolution (CPU).

One training step (forward + backward + Adam, batch `--batch`, `--size` px, as `loso_speed`'s bare step) is
profiled with torch.profiler in float32 and under bf16 autocast; for each convolution shape the time of its forward
(`aten::mkldnn_convolution`) and of its backward (`aten::convolution_backward`: data and weight gradients together)
is printed per step in both, with their ratio, largest float32 time first, and the totals of each kind. Then oneDNN's
own timing of each primitive (its verbose mode, on for the same number of further steps) splits the backward into
its data and weight gradients and names the kernel oneDNN chose for each: in bf16 on a CPU without AMX the weight
gradient runs on an older kernel (`jit_bf16`) and gains least.

    python benchmarks/bf16_layers.py                    # pamnet at 112 px, batch 32, 3 profiled steps
    python benchmarks/bf16_layers.py --size 224 --steps 2
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from pamer.engine.fold import autocast
from pamer.models import create_model

KINDS = {"aten::mkldnn_convolution": "forward", "aten::convolution_backward": "backward"}


def training_step(dtype: torch.dtype, size: int, batch: int) -> Callable[[], None]:
    """One steady training step of pamnet in `dtype` (three untimed steps done: the optimiser's state, oneDNN's
    choices)."""
    torch.manual_seed(0)
    model = create_model("pamnet", num_classes=3).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 3, (batch,))
    device = torch.device("cpu")

    def step() -> None:
        with autocast(device, dtype):
            logits = model(x)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(logits.float(), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    return step


def conv_times(step: Callable[[], None], steps: int) -> dict[tuple[str, str], float]:
    """Milliseconds per step of each (kind, shapes) convolution, by torch.profiler."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    times: dict[tuple[str, str], float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key in KINDS:
            shapes = " ".join("x".join(map(str, s)) for s in event.input_shapes[:3] if s)
            times[KINDS[event.key], shapes] += event.self_cpu_time_total / 1000 / steps
    return times


def primitive_times(step: Callable[[], None], steps: int) -> dict[tuple[str, str], float]:
    """Milliseconds per step of each (primitive and propagation, implementation) by oneDNN's verbose mode.

    oneDNN prints one line per executed primitive on the C stdout, ending with its time in ms; the lines are caught
    by pointing file descriptor 1 at a temporary file for the duration.
    """
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as log:
        os.dup2(log.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                for _ in range(steps):
                    step()
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        lines = log.read().splitlines()
    times: dict[tuple[str, str], float] = defaultdict(float)
    for line in lines:
        fields = line.split(",")
        # onednn_verbose,v1,primitive,exec,cpu,<primitive>,<implementation>,<propagation>,...,<ms>
        if line.startswith("onednn_verbose") and fields[3] == "exec" and fields[2] == "primitive":
            kind = fields[5] if fields[7] == "undef" else f"{fields[5]} {fields[7]}"
            times[kind, fields[6]] += float(fields[-1]) / steps
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps of each dtype")
    args = parser.parse_args()
    print(f"bf16_layers: {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}, torch {torch.__version__}, ", end="")
    print(f"{torch.get_num_threads()} threads; pamnet at {args.size} px, batch {args.batch}, {args.steps} steps each")
    f32_step = training_step(torch.float32, args.size, args.batch)
    b16_step = training_step(torch.bfloat16, args.size, args.batch)
    f32, b16 = conv_times(f32_step, args.steps), conv_times(b16_step, args.steps)
    print(f"  {'kind':8s} {'input, (grad,) weight':58s} {'float32':>9s} {'bf16':>9s}  ratio")
    for key in sorted(f32, key=lambda k: -f32[k]):
        if key in b16 and f32[key] >= 1.0:
            print(f"  {key[0]:8s} {key[1]:58s} {f32[key]:7.1f}ms {b16[key]:7.1f}ms  {f32[key] / b16[key]:.2f}x")
    for kind in ("forward", "backward"):
        a = sum(t for (k, _), t in f32.items() if k == kind)
        b = sum(t for (k, _), t in b16.items() if k == kind)
        print(f"  all {kind} convolutions: float32 {a:.0f} ms, bf16 {b:.0f} ms per step, {a / b:.2f}x")
    print("oneDNN's own time per step of each primitive (verbose mode), and the kernel of each in bf16:")
    f32, b16 = primitive_times(f32_step, args.steps), primitive_times(b16_step, args.steps)
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for times, column in ((f32, 0), (b16, 1)):
        for (kind, _), ms in times.items():
            by_kind[kind][column] += ms
    for kind, (a, b) in sorted(by_kind.items(), key=lambda item: -item[1][0]):
        if a >= 1.0:
            kernels = ", ".join(sorted({impl for k, impl in b16 if k == kind}))
            print(f"  {kind:31s} {a:7.1f}ms {b:7.1f}ms  {a / b:.2f}x   {kernels}")
    rounds = {torch.float32: [], torch.bfloat16: []}
    for _ in range(args.steps):  # unprofiled steps, interleaved
        for dtype, step in ((torch.float32, f32_step), (torch.bfloat16, b16_step)):
            start = time.perf_counter()
            step()
            rounds[dtype].append((time.perf_counter() - start) * 1000)
    a, b = (statistics.median(rounds[d]) for d in (torch.float32, torch.bfloat16))
    primitives = [sum(times.values()) for times in (f32, b16)]
    print(f"  whole step (median of {args.steps}, no profiler)  {a:7.1f}ms {b:7.1f}ms  {a / b:.2f}x")
    rest = (a - primitives[0], b - primitives[1])
    print(f"  the step outside oneDNN           {rest[0]:7.1f}ms {rest[1]:7.1f}ms  {rest[0] / rest[1]:.2f}x")


if __name__ == "__main__":
    main()
