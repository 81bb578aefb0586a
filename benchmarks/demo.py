"""`pamer demo` end to end: wall and CPU time of each stage, and the pooled LOSO accuracy it reaches.

Runs the real command (`pamer demo --quiet ...`) in a fresh folder, so generation, face alignment, LOSO and the
attention picture are all timed as a user sees them; the stage times come from the files each stage leaves.

    python benchmarks/demo.py [--out /tmp/pamer-demo-bench] [extra pamer demo options, e.g. --epochs 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

from typer.testing import CliRunner

from pamer.cli import app


def _cpu() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pamer-demo-bench"))
    args, extra = parser.parse_known_args()
    shutil.rmtree(args.out, ignore_errors=True)
    start, started, cpu = time.perf_counter(), time.time(), _cpu()
    result = CliRunner().invoke(app, ["demo", "--out", str(args.out), "--quiet", *extra])
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    if result.exit_code != 0:
        raise SystemExit(result.output)
    (run,) = list((args.out / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    # each stage's last file, in order: their times give the stages' durations
    stamps = {
        "set written": (args.out / "data" / "synthetic.json").stat().st_mtime,
        "cache written": max(p.stat().st_mtime for p in (args.out / "cache").glob("*/cache.json")),
        "LOSO done": (run / "metrics.json").stat().st_mtime,
        "attention picture": (run / "attention.png").stat().st_mtime,
    }
    print(f"pamer demo {' '.join(extra)}: wall {wall:.0f} s, CPU {cpu:.0f} s (this process and its workers)")
    previous = started
    for name, stamp in stamps.items():
        print(f"  {name}: {stamp - previous:.0f} s after the previous stage")
        previous = stamp
    provenance = json.loads((run / "provenance.json").read_text())
    print(f"  LOSO alone: {provenance['seconds_last_invocation']:.0f} s")
    print(
        f"pooled LOSO accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['f1_macro']:.3f}, UAR {metrics['uar']:.3f} "
        f"over {metrics['clips']} clips, {metrics['folds']} folds (chance {1 / len(metrics['classes']):.3f})"
    )


if __name__ == "__main__":
    main()
