"""The cache format: what a cache directory holds, how it is written (`write_cache`) and read (`load_cache`).

A cache holds aligned uint8 onset/apex crops of every clip, written once by `pamer prepare`
(`pamer.preprocess.pipeline.prepare`), or ready-made images (`pamer.preprocess.images`). Its directory
`out/<dataset>[-<protocol>]-<key>` is named by a `key` that hashes the preprocessing configuration and the clips that
went in (`digest`), so a different configuration or dataset never overwrites or reuses another's cache. The
directory holds:

- `arrays.safetensors`: `onset`, `apex` (uint8 N x H x W x 3, RGB), `labels` (int64 indices into `classes`),
  for `representation: flow` also `flow` (float32 N x H x W x 3: TV-L1 u, v and optical strain), and with
  `clip_frames=K` also `frames` (uint8 N x K x H x W, grey: onset to offset resampled to K, linear in time);
  `landmarks` (float32 N x 2 x 68 x 2: dlib's 68 points of the onset and apex crops, in crop pixels, NaN where no
  face was found: `pamer.preprocess.face.crop_landmarks`), and where any cached clip is AU-coded `aus` (float32
  N x A, the clip-by-AU table of `au_table`; its AU numbers are `au_names` in cache.json);
- `cache.json`: format version, configuration, key, class names, each cached clip's subject and id, the
  folder each dataset's frames were read from (`frame_trees`, from `DatasetIndex.frame_trees`), and the `content`
  digests of the arrays and of cache.json's own fields (`content_digests`), so a damaged or hand-edited cache is
  refused by `load_cache`;
- `manifest.csv`: every clip of the index, cached or skipped, with what happened to it.

Caches of ready-made images (`pamer prepare htnet|images`, written by `pamer.preprocess.images`) hold only what
their inputs give: `flow` (flow images) or `apex` (apex face crops), never an onset. Their config lists the arrays
(`config["arrays"]`); a cache without that key holds `onset` and `apex` (and `flow` for `representation: flow`),
as pamer's own caches always did. `load_cache` gives None for an array the cache does not hold.

`config["flow_kind"]` says what the flow values mean: "metric" (pamer's own TV-L1, in pixels: zero is no motion and
the sign is the direction) or "normalised" (flow images whose channels were min-max stretched to 0..255 per image,
so zero and scale are lost); caches made before the key existed are metric. `datasets` in cache.json names each
clip's dataset of origin where a cache mixes datasets (composite, htnet, images with a dataset column).

No pickle anywhere. Each file is written atomically (`pamer.outputs.write_atomic`), `cache.json` last: a directory
without `cache.json` never loads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from pamer.errors import PamerError
from pamer.outputs import write_atomic, write_problem

# 2: cache.json holds `content` digests of the arrays and of its own fields; 3: landmarks, the AU table, au_names
FORMAT = 3
REPRESENTATIONS = ("diff", "flow")
FLOW_KINDS = ("metric", "normalised")
MANIFEST_COLUMNS = (
    "subject",
    "clip",
    "label",
    "status",
    "face",
    "angle_deg",
    "problems",
    "onset_frame",
    "apex_frame",
    "apex_source",
    "face_frame",
    "residual_deg",
    "passes",
    "crop_x",
    "crop_y",
    "crop_side",
    "landmarks",
)
# the columns every cache's manifest has (pamer's own and ready-made images'), which `pamer prepare` reads back
MANIFEST_READ = ("subject", "clip", "label", "status", "face", "landmarks", "problems")


class CacheError(PamerError):
    """A cache that cannot be written, loaded or used as asked (the message names the path and what to do)."""


@dataclass
class Cache:
    """A loaded cache. `onset`/`apex` are uint8 RGB arrays N x H x W x 3 (for `representation: flow`, `flow`
    holds float32 N x H x W x 3: u, v, strain); `labels` are int64 indices into `classes`.

    A cache of ready-made images holds one of them only: `apex` (apex crops; `onset` and `flow` None) or `flow`
    (flow images as float32 0..255; `onset` and `apex` None). `config["arrays"]` lists what a cache holds and
    `flow_kind(config)` what its flow values mean.

    `datasets` names each clip's dataset of origin where a cache mixes datasets (composite, preprocessed MEGC2019
    folders); `frames` holds each clip's aligned grey frames from onset to offset resampled to K, (N, K, H, W)
    uint8, where the cache was prepared with `--frames K`.

    `aus` is the clip-by-action-unit table, float32 (N, len(au_names)): 1 where the clip is coded with that AU
    (on either side), 0 where not, and a row of NaN for a clip that has no AU coding at all (no AUs is not the same
    as an empty set); `aus` and `au_names` are None where no clip of the cache is coded (SMIC). `au_names` are the
    AU numbers as text ("1", "4", "12"), in ascending numerical order. `landmarks` holds dlib's 68 points of each
    clip's onset and apex in the cached crop's pixel coordinates, float32 (N, 2, 68, 2): [:, 0] onset, [:, 1]
    apex, last axis (x, y); NaN where no face was found (ready-made images).
    """

    onset: np.ndarray | None
    apex: np.ndarray | None
    labels: np.ndarray
    subjects: list[str]
    clips: list[str]
    classes: tuple[str, ...]
    config: dict = field(default_factory=dict)
    flow: np.ndarray | None = None
    datasets: list[str] | None = None
    frames: np.ndarray | None = None
    aus: np.ndarray | None = None
    au_names: tuple[str, ...] | None = None
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Cache:
        """A cache of the clips `idx` only, in that order: every per-clip array and list indexed, the rest shared.

        The engine gives a network's fold statistics (`pamer.models.method.Method.fold_args`) the subset of a fold's
        training clips, so nothing of the test subject can reach them.
        """
        idx = np.asarray(idx, dtype=np.int64)

        def take(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[idx]

        return Cache(
            onset=take(self.onset),
            apex=take(self.apex),
            labels=self.labels[idx],
            subjects=[self.subjects[i] for i in idx],
            clips=[self.clips[i] for i in idx],
            classes=self.classes,
            config=self.config,
            flow=take(self.flow),
            datasets=None if self.datasets is None else [self.datasets[i] for i in idx],
            frames=take(self.frames),
            aus=take(self.aus),
            au_names=self.au_names,
            landmarks=take(self.landmarks),
        )


def au_table(coded: Sequence[tuple | None]) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """The clip-by-AU table of `Cache.aus` from each clip's `aus` (`Sample.aus`: ActionUnits, or None when not
    coded): float32 (N, A), 1 where the clip is coded with the AU on either side, 0 where not, NaN rows for clips
    without coding; and the AU numbers as text, ascending. (None, None) when not one clip is coded."""
    if all(aus is None for aus in coded):
        return None, None
    numbers = sorted({unit.number for aus in coded if aus is not None for unit in aus})
    table = np.zeros((len(coded), len(numbers)), dtype=np.float32)
    for row, aus in zip(table, coded, strict=True):
        if aus is None:
            row[:] = np.nan
            continue
        row[[numbers.index(unit.number) for unit in aus]] = 1.0
    return table, tuple(str(n) for n in numbers)


def cache_arrays(config: dict) -> tuple[str, ...]:
    """The image arrays a cache with this config holds: its `arrays` list, else pamer's own onset/apex (+ flow)."""
    if "arrays" in config:
        return tuple(config["arrays"])
    return ("onset", "apex", "flow") if config["representation"] == "flow" else ("onset", "apex")


def flow_kind(config: dict) -> str:
    """What a cache's flow values mean: "metric" (pamer's TV-L1; also every cache made before the key) or
    "normalised" (min-max-stretched flow images)."""
    return config.get("flow_kind", "metric")


def digest(value: object) -> str:
    """The sha256 of a JSON-able value (keys sorted): how cache keys and sample digests are made."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def content_digests(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, str]:
    """The digests `cache.json` keeps under `content`: of every array (name, dtype, shape, bytes) and of every
    other field of cache.json (classes, subjects, clips and whatever a cache holds beside them).

    `load_cache` recomputes both, so reordered classes, edited subjects or replaced arrays are refused.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        h.update(array.data)
    return {"arrays": h.hexdigest(), "fields": digest({k: v for k, v in meta.items() if k != "content"})}


def check_writable(out: str | Path) -> None:
    """Refuse, before any work, a folder of caches that cannot be written (created when missing).

    Raises:
        CacheError: `out` is read-only, a file, or cannot be created; the message says which.
    """
    problem = write_problem(out, create=True)
    if problem is not None:
        raise CacheError(f"cannot write the cache under {out}: {problem}")


def save_arrays(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write `arrays` (and string `metadata`) as one safetensors file at `path`, atomically; `CacheError` when the
    write fails (the disk full: the message says why)."""
    write_atomic(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata), CacheError)


# ---------------------------------------------------------------------------------------------------------------
# loading


def load_cache(path: str | Path, expect: dict | None = None) -> Cache:
    """Load the cache directory that `prepare` returned.

    Args:
        path: the cache directory (`out/<dataset>-...-<key>`).
        expect: configuration values the caller needs (e.g. `{"size": 256, "representation": "diff"}`); any
            that differ from the cache's raise a `CacheError` naming them.

    Raises:
        CacheError: not a cache, an unfinished `prepare`, another cache format, another configuration, or
            damaged files.
    """
    path = Path(path)
    if not path.is_dir():
        where = "" if path.is_absolute() else f", looked for from the current folder as {path.absolute()}"
        raise CacheError(f"{path}: no such cache directory{where} (make one with `pamer prepare`)")
    meta_path = path / "cache.json"
    if not meta_path.is_file():
        inside = sorted(p.parent.name for p in path.glob("*/cache.json"))
        if inside:
            raise CacheError(f"{path} is a folder of caches, not a cache: pass one of {', '.join(inside)}")
        if (path / "parts").is_dir():
            raise CacheError(f"{path}: unfinished cache (prepare was interrupted); rerun the same `pamer prepare`")
        raise CacheError(f"{path}: not a pamer cache (no cache.json)")
    try:
        meta = json.loads(meta_path.read_text())
        fmt = meta["format"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CacheError(f"{meta_path}: damaged ({error}); rerun `pamer prepare`") from None
    if fmt != FORMAT:
        raise CacheError(
            f"{path}: made in cache format {fmt}, this pamer reads format {FORMAT}; rerun `pamer prepare` to rebuild it"
        )
    config = meta["config"]
    if digest([config, meta["samples_digest"]]) != meta["key"]:
        raise CacheError(f"{meta_path}: its configuration does not match its key (edited by hand?); rerun prepare")
    if expect:
        wrong = {k: v for k, v in expect.items() if config.get(k) != v}
        if wrong:
            have = ", ".join(f"{k}={config.get(k)!r}" for k in wrong)
            want = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
            raise CacheError(f"{path}: made with {have}, but {want} is needed; prepare a cache with those settings")
    try:
        arrays = load_file(path / "arrays.safetensors")
    except (OSError, SafetensorError) as error:
        raise CacheError(f"{path / 'arrays.safetensors'}: damaged or missing ({error}); rerun prepare") from None
    n, size = len(meta["clips"]), config["size"]
    shapes = {name: (n, size, size, 3) for name in cache_arrays(config)}
    shapes["labels"] = (n,)
    if config.get("frames"):
        shapes["frames"] = (n, config["frames"], size, size)
    if "landmarks" in arrays:  # every cache pamer writes holds them; a test's hand-made cache may not
        shapes["landmarks"] = (n, 2, 68, 2)
    au_names = meta.get("au_names")
    if au_names is not None or "aus" in arrays:
        shapes["aus"] = (n, len(au_names or ()))
    for name, shape in shapes.items():
        if name not in arrays or arrays[name].shape != shape:
            got = arrays[name].shape if name in arrays else "nothing"
            raise CacheError(f"{path / 'arrays.safetensors'}: {name} should be {shape}, found {got}; rerun prepare")
    # after the shapes: a wrong shape is named as such; same shapes with other contents only the digests see
    content = meta.get("content")
    if not isinstance(content, dict):
        raise CacheError(f"{meta_path}: no content digests (damaged or edited by hand); rerun `pamer prepare`")
    digests = content_digests(arrays, meta)
    if digests["fields"] != content.get("fields"):
        raise CacheError(
            f"{meta_path}: its classes, subjects, clips or other fields differ from what `pamer prepare` wrote "
            "(edited by hand?); delete the cache directory and rerun `pamer prepare`"
        )
    if digests["arrays"] != content.get("arrays"):
        raise CacheError(
            f"{path / 'arrays.safetensors'}: its arrays differ from what `pamer prepare` wrote (damaged or "
            "replaced?); delete the cache directory and rerun `pamer prepare`"
        )
    datasets = meta.get("datasets")
    if datasets is not None and len(datasets) != n:
        raise CacheError(f"{meta_path}: {len(datasets)} datasets of origin for {n} clips; rerun prepare")
    return Cache(
        onset=arrays.get("onset") if "onset" in shapes else None,
        apex=arrays.get("apex") if "apex" in shapes else None,
        labels=arrays["labels"].astype(np.int64),
        subjects=list(meta["subjects"]),
        clips=list(meta["clips"]),
        classes=tuple(meta["classes"]),
        config=config,
        flow=arrays.get("flow") if "flow" in shapes else None,
        datasets=None if datasets is None else list(datasets),
        frames=arrays.get("frames"),
        aus=arrays.get("aus"),
        au_names=None if au_names is None else tuple(au_names),
        landmarks=arrays.get("landmarks"),
    )


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """The rows of a cache's `manifest.csv` (every clip of the dataset, cached or skipped).

    Raises:
        CacheError: the file is missing, unreadable, or lacks a column of `MANIFEST_READ` (deleted or edited by
            hand; the cache's digests do not cover it).
    """
    file = Path(path) / "manifest.csv"
    fix = "delete the cache directory and rerun `pamer prepare`"
    try:
        with open(file, newline="") as f:
            reader = csv.DictReader(f, restval="")
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise CacheError(f"{file} is missing (deleted?); {fix}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CacheError(f"{file}: cannot be read ({error}); {fix}") from None
    missing = [c for c in MANIFEST_READ if c not in header]
    if missing:
        raise CacheError(f"{file}: no column {', '.join(missing)} (edited by hand?); {fix}")
    return rows


# ---------------------------------------------------------------------------------------------------------------
# writing


def cache_meta(
    config: dict, key: str, samples_digest: str, subjects: list[str], clips: list[str], datasets: list[str] | None
) -> dict:
    """The contents of `cache.json` (before `write_cache` adds the content digests): the configuration, its key,
    the class names and each cached clip's subject and id, and, for a cache that mixes datasets, each clip's
    dataset of origin."""
    meta = {
        "format": FORMAT,
        "key": key,
        "samples_digest": samples_digest,
        "config": config,
        "classes": list(config["classes"]),
        "subjects": subjects,
        "clips": clips,
    }
    if datasets is not None:
        meta["datasets"] = datasets
    return meta


def write_cache(
    directory: Path,
    arrays: dict[str, np.ndarray],
    meta: dict,
    tables: dict[str, tuple[Sequence[str], list[dict]]],
) -> None:
    """Write a finished cache into `directory`: `arrays.safetensors`, the csv `tables` (file name -> columns, rows;
    `manifest.csv` at least), then `cache.json` (`meta`, with the `content_digests` of the arrays and of meta
    added) last, each atomically: a directory without cache.json never loads, so a killed write leaves nothing
    that looks finished.

    Raises:
        CacheError: not one clip was cached: only the tables are written (no cache.json, so nothing loads and a
            rerun after fixing the files starts afresh), and the message names the first clips' problems and the
            manifest.
    """
    if not len(meta["clips"]):
        write_tables(directory, tables)
        rows = tables["manifest.csv"][1]
        shown = "; ".join(f"{r['subject']}/{r['clip']}: {r['problems']}" for r in rows[:3])
        more = "; ..." if len(rows) > 3 else ""
        raise CacheError(
            f"none of the {len(rows)} clips of {meta['config']['dataset']} could be cached ({shown}{more}); "
            f"every clip is listed in {directory / 'manifest.csv'}"
        )
    save_arrays(directory / "arrays.safetensors", arrays)
    write_tables(directory, tables)
    meta = {**meta, "content": content_digests(arrays, meta)}
    write_atomic(directory / "cache.json", json.dumps(meta, indent=1) + "\n")


def write_tables(directory: Path, tables: dict[str, tuple[Sequence[str], list[dict]]]) -> None:
    """Write each csv table (file name -> columns, rows) into `directory`, atomically."""
    for name, (columns, rows) in tables.items():
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(directory / name, text.getvalue())
