"""Training-step throughput (forward + backward + Adam) of registered networks, all timed in one run.

    python benchmarks/train_step.py                                # resnet18, pamnet_backbone, pamnet at 112 and 224
    python benchmarks/train_step.py --models pamnet --sizes 224 --set stem_pool=False --steps 2
    python benchmarks/train_step.py --channels-last --profile pamnet

Models are timed in interleaved rounds (every model once per round, the median over rounds reported), so a burst
of load from other jobs on a shared machine hits all of them alike. GFLOP/s is the flop counter's count of one
training step (forward + backward, convolutions and linear layers) divided by the median step time.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import time
from typing import Any

import torch
from torch import nn

from pamer.models import count_flops, create_model


def _parse_override(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


class Runner:
    """One model, its optimiser and a fixed batch; `step()` runs one training step."""

    def __init__(self, name: str, size: int, args: argparse.Namespace, overrides: dict[str, Any]) -> None:
        torch.manual_seed(0)
        self.device = torch.device(args.device)
        self.model = create_model(name, num_classes=5, **overrides).to(self.device).train()
        self.x = torch.randn(args.batch, 3, size, size, device=self.device)
        self.y = torch.randint(0, 5, (args.batch,), device=self.device)
        if args.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.loss = nn.CrossEntropyLoss()

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.model(self.x), self.y).backward()
        self.optimizer.step()

    def timed(self, steps: int) -> float:
        """Seconds per step, averaged over `steps` steps."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps


def profile(runner: Runner, rows: int = 25) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    runner.step()
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(2):
            runner.step()
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "pamnet_backbone", "pamnet"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[112, 224])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="model option for every model, e.g. stem_pool=False")  # fmt: skip
    parser.add_argument("--profile", metavar="MODEL", help="profile one training step of MODEL at the first size")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = dict(_parse_override(o) for o in args.overrides)

    if args.profile:
        profile(Runner(args.profile, args.sizes[0], args, overrides))
        return

    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, batch {args.batch}, "
        f"channels_last {args.channels_last}, overrides {overrides or '-'}, {args.rounds} rounds x {args.steps} steps"
    )
    for size in args.sizes:
        runners = {name: Runner(name, size, args, overrides) for name in args.models}
        for runner in runners.values():
            for _ in range(args.warmup):
                runner.step()
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                times[name].append(runner.timed(args.steps))
        median = {name: statistics.median(t) for name, t in times.items()}
        print(f"\ninput {size}x{size}")
        print(f"{'model':<18}{'step s':>9}{'samples/s':>11}{'GFLOP/step':>12}{'GFLOP/s':>9}  spread")
        for name, seconds in median.items():
            gflop = count_flops(name, size, batch=args.batch, backward=True, **overrides) / 1e9
            spread = f"{min(times[name]):.3f}-{max(times[name]):.3f} s"
            rate = args.batch / seconds
            print(f"{name:<18}{seconds:>9.3f}{rate:>11.1f}{gflop:>12.1f}{gflop / seconds:>9.1f}  {spread}")
        for a, b in (("pamnet", "pamnet_backbone"), ("pamnet", "resnet18")):
            if a in median and b in median:
                print(f"step time {a} / {b}: {median[a] / median[b]:.2f}x")


if __name__ == "__main__":
    main()
