"""The run directory of a LOSO evaluation: configuration, provenance, one file per finished fold, resume checks.

config.yaml          the resolved configuration (a rerun with another config is refused)
provenance.json      code version, seed, library versions, device, cache fingerprint, timings
folds/<subject>.csv  one per finished fold, written atomically: clip, subject, [dataset,] true, pred,
                     prob_<class>... (and pred_e<k> per epoch with `oracle: true`)
metrics.json, confusion.png, report.md   written by `loso.run_loso` at the end
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

import pamer
from pamer.config import Config
from pamer.engine.fold import FoldOutput
from pamer.preprocess.cache import Cache

__all__ = [
    "RunDirError",
    "cache_fingerprint",
    "fold_file",
    "fold_frame",
    "open_run_dir",
    "provenance",
    "read_folds",
    "safe_name",
    "write_atomic",
]

# where and how fast a fold runs, not what it computes: a run may resume on another device or thread count
EXECUTION_KEYS = ("train.device:", "train.threads:")


class RunDirError(ValueError):
    """A run directory that cannot be resumed with the given configuration or cache (the message says why)."""


def safe_name(subject: str) -> str:
    """`subject` as a file name (anything but letters, digits, `.`, `_`, `-` becomes `_`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", subject)


def fold_file(out_dir: Path, subject: str) -> Path:
    """The fold file of `subject` in run directory `out_dir`."""
    return out_dir / "folds" / f"{safe_name(subject)}.csv"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cache_fingerprint(cache: Cache) -> str:
    """A hash of the cache's clips, subjects, labels, classes and pixels (resume refuses a changed cache)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([cache.clips, list(cache.subjects), list(cache.classes)]).encode())
    for array in (cache.labels, cache.onset, cache.apex, cache.flow):
        if array is not None:
            h.update(str(array.shape).encode())
            h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def provenance(config: Config, cache: Cache, executor: str) -> dict:
    """Code version, seed, library versions, device and the cache's fingerprint and configuration."""
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    device = config.train.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "pamer_version": pamer.__version__,
        "git": commit,
        "seed": config.seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu",
        "executor": executor,
        "cache": config.data.cache,
        "cache_fingerprint": cache_fingerprint(cache),
        "cache_config": cache.config,
    }


def open_run_dir(out_dir: Path, config: Config, provenance: dict) -> None:
    """Create `out_dir`, or check that the run in it has the same configuration and cache.

    Raises:
        RunDirError: `out_dir` holds a run with another configuration or cache.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "folds").mkdir(exist_ok=True)
    config_path = out_dir / "config.yaml"
    resolved = config.to_dict()
    if config_path.exists():
        old = yaml.safe_load(config_path.read_text()) or {}
        diff = [d for d in _differences(old, resolved) if not d.startswith(EXECUTION_KEYS)]
        if diff:
            raise RunDirError(
                f"{out_dir} holds a run with another configuration ({'; '.join(diff)}); "
                "use another --out directory or the same configuration to resume"
            )
        prov_path = out_dir / "provenance.json"
        if prov_path.exists():
            old_print = json.loads(prov_path.read_text()).get("cache_fingerprint")
            if old_print and old_print != provenance["cache_fingerprint"]:
                raise RunDirError(
                    f"{out_dir} was run on a cache with other contents than {config.data.cache or 'the given one'}; "
                    "use another --out directory"
                )
    else:
        write_atomic(config_path, yaml.safe_dump(resolved, sort_keys=False))


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} in the directory, {new!r} now"]


def fold_frame(output: FoldOutput, cache: Cache) -> pd.DataFrame:
    """A fold's predictions as its fold file's table (one row per test clip)."""
    classes = list(cache.classes)
    idx = output.test_idx
    columns: dict[str, list] = {
        "clip": [cache.clips[i] for i in idx],
        "subject": [cache.subjects[i] for i in idx],
    }
    if cache.datasets is not None:
        columns["dataset"] = [cache.datasets[i] for i in idx]
    columns["true"] = [classes[i] for i in np.asarray(cache.labels)[idx]]
    columns["pred"] = [classes[i] for i in output.probs.argmax(1)]
    frame = pd.DataFrame(columns)
    for c, name in enumerate(classes):
        frame[f"prob_{name}"] = output.probs[:, c]
    if output.epoch_preds is not None:
        for e, preds in enumerate(output.epoch_preds, start=1):
            frame[f"pred_e{e}"] = [classes[i] for i in preds]
    return frame


def read_folds(out_dir: Path, subjects: list[str]) -> pd.DataFrame:
    """The fold files of `subjects` as one table (read as text: no NA guessing of clip or class names)."""
    frames = [pd.read_csv(fold_file(out_dir, s), dtype=str, keep_default_na=False) for s in subjects]
    return pd.concat(frames, ignore_index=True)
