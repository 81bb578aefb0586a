"""The run directory of a LOSO evaluation: configuration, provenance, one file per finished fold, resume checks.

config.yaml          the resolved configuration (a rerun with another config is refused)
provenance.json      code version, seed, library versions, device, cache fingerprint and config hash (written
                     before the first fold, so a resume on another cache is refused), timings
folds/<subject>.csv  one per finished fold, written atomically: clip, subject, [dataset,] true, pred,
                     prob_<class>... (and pred_e<k> per epoch with `oracle: true`), then the stamp of what it was
                     computed from and on: cache_fingerprint, config_hash, device, dtype, threads
metrics.json, confusion.png, report.md   written by `loso.run_loso` at the end

Every fold file is checked when read back (`read_fold`): its clips are the fold plan's test clips of its subject,
labels are the cache's, probabilities finite and consistent with `pred`, its stamp the run's; a file that is not
is refused by name, with what to do (delete it to retrain that fold).
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
from pamer.engine.fold import FoldOutput, fold_plan
from pamer.engine.inputs import device_for
from pamer.errors import PamerError
from pamer.outputs import os_error_text, write_problem
from pamer.preprocess.cache import Cache

__all__ = [
    "EXECUTION_COLUMNS",
    "STAMP_COLUMNS",
    "RunDirError",
    "cache_fingerprint",
    "check_execution",
    "config_hash",
    "execution_of",
    "fold_file",
    "fold_frame",
    "open_run_dir",
    "provenance",
    "read_fold",
    "read_folds",
    "run_stamp",
    "safe_name",
    "write_atomic",
]

# where and how fast a fold runs, not what it computes: the config check lets them differ on resume; whether the
# folds may then mix devices, dtypes or thread counts is `check_execution`'s question
EXECUTION_KEYS = ("train.device:", "train.threads:")
# the stamp every fold file ends with: what it was computed from, then what on
STAMP_COLUMNS = ("cache_fingerprint", "config_hash", "device", "dtype", "threads")
EXECUTION_COLUMNS = ("device", "dtype", "threads")


class RunDirError(PamerError):
    """A run directory that cannot be resumed with the given configuration or cache (the message says why)."""


def safe_name(subject: str) -> str:
    """`subject` as a file name (anything but letters, digits, `.`, `_`, `-` becomes `_`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", subject)


def fold_file(out_dir: Path, subject: str) -> Path:
    """The fold file of `subject` in run directory `out_dir`."""
    return out_dir / "folds" / f"{safe_name(subject)}.csv"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it: a reader never sees half a file.

    Raises:
        RunDirError: the write failed (read-only folder, full disk, ...), naming `path` and why.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise RunDirError(f"cannot write {path}: {os_error_text(error)}") from None


def cache_fingerprint(cache: Cache) -> str:
    """A hash of the cache's clips, subjects, labels, classes, datasets of origin, pixels, AU table and landmarks
    (resume refuses a changed cache). An array the cache does not hold (the onset of an apex-only cache) is named
    as absent."""
    h = hashlib.blake2b(digest_size=16)
    names = [cache.clips, list(cache.subjects), list(cache.classes)]
    if cache.datasets is not None:  # appended only when present: fingerprints of older caches stay as they were
        names.append(list(cache.datasets))
    h.update(json.dumps(names).encode())
    arrays = {
        "labels": cache.labels,
        "onset": cache.onset,
        "apex": cache.apex,
        "flow": cache.flow,
        "frames": cache.frames,
        # a model may read them (AU graphs, landmark patches); absent from hand-made caches, so added when present
        "aus": cache.aus,
        "landmarks": cache.landmarks,
    }
    if cache.au_names is not None:
        h.update(json.dumps(list(cache.au_names)).encode())
    for name, array in arrays.items():
        if array is None and name in ("onset", "apex"):
            h.update(f"no {name}".encode())
        if array is not None:
            h.update(str(array.shape).encode())
            h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def config_hash(config: Config) -> str:
    """A hash of what a fold computes from: the configuration without where it runs (`train.device`,
    `train.threads`) and without the cache's path (its contents are the cache fingerprint)."""
    values = config.to_dict()
    values["train"] = {k: v for k, v in values["train"].items() if k not in ("device", "threads")}
    values["data"] = {k: v for k, v in values["data"].items() if k != "cache"}
    return hashlib.blake2b(json.dumps(values, sort_keys=True).encode(), digest_size=16).hexdigest()


def run_stamp(config: Config, cache: Cache) -> dict[str, str]:
    """What every fold of a run must be computed from: the cache fingerprint and the config hash."""
    return {"cache_fingerprint": cache_fingerprint(cache), "config_hash": config_hash(config)}


def provenance(config: Config, cache: Cache, executor: str, device: torch.device | None = None) -> dict:
    """Code version, seed, library versions, this invocation's device, the cache's fingerprint and configuration,
    and the config hash.

    Args:
        device: the device the folds run on (default: `device_for(config)`, which refuses a device not here).
    """
    device = device_for(config) if device is None else device
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
    return {
        "pamer_version": pamer.__version__,
        "git": commit,
        "seed": config.seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "executor": executor,
        "cache": config.data.cache,
        **run_stamp(config, cache),
        "cache_config": cache.config,
    }


def open_run_dir(out_dir: Path, config: Config, provenance: dict) -> None:
    """Create `out_dir`, or check that the run in it has the same configuration and cache; a new run's
    `provenance.json` is written now, before its first fold, so that a resume on another cache is refused.

    Raises:
        RunDirError: `out_dir` cannot be written (a file, read-only, ...), holds a run with another configuration
            or cache, or its `config.yaml` / `provenance.json` is damaged.
    """
    problem = write_problem(out_dir, create=True)
    if problem is not None:
        raise RunDirError(f"cannot use {out_dir} as a run directory: {problem}")
    (out_dir / "folds").mkdir(exist_ok=True)
    config_path = out_dir / "config.yaml"
    prov_path = out_dir / "provenance.json"
    resolved = config.to_dict()
    if config_path.exists():
        try:
            old = yaml.safe_load(config_path.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise RunDirError(f"{config_path} is damaged ({error}); use another --out directory") from None
        diff = [d for d in _differences(old, resolved) if not d.startswith(EXECUTION_KEYS)]
        if diff:
            raise RunDirError(
                f"{out_dir} holds a run with another configuration ({'; '.join(diff)}); "
                "use another --out directory or the same configuration to resume"
            )
    else:
        write_atomic(config_path, yaml.safe_dump(resolved, sort_keys=False))
    if prov_path.exists():
        try:
            old_prov = json.loads(prov_path.read_text())
            old_print = old_prov["cache_fingerprint"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            raise RunDirError(
                f"{prov_path} is damaged ({type(error).__name__}: {error}); it records which cache the run's folds "
                "were trained on, so the run cannot be resumed safely: use another --out directory"
            ) from None
        if old_print != provenance["cache_fingerprint"]:
            raise RunDirError(
                f"{out_dir} was run on a cache with other contents (fingerprint {old_print}) than "
                f"{config.data.cache or 'the given one'} (fingerprint {provenance['cache_fingerprint']}); "
                "use another --out directory, or the cache the run was made with"
            )
    else:
        write_atomic(prov_path, json.dumps(provenance, indent=2, default=str) + "\n")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} in the directory, {new!r} now"]


def fold_frame(output: FoldOutput, cache: Cache, stamp: dict[str, str]) -> pd.DataFrame:
    """A fold's predictions as its fold file's table (one row per test clip), stamped with `run_stamp` and where
    the fold ran."""
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
    for name, value in {**stamp, **execution_of(output)}.items():
        frame[name] = value
    return frame


def execution_of(output: FoldOutput) -> dict[str, str]:
    """Where a fold ran, as its fold file records it: device, dtype and threads (as text)."""
    return {"device": output.device, "dtype": output.dtype, "threads": str(output.threads)}


def read_fold(
    out_dir: Path, subject: str, test_idx: np.ndarray, cache: Cache, stamp: dict[str, str], epochs: int | None = None
) -> pd.DataFrame:
    """The fold file of `subject`, checked against what it must hold; read as text (no NA guessing of names).

    Args:
        test_idx: the fold plan's test clips of `subject` (indices into the cache).
        stamp: the run's `run_stamp`: the file must have been computed from the same cache and configuration.
        epochs: with `oracle: true`, the number of epochs: `pred_e1`..`pred_e<epochs>` must be there.

    Raises:
        RunDirError: an empty or unreadable file, missing columns, other clips than the plan's (rows deleted or
            added), a label that is not one of the cache's classes or not the clip's, probabilities that are not
            finite or do not give `pred`, or another cache fingerprint or config hash; the message names the file
            and says to delete it, so the fold is trained again.
    """
    path = fold_file(out_dir, subject)
    fix = f"delete it to train fold {subject} again"
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        what = "is empty" if isinstance(error, pd.errors.EmptyDataError) else f"cannot be read ({error})"
        raise RunDirError(f"fold file {path} {what}; {fix}") from None
    classes = list(cache.classes)
    probs = [f"prob_{c}" for c in classes]
    oracle = [f"pred_e{e}" for e in range(1, epochs + 1)] if epochs else []
    missing = [c for c in ("clip", "subject", "true", "pred", *probs, *oracle, *STAMP_COLUMNS) if c not in table]
    if missing:
        raise RunDirError(
            f"fold file {path} lacks the columns {', '.join(missing)} (written by an older pamer?); {fix}"
        )
    for key in ("cache_fingerprint", "config_hash"):
        found = sorted(set(table[key]))
        if found != [stamp[key]]:
            raise RunDirError(
                f"fold file {path} was computed with {key} {', '.join(found)}, this run has {stamp[key]} "
                f"(another cache or configuration); {fix}, or use another --out directory"
            )
    want = [cache.clips[i] for i in test_idx]
    if table["clip"].tolist() != want or set(table["subject"]) != {subject}:
        got = table["clip"].tolist()
        lost, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        details = ([f"missing {', '.join(lost[:5])}"] if lost else []) + (
            [f"not of this fold: {', '.join(extra[:5])}"] if extra else []
        )
        raise RunDirError(
            f"fold file {path} holds {len(got)} clips, the fold plan's test subject {subject} has {len(want)} "
            f"({'; '.join(details) or 'in another order, or of another subject'}): edited or damaged; {fix}"
        )
    for column in ("true", "pred", *oracle):
        wrong = sorted(set(table[column]) - set(classes))
        if wrong:
            raise RunDirError(
                f"fold file {path}: column {column} holds {', '.join(map(repr, wrong))}, not a class of the cache "
                f"({', '.join(classes)}); {fix}"
            )
    truth = [classes[i] for i in np.asarray(cache.labels)[test_idx]]
    if table["true"].tolist() != truth:
        raise RunDirError(f"fold file {path}: its true labels are not the cache's labels of its clips; {fix}")
    try:
        values = table[probs].to_numpy(dtype=np.float64)
    except ValueError:
        raise RunDirError(f"fold file {path}: a probability is not a number; {fix}") from None
    if not np.isfinite(values).all() or np.abs(values.sum(1) - 1).max() > 1e-6:
        raise RunDirError(f"fold file {path}: its probabilities are not finite or do not sum to 1; {fix}")
    if table["pred"].tolist() != [classes[i] for i in values.argmax(1)]:
        raise RunDirError(f"fold file {path}: its pred column is not the most probable class of each clip; {fix}")
    return table


def read_folds(
    out_dir: Path, cache: Cache, stamp: dict[str, str], epochs: int | None = None, allow_mixed: bool = False
) -> pd.DataFrame:
    """Every fold file of the cache's fold plan as one table, each checked by `read_fold`, in plan order.

    Raises:
        RunDirError: a fold file is missing or wrong (see `read_fold`), or the folds ran on other devices, dtypes
            or thread counts and `allow_mixed` is off (see `check_execution`).
    """
    tables = [read_fold(out_dir, s, test, cache, stamp, epochs) for s, _, test in fold_plan(cache.subjects)]
    table = pd.concat(tables, ignore_index=True)
    check_execution(out_dir, table, None, allow_mixed)
    return table


def check_execution(out_dir: Path, folds: pd.DataFrame, now: dict[str, str] | None, allow_mixed: bool) -> None:
    """Refuse a run whose folds would mix devices, dtypes or thread counts (their numbers differ: bfloat16 on CUDA,
    ~1e-9 between thread counts), unless `allow_mixed`.

    Args:
        folds: rows of the run's fold files so far (their `device`, `dtype`, `threads` columns).
        now: where the next folds run (`execution_of`, or some of its keys when the rest is not known yet), or
            None to check the fold files among themselves.

    Raises:
        RunDirError: naming what would be mixed and the options.
    """
    if allow_mixed or folds.empty:
        return
    keys = list(EXECUTION_COLUMNS) if now is None else [k for k in EXECUTION_COLUMNS if k in now]
    kinds = [dict(zip(keys, row, strict=True)) for row in folds[keys].drop_duplicates().itertuples(index=False)]
    if now is not None and {k: now[k] for k in keys} not in kinds:
        kinds.append({k: now[k] for k in keys})
    if len(kinds) > 1:
        described = " and ".join(
            " ".join(k[key] for key in ("device", "dtype") if key in k)
            + (f" with {k['threads']} threads" if "threads" in k else "")
            for k in kinds
        )
        raise RunDirError(
            f"the folds of {out_dir} would mix {described}, which give different numbers; rerun with the "
            "train.device and train.threads (and executor) the run started with, or pass --allow-mixed-devices "
            "to mix them (each fold file records its own)"
        )
