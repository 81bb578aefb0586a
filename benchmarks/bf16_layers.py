"""Where pamnet's bfloat16 training step gains on float32, convolution by convolution (CPU).

One training step (forward + backward + Adam, batch `--batch`, `--size` px, as `loso_speed`'s bare step) is
profiled with torch.profiler in float32 and under bf16 autocast; for each convolution shape the time of its forward
(`aten::mkldnn_convolution`) and of its backward (`aten::convolution_backward`: data and weight gradients together)
is printed per step in both, with their ratio, largest float32 time first, and the totals of each kind. The
backward-weights kernels are where bf16 gains least; `ONEDNN_VERBOSE=1` names the oneDNN implementation of each.

    python benchmarks/bf16_layers.py                    # pamnet at 112 px, batch 32, 3 profiled steps
    python benchmarks/bf16_layers.py --size 224 --steps 2
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from pamer.engine.fold import autocast
from pamer.models import create_model

KINDS = {"aten::mkldnn_convolution": "forward", "aten::convolution_backward": "backward"}


def conv_times(dtype: torch.dtype, size: int, batch: int, steps: int) -> dict[tuple[str, str], float]:
    """Milliseconds per step of each (kind, shapes) convolution in `dtype`."""
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

    for _ in range(3):  # steady steps: the optimiser's state, oneDNN's choices
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    times: dict[tuple[str, str], float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key in KINDS:
            shapes = " ".join("x".join(map(str, s)) for s in event.input_shapes[:3] if s)
            times[KINDS[event.key], shapes] += event.self_cpu_time_total / 1000 / steps
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps of each dtype")
    args = parser.parse_args()
    print(f"bf16_layers: {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}, torch {torch.__version__}, ", end="")
    print(f"{torch.get_num_threads()} threads; pamnet at {args.size} px, batch {args.batch}, {args.steps} steps each")
    f32 = conv_times(torch.float32, args.size, args.batch, args.steps)
    b16 = conv_times(torch.bfloat16, args.size, args.batch, args.steps)
    print(f"  {'kind':8s} {'input, (grad,) weight':58s} {'float32':>9s} {'bf16':>9s}  ratio")
    for key in sorted(f32, key=lambda k: -f32[k]):
        if key in b16 and f32[key] >= 1.0:
            print(f"  {key[0]:8s} {key[1]:58s} {f32[key]:7.1f}ms {b16[key]:7.1f}ms  {f32[key] / b16[key]:.2f}x")
    for kind in ("forward", "backward"):
        a = sum(t for (k, _), t in f32.items() if k == kind)
        b = sum(t for (k, _), t in b16.items() if k == kind)
        print(f"  all {kind} convolutions: float32 {a:.0f} ms, bf16 {b:.0f} ms per step, {a / b:.2f}x")


if __name__ == "__main__":
    main()
