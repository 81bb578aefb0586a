"""A finished run directory as `pamer report` and `pamer compare` read it: every number checked before it is shown.

`load_run_data` reads `metrics.json` (`load_run`: a JSON object whose numbers are numbers within 0..1, whose classes
are names and whose folds are counts; anything else is one `ReportError` naming the file, the key and what was
expected), `config.yaml`, `provenance.json`, and the fold files through the engine's one checked reader
(`pamer.engine.rundir.read_run_folds`: exactly the fold plan's files, each with its digest, labels and probabilities
checked). The fold files must then give the numbers `metrics.json` holds (clips per fold, pooled accuracy,
macro-F1 and UAR, each dataset's clips and numbers), and `config.yaml` the config hash they were computed with
(`compare` reads a run's method and seed from it): a run whose files disagree is refused, so a table never prints a
number that its predictions do not support. Other files in `folds/` are named in `RunData.notes`, never read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pamer.engine.metrics import confusion_matrix, oracle_metrics, scores
from pamer.engine.rundir import RunDirError, read_run_folds, stray_fold_files, values_hash
from pamer.errors import PamerError

__all__ = ["ReportError", "RunData", "load_run", "load_run_data", "load_runs"]

# metrics.json numbers that tables print: each a number within 0..1
SCORES = ("accuracy", "f1_macro", "uar")
_TOL = 1e-9


class ReportError(PamerError):
    """A run directory that cannot be reported (the message names the file and what is wrong)."""


@dataclass
class RunData:
    """A finished run as `report` and `compare` need it: its metrics, configuration and every test clip's prediction.

    Attributes:
        path: the run directory as given.
        metrics: its `metrics.json` (checked by `load_run`), with the directory under `run`.
        config: its resolved `config.yaml`.
        cache_fingerprint: the cache's fingerprint from `provenance.json` (None when absent).
        folds: one row per test clip: `subject`, `dataset` ("" when the cache records none), `true`, `pred`
            (class indices into `metrics["classes"]`).
        notes: files of `folds/` that are not the run's fold files, named as ignored.
    """

    path: str
    metrics: dict
    config: dict
    cache_fingerprint: str | None
    folds: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return str(self.metrics["model"])

    @property
    def seed(self) -> object:
        return self.config.get("seed")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise ReportError(f"{path}: cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not JSON text (binary bytes, not UTF-8)") from None
    except ValueError as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from None


def _is_score(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _check_scores(path: Path, where: str, block: object, names: tuple[str, ...]) -> None:
    if not isinstance(block, Mapping):
        raise ReportError(f"{path}: {where} is {block!r}, expected an object of {', '.join(names)}")
    for name in names:
        if not _is_score(block.get(name)):
            raise ReportError(f"{path}: {where}{name} is {block.get(name)!r}, expected a number within 0..1")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_run(run_dir: str | Path) -> dict:
    """The `metrics.json` of a finished run, every value a table may print checked, with its directory under `run`.

    Raises:
        ReportError: no metrics.json, or one that is not a JSON object of the expected keys and types (binary
            bytes, a number, `"accuracy": "high"`, `"classes": null`, ...), naming the key and what was expected.
    """
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        if not Path(run_dir).exists():
            raise ReportError(f"{run_dir} does not exist (expected the run directory of a finished `pamer loso`)")
        if Path(run_dir).is_file():  # `pamer compare runs/*/metrics.json`
            folder = Path(run_dir).parent
            hint = f": pass its folder {folder}" if (folder / "metrics.json").is_file() else ""
            raise ReportError(f"{run_dir} is a file, expected the run directory of a finished `pamer loso`{hint}")
        runs = sorted(p.parent.name for p in Path(run_dir).glob("*/metrics.json"))
        inside = f"; it holds run directories ({', '.join(runs)}): pass them, e.g. {run_dir}/*" if runs else ""
        raise ReportError(f"{run_dir}: no metrics.json (not a finished `pamer loso` run directory){inside}")
    metrics = _read_json(path)
    if not isinstance(metrics, dict):
        raise ReportError(f"{path}: holds {type(metrics).__name__} {metrics!r:.60}, expected a JSON object")
    missing = [k for k in ("dataset", "model", *SCORES, "classes", "per_fold", "per_fold_mean") if k not in metrics]
    if missing:
        raise ReportError(f"{path}: missing {', '.join(missing)}")
    for key in ("dataset", "model"):
        if not isinstance(metrics[key], str) and not (key == "dataset" and metrics[key] is None):
            raise ReportError(f"{path}: {key} is {metrics[key]!r}, expected a name")
    _check_scores(path, "", metrics, SCORES)
    classes = metrics["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise ReportError(f"{path}: classes is {classes!r}, expected a list of two or more distinct class names")
    folds = metrics["per_fold"]
    if not isinstance(folds, dict) or not folds:
        raise ReportError(f"{path}: per_fold is {folds!r:.60}, expected an object of subject -> fold numbers")
    for subject, fold in folds.items():
        _check_scores(path, f"per_fold.{subject}.", fold, ("accuracy", "f1_macro"))
        if not _is_count(fold.get("n")) or not fold["n"]:
            raise ReportError(f"{path}: per_fold.{subject}.n is {fold.get('n')!r}, expected a count of clips")
    _check_scores(path, "per_fold_mean.", metrics["per_fold_mean"], ("accuracy", "f1_macro"))
    clips = metrics.get("clips")
    total = sum(fold["n"] for fold in folds.values())
    if clips is not None and clips != total:
        raise ReportError(f"{path}: clips is {clips!r}, its folds hold {total}")
    label = metrics.get("label_protocol")
    if label is not None and not isinstance(label, dict):
        raise ReportError(f"{path}: label_protocol is {label!r:.60}, expected an object")
    parts = metrics.get("by_dataset")
    if parts is not None:
        if not isinstance(parts, dict):
            raise ReportError(f"{path}: by_dataset is {parts!r:.60}, expected an object of dataset -> numbers")
        for name, part in parts.items():
            _check_scores(path, f"by_dataset.{name}.", part, ("accuracy", "uf1", "uar"))
            if not _is_count(part.get("clips")):
                raise ReportError(f"{path}: by_dataset.{name}.clips is {part.get('clips')!r}, expected a count")
    if "oracle" in metrics:
        _check_scores(path, "oracle.", metrics["oracle"], SCORES)
    metrics["run"] = str(run_dir)
    return metrics


def _mapping_file(path: Path, what: str) -> dict:
    """A YAML (or JSON) file that must hold a mapping."""
    try:
        values = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ReportError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from None
    if not isinstance(values, dict):
        raise ReportError(f"{path}: not a {what} (expected a mapping, got {type(values).__name__})")
    return values


def _check_against_metrics(run_dir: Path, table: pd.DataFrame, metrics: dict) -> None:
    """Refuse fold files that do not give the numbers of metrics.json."""
    classes = metrics["classes"]
    counts = table["subject"].value_counts().to_dict()
    expected = {s: fold["n"] for s, fold in metrics["per_fold"].items()}
    if counts != expected:
        raise ReportError(
            f"{run_dir}: the fold files hold {len(table)} clips of {len(counts)} subjects, metrics.json "
            f"{sum(expected.values())} of {len(expected)}: fold files changed after the run; rerun `pamer loso` "
            "into this directory"
        )
    _check_numbers(run_dir, "", scores(confusion_matrix(table["true"], table["pred"], len(classes))), metrics, SCORES)
    parts = metrics.get("by_dataset") or {}
    found = table["dataset"].value_counts().to_dict() if parts else {}
    if parts and {name: part["clips"] for name, part in parts.items()} != found:
        raise ReportError(f"{run_dir}: metrics.json's by_dataset clips are not those of the fold files ({found})")
    for part, numbers in parts.items():  # `pamer report` prints them as they stand
        rows = table[table["dataset"] == part]
        given = scores(confusion_matrix(rows["true"], rows["pred"], len(classes)))
        _check_numbers(run_dir, f"by_dataset.{part}.", given, numbers, ("accuracy", "uf1", "uar"))


def _check_numbers(run_dir: Path, where: str, given: dict, stated: dict, names: tuple[str, ...]) -> None:
    """Refuse numbers of metrics.json (`where`: the key they sit under) that the fold files do not give."""
    for name in names:
        if abs(given[name] - float(stated[name])) > _TOL:
            raise ReportError(
                f"{run_dir}: the fold files give {where}{name} {given[name]:.6f}, metrics.json "
                f"{float(stated[name]):.6f}; one of them changed after the run: rerun `pamer loso` into this directory"
            )


def _oracle_epochs(run_dir: Path, config: dict) -> int:
    """The epochs of a run with `oracle: true` (config.yaml's `train.epochs`): its fold files' `pred_e<k>` columns."""
    epochs = config.get("train", {}).get("epochs") if isinstance(config.get("train"), dict) else None
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ReportError(f"{run_dir / 'config.yaml'}: train.epochs is {epochs!r}, expected a whole number >= 1")
    return epochs


def _check_config(run_dir: Path, config: dict, recorded: str, metrics: dict) -> None:
    """Refuse a `config.yaml` that is not the configuration the fold files were computed with (their config hash),
    or a `metrics.json` that names another network: `compare` takes a run's method and seed from them, so an edited
    seed counted one run as two seeds, and an edited model set a run beside another network's published number.
    The hash is of the file as written, so a run of an older pamer, whose config.yaml lacks later keys, still reads."""
    found = values_hash(config)
    if found != recorded:
        raise ReportError(
            f"{run_dir / 'config.yaml'}: not the configuration the run's fold files were computed with (config hash "
            f"{found}, the fold files record {recorded}): edited after the run; restore the run's own config.yaml"
        )
    model = config.get("model", {}).get("name") if isinstance(config.get("model"), dict) else None
    if metrics["model"] != model:
        raise ReportError(
            f"{run_dir / 'metrics.json'}: model is {metrics['model']!r}, the run's config.yaml trained {model!r}: "
            "rerun `pamer loso` into this directory to rewrite metrics.json"
        )


def load_run_data(run_dir: str | Path) -> RunData:
    """A finished run directory's metrics, configuration and fold predictions, each checked (module docstring).

    Raises:
        ReportError: a missing or damaged metrics.json, config.yaml, provenance.json or fold file, a config.yaml
            that is not the configuration the fold files were computed with, or fold files that do not give the
            numbers in metrics.json.
    """
    path = Path(run_dir)
    metrics = load_run(path)
    config = _mapping_file(path / "config.yaml", "run configuration")
    provenance = path / "provenance.json"
    fingerprint, stamp = None, None
    if provenance.is_file():
        record = _read_json(provenance)
        if not isinstance(record, dict):
            raise ReportError(f"{provenance}: holds {type(record).__name__}, expected a JSON object")
        fingerprint = record.get("cache_fingerprint")
        if isinstance(fingerprint, str) and isinstance(record.get("config_hash"), str):
            stamp = {"cache_fingerprint": fingerprint, "config_hash": record["config_hash"]}
    classes = list(metrics["classes"])
    subjects = list(metrics["per_fold"])
    epochs = _oracle_epochs(path, config) if "oracle" in metrics else None
    try:
        table = read_run_folds(path, subjects, classes, stamp, epochs)
    except RunDirError as err:
        raise ReportError(str(err)) from None
    _check_config(path, config, table["config_hash"].iloc[0], metrics)
    index = {name: i for i, name in enumerate(classes)}
    folds = pd.DataFrame(
        {
            "subject": table["subject"],
            "dataset": table["dataset"] if "dataset" in table.columns else "",
            "true": table["true"].map(index).astype(np.int64),
            "pred": table["pred"].map(index).astype(np.int64),
        }
    )
    _check_against_metrics(path, folds, metrics)
    if epochs:
        per_epoch = np.stack([table[f"pred_e{e}"].map(index).to_numpy() for e in range(1, epochs + 1)], axis=1)
        oracle = oracle_metrics(folds["true"].to_numpy(), per_epoch, folds["subject"].to_numpy(), classes)
        _check_numbers(path, "oracle.", oracle, metrics["oracle"], SCORES)
    notes = [f"{p}: not a fold file of the run's plan; ignored" for p in stray_fold_files(path, subjects)]
    return RunData(str(run_dir), metrics, config, fingerprint, folds, notes)


def load_runs(run_dirs: list[str | Path]) -> list[RunData]:
    """Each run directory of `run_dirs` read by `load_run_data`, a directory named twice (`runs/*/pamnet` and
    `runs/casme2/*`, or under another spelling) once, in the place it was first named.

    Raises:
        ReportError: as `load_run_data`.
    """
    seen: set[Path] = set()
    runs = []
    for d in run_dirs:
        if Path(d).resolve() not in seen:
            seen.add(Path(d).resolve())
            runs.append(load_run_data(d))
    return runs
