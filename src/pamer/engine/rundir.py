"""The run directory of a LOSO evaluation: configuration, provenance, one file per finished fold, resume checks.

config.yaml          the resolved configuration (a rerun with another config is refused)
provenance.json      code version, seed, library versions, device, cache fingerprint and config hash (written
                     before the first fold, so a resume on another cache is refused), timings, and the execution
                     the run decided on when it was created (`executor_choice`: device, dtype, threads per fold,
                     executor, processes, stack), which every later invocation adopts and keeps
folds/<subject>.csv  one per finished fold, written atomically: clip, subject, [dataset,] true, pred,
                     prob_<class>... (and pred_e<k> per epoch with `oracle: true`), then the stamp of what it was
                     computed from and on: cache_fingerprint, config_hash, device, dtype, threads, and last the
                     `digest` of everything before it (`fold_text`)
metrics.json, confusion.png, report.md   written by `loso.run_loso` at the end
.loso.lock           held by the `pamer loso` writing the directory (`hold_run_dir`): one invocation at a time

Every fold file is checked when read back, by the one reader of fold files (`check_fold_table`, used by the resume's
`read_fold` and by `pamer report`/`compare` through `read_run_folds`): its digest matches its content (a hand edit
that stays self-consistent, such as swapping two probabilities and setting `pred` to `true`, is caught), its
labels are classes of the run, its probabilities finite, within 0..1, summing to 1 and giving `pred`, and with the
cache at hand its clips are the fold plan's test clips of its subject, labels the cache's and its stamp the run's.
A file that is not is refused by name, with what to do (delete it to retrain that fold). The digest guards against
edits and damage, not against someone who recomputes it on purpose. Only the fold plan's files are read; any other
file in `folds/` is named as ignored (`stray_fold_files`).
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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
from pamer.outputs import sole_writer, write_atomic, write_problem
from pamer.preprocess.cache import Cache

__all__ = [
    "DIGEST_COLUMN",
    "EXECUTION_COLUMNS",
    "STAMP_COLUMNS",
    "EXECUTION_RECORD",
    "RunDirError",
    "cache_fingerprint",
    "check_execution",
    "check_fold_table",
    "config_hash",
    "execution_of",
    "fold_digest",
    "fold_file",
    "fold_frame",
    "fold_text",
    "hold_run_dir",
    "open_run_dir",
    "provenance",
    "read_fold",
    "read_fold_table",
    "read_folds",
    "read_run_folds",
    "recorded_execution",
    "refuse_other_execution",
    "run_stamp",
    "safe_name",
    "source_version",
    "stray_fold_files",
    "values_hash",
    "write_fold",
]

# where and how fast a fold runs, not what it computes: the config check lets them differ on resume; whether the
# folds may then mix devices, dtypes or thread counts is `check_execution`'s question
EXECUTION_KEYS = ("train.device:", "train.threads:")
# where the cache lies, not what it holds: the same cache under another spelling (a trailing slash, a relative path,
# a moved copy) resumes the run; its content is compared by the cache fingerprint in provenance.json
CACHE_PATH_KEYS = ("data.cache:",)
# the stamp every fold file ends with: what it was computed from, then what on
STAMP_COLUMNS = ("cache_fingerprint", "config_hash", "device", "dtype", "threads")
EXECUTION_COLUMNS = ("device", "dtype", "threads")
# the last column of every fold file: `fold_digest` of the columns before it, as read back
DIGEST_COLUMN = "digest"

# provenance.json's record of how the run executes, decided once when the run directory is created
# (`executors.ExecutorChoice`); `executor` beside it is what was asked for (`auto`, ...)
EXECUTION_RECORD = "executor_choice"

# held by the `pamer loso` that writes the run directory (`hold_run_dir`)
LOCK_FILE = ".loso.lock"
# what a run writes beside its config.yaml and folds/ (`open_run_dir` refuses to replace a user's files of these names)
RUN_FILES = ("metrics.json", "confusion.png", "report.md")


class RunDirError(PamerError):
    """A run directory that cannot be resumed with the given configuration or cache (the message says why)."""


def safe_name(subject: str) -> str:
    """`subject` as a file name (anything but letters, digits, `.`, `_`, `-` becomes `_`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", subject)


def fold_file(out_dir: Path, subject: str) -> Path:
    """The fold file of `subject` in run directory `out_dir`."""
    return out_dir / "folds" / f"{safe_name(subject)}.csv"


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
    """A hash of what a fold computes from: the configuration without where and how it runs (`train.device`,
    `train.threads`, `train.precision`: each fold file's device, dtype and threads columns record those) and without
    the cache's path (its contents are the cache fingerprint). A run made before `train.precision` existed keeps
    its hash."""
    return values_hash(config.to_dict())


def values_hash(values: dict) -> str:
    """`config_hash` of a configuration as plain nested dicts: a run's `config.yaml` as read, whatever keys the
    pamer that wrote it had (`report` and `compare` check it against the hash its fold files record)."""
    values = dict(values)
    for section, drop in (("train", ("device", "threads", "precision")), ("data", ("cache",))):
        if isinstance(values.get(section), dict):
            values[section] = {k: v for k, v in values[section].items() if k not in drop}
    return hashlib.blake2b(json.dumps(values, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def run_stamp(config: Config, cache: Cache) -> dict[str, str]:
    """What every fold of a run must be computed from: the cache fingerprint and the config hash."""
    return {"cache_fingerprint": cache_fingerprint(cache), "config_hash": config_hash(config)}


def source_version(folder: Path) -> str:
    """The commit of the git checkout holding `folder` (`git describe --always`), `-dirty` added where tracked files
    differ from it; "" outside a checkout or without git.

    It only reads the checkout: `git describe --dirty` refreshes and rewrites its index (an editable install's is the
    user's), so a run killed meanwhile (or under a file-size limit) left `.git/index.lock` behind, and the user's
    next commit failed until it was deleted by hand.
    """

    def git(*args: str) -> str:
        command = ["git", "--no-optional-locks", *args]
        return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("describe", "--always")
        changed = bool(commit) and bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}-dirty" if changed else commit


def provenance(config: Config, cache: Cache, executor: str, device: torch.device | None = None) -> dict:
    """Code version, seed, library versions, this invocation's device, the cache's fingerprint and configuration,
    and the config hash.

    Args:
        device: the device the folds run on (default: `device_for(config)`, which refuses a device not here).
    """
    device = device_for(config) if device is None else device
    return {
        "pamer_version": pamer.__version__,
        "git": source_version(Path(__file__).parent),
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


@contextmanager
def hold_run_dir(out_dir: Path) -> Iterator[None]:
    """Create `out_dir` and hold its lock while this invocation writes it; refuse at once when another holds it.

    Two `pamer loso` into one directory would each train every fold the other trains (twice the time) and overwrite
    each other's provenance.json and fold files. The lock is `outputs.sole_writer` on `.loso.lock`.

    Raises:
        RunDirError: `out_dir` cannot be written (a file, read-only, ...), or another invocation is writing it.
    """
    problem = write_problem(out_dir, create=True)
    if problem is not None:
        raise RunDirError(f"cannot use {out_dir} as a run directory: {problem}")
    with sole_writer(out_dir / LOCK_FILE) as held:
        if not held:
            raise RunDirError(
                f"another `pamer loso` is writing the run {out_dir} right now; let it finish, then rerun this one "
                "(it reuses the folds already trained), or use another --out directory"
            )
        yield


def open_run_dir(out_dir: Path, config: Config, provenance: dict) -> None:
    """Start a run in `out_dir` (made and held by `hold_run_dir`), or check that the run in it has the same
    configuration and cache; a new run's `provenance.json` is written now, before its first fold, so that a resume
    on another cache is refused.

    Caches are compared by content (the cache fingerprint), never by path: `data.cache` may name the same cache
    under another spelling or at another place.

    Raises:
        RunDirError: `out_dir` holds a run with another configuration or cache, or files of a run's names that are
            not a run's, or its `config.yaml` / `provenance.json` is damaged.
    """
    config_path = out_dir / "config.yaml"
    prov_path = out_dir / "provenance.json"
    a_run = config_path.exists() or prov_path.exists() or any((out_dir / "folds").glob("*.csv"))
    taken = [name for name in RUN_FILES if (out_dir / name).exists()]
    if taken and not a_run:  # the files a new run writes would replace a user's own of those names
        raise RunDirError(
            f"{out_dir} holds {', '.join(taken)} but no config.yaml, provenance.json or fold file: not a pamer run, "
            "and this run would replace them; use another --out directory"
        )
    (out_dir / "folds").mkdir(exist_ok=True)
    resolved = config.to_dict()
    if config_path.exists():
        try:
            old = yaml.safe_load(config_path.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise RunDirError(f"{config_path} is damaged ({error}); use another --out directory") from None
        diff = [d for d in _differences(old, resolved) if not d.startswith(EXECUTION_KEYS + CACHE_PATH_KEYS)]
        if diff:
            raise RunDirError(
                f"{out_dir} holds a run with another configuration ({'; '.join(diff)}); "
                "use another --out directory or the same configuration to resume"
            )
    else:
        write_atomic(config_path, yaml.safe_dump(resolved, sort_keys=False), RunDirError)
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
        write_atomic(prov_path, json.dumps(provenance, indent=2, default=str) + "\n", RunDirError)


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


def fold_digest(table: pd.DataFrame) -> str:
    """The digest of a fold table's cells as text (read with `dtype=str`), column names and order included."""
    payload = json.dumps([list(map(str, table.columns)), table.to_numpy(dtype=object).tolist()])
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def fold_text(frame: pd.DataFrame) -> str:
    """A fold table as the text of its fold file: the csv with a last column `digest`, the `fold_digest` of the
    other columns as a reader will read them back (so every read can check that nothing was edited)."""
    text = frame.to_csv(index=False)
    cells = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return frame.assign(**{DIGEST_COLUMN: fold_digest(cells)}).to_csv(index=False)


def write_fold(out_dir: Path, subject: str, frame: pd.DataFrame) -> None:
    """Write `subject`'s fold file (`fold_text` of `frame`) atomically."""
    write_atomic(fold_file(out_dir, subject), fold_text(frame), RunDirError)


def read_fold_table(path: Path, fix: str) -> pd.DataFrame:
    """A fold file's cells as text (no NA guessing of names), its digest checked and its `digest` column dropped.

    Raises:
        RunDirError: an empty or unreadable file, no digest (an older pamer), or a digest that does not match the
            content (edited by hand or damaged), naming the file and adding `fix`.
    """
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        what = "is empty" if isinstance(error, pd.errors.EmptyDataError) else f"cannot be read ({error})"
        raise RunDirError(f"fold file {path} {what}; {fix}") from None
    if DIGEST_COLUMN not in table or table.columns[-1] != DIGEST_COLUMN:
        raise RunDirError(f"fold file {path} has no digest column at its end (written by an older pamer?); {fix}")
    stamped = set(table.pop(DIGEST_COLUMN))
    if stamped != {fold_digest(table)}:
        raise RunDirError(
            f"fold file {path}: its content does not match the digest pamer wrote with it (edited after the run, "
            f"or damaged); {fix}"
        )
    return table


def check_fold_table(
    table: pd.DataFrame, path: Path, subject: str, classes: list[str], fix: str, epochs: int | None = None
) -> np.ndarray:
    """Check a fold table by itself: its columns, one subject, labels among `classes`, and probabilities finite,
    within 0..1, summing to 1 and giving `pred`; return the probabilities (clips x classes).

    Raises:
        RunDirError: naming `path` and what is wrong, adding `fix`.
    """
    probs = [f"prob_{c}" for c in classes]
    oracle = [f"pred_e{e}" for e in range(1, epochs + 1)] if epochs else []
    missing = [c for c in ("clip", "subject", "true", "pred", *probs, *oracle, *STAMP_COLUMNS) if c not in table]
    if missing:
        raise RunDirError(
            f"fold file {path} lacks the columns {', '.join(missing)} (written by an older pamer?); {fix}"
        )
    if not len(table) or set(table["subject"]) != {subject}:
        found = ", ".join(sorted(set(table["subject"]))) or "no clip"
        raise RunDirError(f"fold file {path} is the fold of subject {subject}, it holds {found}; {fix}")
    for column in ("true", "pred", *oracle):
        wrong = sorted(set(table[column]) - set(classes))
        if wrong:
            raise RunDirError(
                f"fold file {path}: column {column} holds {', '.join(map(repr, wrong))}, not a class of the run "
                f"({', '.join(classes)}); {fix}"
            )
    try:
        values = table[probs].to_numpy(dtype=np.float64)
    except ValueError:
        raise RunDirError(f"fold file {path}: a probability is not a number; {fix}") from None
    if not np.isfinite(values).all() or (values < 0).any() or (values > 1 + 1e-6).any():
        raise RunDirError(f"fold file {path}: a probability is not a finite number within 0..1; {fix}")
    if np.abs(values.sum(1) - 1).max() > 1e-6:
        raise RunDirError(f"fold file {path}: its probabilities do not sum to 1; {fix}")
    if table["pred"].tolist() != [classes[i] for i in values.argmax(1)]:
        raise RunDirError(f"fold file {path}: its pred column is not the most probable class of each clip; {fix}")
    return values


def read_fold(
    out_dir: Path, subject: str, test_idx: np.ndarray, cache: Cache, stamp: dict[str, str], epochs: int | None = None
) -> pd.DataFrame:
    """The fold file of `subject`, checked (`read_fold_table`, `check_fold_table`) and against what it must hold.

    Args:
        test_idx: the fold plan's test clips of `subject` (indices into the cache).
        stamp: the run's `run_stamp`: the file must have been computed from the same cache and configuration.
        epochs: with `oracle: true`, the number of epochs: `pred_e1`..`pred_e<epochs>` must be there.

    Raises:
        RunDirError: an empty or unreadable file, a digest that does not match, missing columns, other clips than
            the plan's (rows deleted or added), a label that is not one of the cache's classes or not the clip's,
            probabilities that are not finite, outside 0..1 or do not give `pred`, or another cache fingerprint or
            config hash; the message names the file and says to delete it, so the fold is trained again.
    """
    path = fold_file(out_dir, subject)
    fix = f"delete it to train fold {subject} again"
    table = read_fold_table(path, fix)
    classes = list(cache.classes)
    check_fold_table(table, path, subject, classes, fix, epochs)
    _check_stamp(table, path, stamp, f"{fix}, or use another --out directory")
    want = [cache.clips[i] for i in test_idx]
    if table["clip"].tolist() != want:
        got = table["clip"].tolist()
        lost, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        details = ([f"missing {', '.join(lost[:5])}"] if lost else []) + (
            [f"not of this fold: {', '.join(extra[:5])}"] if extra else []
        )
        raise RunDirError(
            f"fold file {path} holds {len(got)} clips, the fold plan's test subject {subject} has {len(want)} "
            f"({'; '.join(details) or 'in another order'}): edited or damaged; {fix}"
        )
    truth = [classes[i] for i in np.asarray(cache.labels)[test_idx]]
    if table["true"].tolist() != truth:
        raise RunDirError(f"fold file {path}: its true labels are not the cache's labels of its clips; {fix}")
    return table


def _check_stamp(table: pd.DataFrame, path: Path, stamp: dict[str, str], fix: str) -> None:
    for key in ("cache_fingerprint", "config_hash"):
        found = sorted(set(table[key]))
        if found != [stamp[key]]:
            raise RunDirError(
                f"fold file {path} was computed with {key} {', '.join(found)}, this run has {stamp[key]} "
                f"(another cache or configuration); {fix}"
            )


def stray_fold_files(out_dir: Path, subjects: list[str]) -> list[Path]:
    """The files in `out_dir/folds` that are not the fold file of one of `subjects` (a copy `sub01-old.csv`, a
    leftover temporary file): never read, named so the user knows they were ignored."""
    wanted = {fold_file(out_dir, s).name for s in subjects}
    folder = out_dir / "folds"
    return sorted(p for p in folder.iterdir() if p.name not in wanted) if folder.is_dir() else []


def read_run_folds(
    out_dir: Path,
    subjects: list[str],
    classes: list[str],
    stamp: dict[str, str] | None = None,
    epochs: int | None = None,
) -> pd.DataFrame:
    """The fold files of a finished run read without its cache (`pamer report`, `pamer compare`): exactly the
    fold file of each of `subjects`, each checked by `read_fold_table` and `check_fold_table` (with `epochs`, of a
    run with `oracle: true`: its `pred_e<k>` columns too), all computed from one cache and configuration (`stamp`,
    from provenance.json, when given).

    Raises:
        RunDirError: a fold file missing, edited, damaged or of another cache or configuration, named.
    """
    fix = f"delete it and rerun the same `pamer loso` into {out_dir} to train that fold again"
    tables = []
    for subject in subjects:
        path = fold_file(out_dir, subject)
        if not path.is_file():
            raise RunDirError(
                f"{out_dir}: no fold file {path} for subject {subject}; rerun the same `pamer loso` into it"
            )
        table = read_fold_table(path, fix)
        check_fold_table(table, path, subject, classes, fix, epochs)
        if stamp is None:
            stamp = {k: table[k].iloc[0] for k in ("cache_fingerprint", "config_hash")}
        _check_stamp(table, path, stamp, f"{fix} (the run's other folds and provenance.json say {stamp})")
        tables.append(table)
    if not tables:
        raise RunDirError(f"{out_dir}: no fold to read (not a finished `pamer loso` run)")
    return pd.concat(tables, ignore_index=True)


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
        first = kinds[0]  # the finished folds' (the first of them)
        options = [f"--set train.device={first['device'].split()[0]}"] if "device" in first else []
        options += [f"--set train.threads={first['threads']}"] if first.get("threads", "0") != "0" else []
        advice = f"rerun with {' '.join(options)} to train the rest as the finished folds, " if now and options else ""
        raise RunDirError(
            f"the folds of {out_dir} would mix {described}, which give different numbers; {advice}pass "
            "--allow-mixed-devices to mix them (each fold file records its own), or use another --out directory"
        )


def recorded_execution(out_dir: Path) -> dict | None:
    """How the run in `out_dir` executes, as decided when it was created: provenance.json's `executor` (what was
    asked for) and `EXECUTION_RECORD` (what that resolved to), or None where there is no run yet, no readable
    provenance.json (`open_run_dir` refuses a damaged one) or no record in it (a run of an older pamer)."""
    try:
        old = json.loads((out_dir / "provenance.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(old, dict) or not isinstance(old.get(EXECUTION_RECORD), dict):
        return None
    return {"executor": old.get("executor"), EXECUTION_RECORD: old[EXECUTION_RECORD]}


def refuse_other_execution(out_dir: Path, recorded: str, conflicts: list[tuple[str, str]]) -> None:
    """Refuse an invocation whose explicit options differ from the run's recorded execution.

    Args:
        recorded: the record, described in words.
        conflicts: (what this invocation asks, the option that matches the record) for each difference.

    Raises:
        RunDirError: always, naming each difference and the options that resume the run as it began.
    """
    asked = ", ".join(a for a, _ in conflicts)
    matching = " ".join(m for _, m in conflicts)
    raise RunDirError(
        f"{out_dir} was started as {recorded}, and its folds must all run so (their numbers differ otherwise); "
        f"this invocation asks for {asked}: rerun with {matching} (or without those options: a rerun adopts the "
        "run's choice), use another --out directory, or pass --allow-mixed-devices to mix them (each fold file "
        "records its own)"
    )
