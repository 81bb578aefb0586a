"""Adam's own step on a network's parameters: torch's per-parameter loop (what `engine.fold.make_optimizer` builds on
a CPU), its `foreach` and its `fused` implementations, timed against each other in one run.

Every implementation updates its own copy of the same network with the same gradients (fresh random ones each step,
as a training step's would be), so besides the time per step the script reports how far each one's parameters end up
from the loop's after `--steps` steps: 0 means bit-identical, which `foreach` is on a CPU and `fused` is not.

    python benchmarks/adam_step.py                   # pamnet's 11.3 M parameters, Adam 1e-4, 2 threads
    python benchmarks/adam_step.py --model ststnet --weight-decay 1e-4
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch

from pamer.models import create_model

IMPLEMENTATIONS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pamnet")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per implementation per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=args.classes)
    nets = {name: copy.deepcopy(model) for name in IMPLEMENTATIONS}
    optimizers = {
        name: torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay, **options)
        for (name, options), net in zip(IMPLEMENTATIONS.items(), nets.values(), strict=True)
    }
    params = list(model.parameters())
    print(
        f"{platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.model}: "
        f"{sum(p.numel() for p in params) / 1e6:.2f} M parameters in {len(params)} tensors; Adam lr {args.lr}, "
        f"weight decay {args.weight_decay}; median of {args.rounds} interleaved rounds of {args.steps} steps"
    )

    times: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    for round_ in range(args.rounds + 1):  # round 0 is a warm-up: Adam's state is created on the first step
        draws = [[torch.randn_like(p) * 1e-3 for p in params] for _ in range(args.steps)]
        for name in IMPLEMENTATIONS:
            seconds = 0.0
            for grads in draws:
                for p, g in zip(nets[name].parameters(), grads, strict=True):
                    p.grad = g.clone()
                start = time.perf_counter()
                optimizers[name].step()
                seconds += time.perf_counter() - start
            if round_:
                times[name].append(seconds / args.steps)

    reference = torch.cat([p.detach().flatten() for p in nets["loop"].parameters()])
    print(f"{'implementation':<16}{'ms/step':>9}  {'spread ms':<14}{'max |param - loop|':>20}")
    for name, values in times.items():
        flat = torch.cat([p.detach().flatten() for p in nets[name].parameters()])
        spread = f"{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}"
        deviation = (flat - reference).abs().max().item()
        print(f"{name:<16}{statistics.median(values) * 1e3:>9.1f}  {spread:<14}{deviation:>20.3g}")


if __name__ == "__main__":
    main()
