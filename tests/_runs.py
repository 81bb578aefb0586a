"""Run directories for report tests, written by the engine's own functions from chosen predictions.

`write_run` builds what `pamer loso` leaves behind (config.yaml, provenance.json, one fold file per subject,
metrics.json from `collect_metrics`) without training, so a test knows every prediction, on a cache from
`_engine.make_cache` whose subjects, labels, reader name, protocol and clips' datasets the test chooses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pamer.config import Config, load_config
from pamer.engine.fold import FoldOutput, fold_plan
from pamer.engine.loso import collect_metrics
from pamer.engine.rundir import fold_frame, hold_run_dir, open_run_dir, provenance, run_stamp, write_fold
from pamer.outputs import write_atomic
from pamer.preprocess.cache import Cache


def full_size_clips(subjects: int, clips: int) -> list[str]:
    """Subject names `s000`.. for `clips` clips spread as evenly as possible over `subjects` subjects (a run fills a
    published column only with the dataset's full clip count: 246 for CASME II 5-class, 442 for the composite)."""
    return [f"s{i * subjects // clips:03d}" for i in range(clips)]


def config_for(*overrides: str) -> Config:
    return load_config(None, ["model.name=pamnet_test", "train.epochs=1", *overrides])


def write_run(
    out: Path, cache: Cache, preds: np.ndarray, config: Config, oracle_preds: np.ndarray | None = None
) -> dict:
    """Write a finished run directory in which clip i was predicted class `preds[i]` (and, with `oracle_preds` and
    a config of one epoch with `oracle=true`, `oracle_preds[i]` after that epoch); return its metrics."""
    preds = np.asarray(preds, dtype=np.int64)
    run_provenance = provenance(config, cache, "local")
    with hold_run_dir(out):
        open_run_dir(out, config, run_provenance)
    for subject, _, test in fold_plan(cache.subjects):
        probs = np.eye(len(cache.classes), dtype=np.float32)[preds[test]]
        epochs = None if oracle_preds is None else np.asarray(oracle_preds, dtype=np.int64)[None, test]
        output = FoldOutput(subject, test, probs, epochs, [], 0.0)
        frame = fold_frame(output, cache, run_stamp(config, cache))
        write_fold(out, subject, frame)
    metrics = collect_metrics(out, cache, config)
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_atomic(out / "provenance.json", json.dumps(run_provenance, indent=2, default=str) + "\n")
    return metrics
