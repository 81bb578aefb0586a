"""The preprocessing cache: aligned uint8 onset/apex crops of every clip, written once by `pamer prepare`.

`prepare(index, out)` aligns every clip of a `DatasetIndex` (one `FaceAligner` transform per clip, applied to
onset and apex) and writes the cache directory `out/<dataset>[-<protocol>]-<key>`, where `key` hashes the
preprocessing configuration and the clips that went in, so a different configuration or dataset never
overwrites or reuses another's cache. The directory holds:

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

No pickle anywhere. Every clip's result is first written to `parts/<n>.safetensors` (temp file + rename), so a
killed run resumes where it stopped; the final files are written the same way, `cache.json` last, and only then
are the parts removed: a directory without `cache.json` never loads. One `prepare` at a time writes a cache
directory (`.prepare.lock`, released by the system when the process ends, however it ends); worker processes
exit when their parent does. A prepare that could cache no clip writes only `manifest.csv` and fails.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pamer.config import ConfigError
from pamer.errors import PamerError
from pamer.outputs import os_error_text, write_problem
from pamer.workers import WorkerPool

if TYPE_CHECKING:
    from pamer.data.samples import DatasetIndex, Sample

# 2: cache.json holds `content` digests of the arrays and of its own fields; 3: landmarks, the AU table, au_names
FORMAT = 3
LOCK_FILE = ".prepare.lock"
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:  # e.g. the disk filled up
        tmp.unlink(missing_ok=True)
        raise CacheError(f"cannot write {path}: {os_error_text(error)}") from None


def _save_arrays(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save

    _write_atomic(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata))


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
        raise CacheError(f"{path}: no such cache directory (make one with `pamer prepare`)")
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
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

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
    """The rows of a cache's `manifest.csv` (every clip of the dataset, cached or skipped)."""
    with open(Path(path) / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------------------------
# preparing


@dataclass(frozen=True)
class _Task:
    """What a worker needs to align one clip (plain, picklable data)."""

    number: int
    uid: str
    onset_frame: int
    apex_frame: int
    onset: Path | None
    apex: Path | None
    search: tuple[tuple[int, Path], ...]  # frames searched for a face after onset and apex, (number, path)
    missing: str  # why onset or apex has no file ("" when both do)
    clip: tuple[tuple[int, Path], ...] = ()  # onset..offset, (number, path), when the clip's frames are cached


def _task(number: int, sample: Sample, max_frames: int, clip_frames: int = 0) -> _Task:
    from pamer.data.samples import DatasetError

    try:
        onset, apex, missing = sample.onset_path, sample.apex_path, ""
    except DatasetError as error:
        onset, apex, missing = None, None, str(error)
    low, high = sorted((sample.onset, sample.apex))
    between = [(n, p) for n, p in zip(sample.frame_numbers, sample.frames, strict=True) if low < n < high]
    # a face missing from onset and apex is looked for in evenly spaced frames between them
    wanted = max(max_frames - 2, 0)
    if len(between) > wanted:
        between = [between[i] for i in np.linspace(0, len(between) - 1, wanted).round().astype(int)]
    clip = ()
    if clip_frames:
        last = max(sample.offset, sample.apex)
        clip = tuple(
            (n, p) for n, p in zip(sample.frame_numbers, sample.frames, strict=True) if sample.onset <= n <= last
        )
    return _Task(number, sample.uid, sample.onset, sample.apex, onset, apex, tuple(between), missing, clip)


def _align(task: _Task, config: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Align one clip: the crops (and flow) to cache, and its manifest facts. Never raises for bad data."""
    from pamer.frames import ImageError, read_rgb
    from pamer.preprocess.face import FaceAligner

    info: dict = {"status": "skipped", "face": "", "problems": []}
    if task.missing:
        info["problems"].append(task.missing)
        return {}, info
    try:
        onset, apex = read_rgb(task.onset), read_rgb(task.apex)
    except ImageError as error:
        info["problems"].append(str(error))
        return {}, info
    if onset.shape != apex.shape:
        info["problems"].append(f"{task.apex}: size {apex.shape[1]}x{apex.shape[0]} differs from the onset's")
        return {}, info
    searched = [task.onset_frame, task.apex_frame]  # numbers of the frames searched, in order

    def frames() -> Iterator[np.ndarray]:
        yield onset
        yield apex
        for number, path in task.search:
            try:
                frame = read_rgb(path)
            except ImageError as error:
                info["problems"].append(str(error))
                continue
            if frame.shape != onset.shape:
                info["problems"].append(f"{path}: size {frame.shape[1]}x{frame.shape[0]} differs from the onset's")
                continue
            searched.append(number)
            yield frame

    transform = FaceAligner.from_config(config).fit(frames())
    crops = {"onset": transform.apply(onset), "apex": transform.apply(apex)}
    crops["landmarks"], info["landmarks"] = _landmarks(transform, onset, apex, task)
    if info["landmarks"] != "onset, apex" and transform.face:
        info["problems"].append(f"landmarks {info['landmarks']}: stored as NaN")
    if config["representation"] == "flow":
        from pamer.preprocess.motion import flow_image

        crops["flow"] = flow_image(crops["onset"], crops["apex"])
    if config.get("frames"):
        crops["frames"] = _clip_frames(
            task, transform, config["frames"], {task.onset_frame: onset, task.apex_frame: apex}, info
        )
    described = transform.describe()
    info.update(
        status="cached",
        face="found" if transform.face else "none",
        face_frame=searched[transform.frame] if transform.face else "",
        angle_deg=described["angle_deg"],
        residual_deg="" if described["residual_deg"] is None else described["residual_deg"],
        passes=described["passes"],
        crop_x=described["crop"][0],
        crop_y=described["crop"][1],
        crop_side=described["crop"][2],
    )
    if not transform.face:
        numbers = ", ".join(map(str, searched))
        info["problems"].append(f"no face found in frames {numbers} ({task.onset.parent}): centre crop kept")
    elif transform.frame > 0:
        used = searched[transform.frame]
        info["problems"].append(f"no face in the onset frame {task.onset.name}: aligned on frame {used}")
    return crops, info


def _landmarks(transform, onset: np.ndarray, apex: np.ndarray, task: _Task) -> tuple[np.ndarray, str]:
    """The 68 landmarks of the onset and apex crops, float32 (2, 68, 2) in crop pixels, and the manifest's note.

    They are fitted on the crops themselves (`crop_landmarks`: one face box for both, so their difference is the
    face's motion), not carried over from the alignment's fit: that fit may come from another frame than the
    onset (when the onset shows no face) and never sees the apex. The crops are made for this at the frames' own
    resolution (the same crop square, `AlignTransform.resized`), since a cache's crops may be too small for dlib
    (28 px for some networks), and the points are scaled to the cached side.
    """
    from pamer.preprocess.face import crop_landmarks, rescale_points

    work = transform.resized(max(transform.size, round(transform.side)))
    views = [work.apply(onset), work.apply(apex)]
    # the aligned face fills about half of the padded view: the detector finds it at 240 px, as in the alignment
    found = crop_landmarks(views, sides=(240,))
    points = rescale_points(found, views[0].shape[:2], (transform.size, transform.size)).astype(np.float32)
    names = ("onset", "apex")
    have = [name for name, p in zip(names, points, strict=True) if not np.isnan(p).any()]
    if len(have) == len(names):
        return points, "onset, apex"
    files = {"onset": task.onset.name, "apex": task.apex.name}
    lacking = " and ".join(f"the aligned {name} {files[name]}" for name in names if name not in have)
    return points, f"{', '.join(have) or 'none'}: no face found in {lacking}"


def _clip_frames(task: _Task, transform, k: int, have: dict[int, np.ndarray], info: dict) -> np.ndarray:
    """The clip's aligned grey frames from onset to offset, resampled to `k` (linear in time, `temporal_resample`).

    Only the frames the resampling reads are loaded; an unreadable one is noted in `info` and left out, and its
    neighbours take its place (onset and apex, already read, are in `have`).
    """
    from pamer.frames import ImageError, read_rgb
    from pamer.preprocess.face import to_gray
    from pamer.preprocess.motion import resample_needs, temporal_resample

    available: dict[int, Path | None] = dict(task.clip)
    for n in have:  # onset and apex are read already
        available.setdefault(n, None)
    grey: dict[int, np.ndarray] = {}
    while True:
        numbers = sorted(available)
        wanted = [numbers[i] for i in resample_needs(numbers, k)]
        for n in wanted:
            if n in grey:
                continue
            if n in have:
                grey[n] = transform.apply(to_gray(have[n]))
                continue
            try:
                frame = read_rgb(available[n])
            except ImageError as error:
                info["problems"].append(f"{error}: left out of the clip's frames")
                del available[n]
                break
            if frame.shape[:2] != transform.frame_shape:
                info["problems"].append(f"{available[n]}: size differs from the onset's; left out of the clip's frames")
                del available[n]
                break
            grey[n] = transform.apply(to_gray(frame))
        else:
            return temporal_resample([grey.get(n) for n in numbers], numbers, k)


def _run(args: tuple[_Task, dict]) -> tuple[int, dict[str, np.ndarray], dict]:
    task, config = args
    crops, info = _align(task, config)
    return task.number, crops, info


def _worker_init() -> None:
    import cv2

    from pamer.preprocess.face import dlib_models

    cv2.setNumThreads(1)  # one process per core already
    dlib_models()


def _part_path(directory: Path, number: int) -> Path:
    return directory / "parts" / f"{number:06d}.safetensors"


def _sample_facts(sample: Sample) -> dict:
    return {
        "uid": sample.uid,
        "label": sample.label,
        "onset": sample.onset,
        "apex": sample.apex,
        "frames": [str(p) for p in sample.frames],
        "aus": sample.au_string,  # the AU table follows the sheet: an edited AU cell makes a new cache
    }


def prepare(
    index: DatasetIndex,
    out: str | Path,
    size: int = 256,
    workers: int = 1,
    representation: str = "diff",
    margin: float = 0.2,
    progress: bool = True,
    protocol: str | None = None,
    clip_frames: int = 0,
) -> Path:
    """Align every clip of `index` and write (or finish) its cache under `out`; return the cache directory.

    Args:
        index: a `DatasetIndex` from `pamer.data.read`.
        out: the folder that holds caches; the cache is `out/<dataset>[-<protocol>]-<key>`.
        size: side of the square crops.
        workers: processes aligning clips (1: in this process).
        representation: "diff" (onset and apex crops) or "flow" (also TV-L1 flow + strain; needs `pamer[flow]`).
        margin: crop margin around the face box, as a fraction of its side (see `FaceAligner`).
        progress: show a progress bar on stderr.
        protocol: the protocol name the index was read with, recorded in the directory name and config.
        clip_frames: K > 0 also caches each clip's frames from onset to offset, aligned with the clip's one
            transform, grey, resampled to K frames linear in time (`Cache.frames`, for LBP-TOP); 0: none.

    Clips with no face anywhere are cached with a centre crop (`face: none` in the manifest); clips with a
    missing, corrupt or unreadable onset or apex frame are skipped; both are listed in `manifest.csv` with the
    file names, and neither stops the run. A rerun after a kill continues where it stopped and writes the
    same cache as an uninterrupted run. A finished cache is returned as it is: the key covers the settings,
    the aligner version and each clip's label, key frames and frame paths, not the pixels, so after
    replacing frame files delete the cache directory to rebuild it.

    Raises:
        ConfigError: a bad `representation`, `size`, `margin`, `workers` or `clip_frames`.
        NotInstalledError: dlib, its model file, or (for flow) OpenCV's contrib modules are not installed.
        CacheError: an index with no clips, or `out` cannot be written (read-only, a file, the disk full: the
            message says which).
    """
    from pamer.preprocess.face import ALIGNER_VERSION, MODEL_FILE, FaceAligner, dlib_models

    if representation not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {representation!r}; expected one of {', '.join(REPRESENTATIONS)}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if clip_frames < 0 or clip_frames == 1:
        raise ConfigError(f"clip_frames must be 0 (none) or at least 2, got {clip_frames}")
    if not index.samples:
        raise CacheError(f"dataset {index.name} has no clips to prepare")
    aligner = FaceAligner(size=size, margin=margin)  # checks size and margin
    dlib_models()  # fail before any work when dlib or its model is missing
    if representation == "flow":
        from pamer.preprocess.motion import tvl1_solver

        tvl1_solver()
    config = {
        "format": FORMAT,
        "dataset": index.name,
        "protocol": protocol,
        "classes": list(index.classes),
        "representation": representation,
        "aligner": f"dlib frontal detector + {MODEL_FILE}, pamer aligner v{ALIGNER_VERSION}",
        **aligner.config(),
    }
    if clip_frames:  # only then: caches made without frames keep their key
        config["frames"] = clip_frames
    if representation == "flow":
        config["flow_kind"] = "metric"  # TV-L1 in pixels: the augmentation may negate and turn it
    samples_digest = digest([_sample_facts(s) for s in index.samples])
    key = digest([config, samples_digest])
    name = "-".join(part for part in (index.name, protocol, key[:12]) if part)
    directory = Path(out) / name
    if (directory / "cache.json").is_file():
        return directory
    check_writable(out)
    (directory / "parts").mkdir(parents=True, exist_ok=True)
    with _sole_writer(directory):
        if (directory / "cache.json").is_file():  # finished by another prepare just before this one got the lock
            return directory
        todo = [
            (_task(i, s, aligner.max_frames, clip_frames), config)
            for i, s in enumerate(index.samples)
            if not _part_path(directory, i).is_file()
        ]
        with _progress(progress, len(index.samples), len(index.samples) - len(todo), f"aligning {name}") as advance:
            if workers == 1 or len(todo) <= 1:
                results = map(_run, todo)
                _write_parts(directory, results, advance)
            else:
                # spawned workers that exit with this process and leave nothing in /dev/shm (pamer.workers)
                with WorkerPool(workers, _worker_init) as pool:
                    _write_parts(directory, pool.run(_run, [(task,) for task in todo]), advance)
        _assemble(directory, index, config, key, samples_digest)
    return directory


def check_writable(out: str | Path) -> None:
    """Refuse, before any work, a folder of caches that cannot be written (created when missing).

    Raises:
        CacheError: `out` is read-only, a file, or cannot be created; the message says which.
    """
    problem = write_problem(out, create=True)
    if problem is not None:
        raise CacheError(f"cannot write the cache under {out}: {problem}")


@contextmanager
def _sole_writer(directory: Path) -> Iterator[None]:
    """Hold the cache directory's lock while this prepare writes it; refuse at once when another prepare holds it.

    The lock is an `flock` on `.prepare.lock`: the system releases it when its process ends, however it ends, so a
    killed prepare never blocks the rerun that resumes it.
    """
    import fcntl  # POSIX: Linux and macOS, where pamer runs

    with open(directory / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheError(
                f"another `pamer prepare` is writing the cache {directory} right now; let it finish, then rerun "
                "this one (it returns the finished cache)"
            ) from None
        yield


def _write_parts(directory: Path, results, advance) -> None:
    for number, crops, info in results:
        _save_arrays(_part_path(directory, number), crops, {"info": json.dumps(info, sort_keys=True)})
        advance()


@contextmanager
def _progress(show: bool, total: int, done: int, label: str) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr (or nothing), yielding the callback that advances it by one clip."""
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total, completed=done)
        yield lambda: bar.advance(task)


def _assemble(directory: Path, index: DatasetIndex, config: dict, key: str, samples_digest: str) -> None:
    """Gather the parts into the final arrays, manifest and cache.json (in that order), then drop the parts."""
    from safetensors import safe_open

    stacks: dict[str, list[np.ndarray]] = {}
    labels, subjects, clips, origins, rows, cached_aus = [], [], [], [], [], []
    reader_problems: dict[str, list[str]] = {}
    for problem in index.problems:  # what the reader already fixed or noted, e.g. a substituted apex frame
        reader_problems.setdefault(problem.clip, []).append(f"{problem.kind}: {problem.detail}")
    for number, sample in enumerate(index.samples):
        with safe_open(_part_path(directory, number), framework="numpy") as part:
            info = json.loads(part.metadata()["info"])
            for name in part.keys():  # noqa: SIM118  (safe_open is not a mapping)
                stacks.setdefault(name, []).append(part.get_tensor(name))
        if info["status"] == "cached":
            labels.append(index.classes.index(sample.label))
            subjects.append(sample.subject)
            clips.append(sample.clip)
            origins.append(sample.dataset)
            cached_aus.append(sample.aus)
        row = {c: info.get(c, "") for c in MANIFEST_COLUMNS}
        row.update(
            subject=sample.subject,
            clip=sample.clip,
            label=sample.label,
            problems="; ".join(reader_problems.get(sample.uid, []) + info["problems"]),
            onset_frame=sample.onset,
            apex_frame=sample.apex,
            apex_source=sample.apex_source,
        )
        rows.append(row)
    size = config["size"]
    arrays = {"labels": np.asarray(labels, dtype=np.int64)}
    for name, channels_dtype in (("onset", np.uint8), ("apex", np.uint8), ("flow", np.float32)):
        if name == "flow" and config["representation"] != "flow":
            continue
        parts = stacks.get(name, [])
        arrays[name] = np.stack(parts) if parts else np.zeros((0, size, size, 3), channels_dtype)
    if config.get("frames"):
        parts = stacks.get("frames", [])
        arrays["frames"] = np.stack(parts) if parts else np.zeros((0, config["frames"], size, size), np.uint8)
    parts = stacks.get("landmarks", [])
    arrays["landmarks"] = np.stack(parts) if parts else np.zeros((0, 2, 68, 2), np.float32)
    aus, au_names = au_table(cached_aus)
    composite = any(s.dataset != index.name for s in index.samples)  # each clip's part, for by-dataset results
    meta = cache_meta(config, key, samples_digest, subjects, clips, origins if composite else None)
    if aus is not None:
        arrays["aus"], meta["au_names"] = aus, list(au_names)
    meta["frame_trees"] = {name: str(path) for name, path in index.frame_trees.items()}
    if not labels:  # nothing to resume: a rerun after fixing the frames starts afresh (write_cache raises)
        shutil.rmtree(directory / "parts")
    write_cache(directory, arrays, meta, {"manifest.csv": (MANIFEST_COLUMNS, rows)})
    shutil.rmtree(directory / "parts")


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
    _save_arrays(directory / "arrays.safetensors", arrays)
    write_tables(directory, tables)
    meta = {**meta, "content": content_digests(arrays, meta)}
    _write_atomic(directory / "cache.json", (json.dumps(meta, indent=1) + "\n").encode())


def write_tables(directory: Path, tables: dict[str, tuple[Sequence[str], list[dict]]]) -> None:
    """Write each csv table (file name -> columns, rows) into `directory`, atomically."""
    for name, (columns, rows) in tables.items():
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write_atomic(directory / name, text.getvalue().encode())
