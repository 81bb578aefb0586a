"""The prepare pipeline (`pamer prepare`): align every clip of a dataset with dlib and write its cache.

`prepare(index, out)` aligns every clip of a `DatasetIndex` (one `FaceAligner` transform per clip, applied to
onset and apex, and with `clip_frames` to the frames from onset to offset), fits the cached landmarks on the crops,
and writes the cache directory `out/<dataset>[-<protocol>]-<key>` in the format of `pamer.preprocess.cache`.

Every clip's result is first written to `parts/<n>.safetensors` (atomically), so a killed run resumes where it
stopped; the final files follow (`write_cache`, `cache.json` last), and only then are the parts removed. One
`prepare` at a time writes a cache directory (`.prepare.lock`, released by the system when the process ends, however
it ends); worker processes exit when their parent does. A prepare that could cache no clip writes only
`manifest.csv` and fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from safetensors import safe_open

from pamer.config import ConfigError
from pamer.frames import ImageError, read_rgb
from pamer.outputs import sole_writer
from pamer.preprocess.cache import (
    FORMAT,
    MANIFEST_COLUMNS,
    REPRESENTATIONS,
    CacheError,
    au_table,
    cache_meta,
    check_writable,
    digest,
    save_arrays,
    write_cache,
)
from pamer.preprocess.face import (
    ALIGNER_VERSION,
    MODEL_FILE,
    FaceAligner,
    crop_landmarks,
    dlib_models,
    rescale_points,
    to_gray,
)
from pamer.preprocess.motion import flow_image, resample_needs, temporal_resample, tvl1_solver
from pamer.workers import WorkerPool

if TYPE_CHECKING:
    from pamer.data.samples import DatasetIndex, Sample

LOCK_FILE = ".prepare.lock"


@dataclass(frozen=True)
class ClipTask:
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


def clip_task(number: int, sample: Sample, max_frames: int, clip_frames: int = 0) -> ClipTask:
    """What `align_clip` needs of clip `number` of the index: its onset and apex files (or why one is missing), up
    to `max_frames - 2` evenly spaced frames between them to search for a face, and for `clip_frames` > 0 its frames
    from onset to offset."""
    # lazy: pamer.data loads pandas, and spotting and predict import pamer.preprocess without preparing
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
    return ClipTask(number, sample.uid, sample.onset, sample.apex, onset, apex, tuple(between), missing, clip)


def align_clip(task: ClipTask, config: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Align one clip: the crops (and flow) to cache, and its manifest facts. Never raises for bad data."""
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
    crops["landmarks"], info["landmarks"] = clip_landmarks(transform, onset, apex, task)
    if info["landmarks"] != "onset, apex" and transform.face:
        info["problems"].append(f"landmarks {info['landmarks']}: stored as NaN")
    if config["representation"] == "flow":
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


def clip_landmarks(transform, onset: np.ndarray, apex: np.ndarray, task: ClipTask) -> tuple[np.ndarray, str]:
    """The 68 landmarks of the onset and apex crops, float32 (2, 68, 2) in crop pixels, and the manifest's note.

    They are fitted on the crops themselves (`crop_landmarks`: one face box for both, so their difference is the
    face's motion), not carried over from the alignment's fit: that fit may come from another frame than the
    onset (when the onset shows no face) and never sees the apex. The crops are made for this at the frames' own
    resolution (the same crop square, `AlignTransform.resized`), since a cache's crops may be too small for dlib
    (28 px for some networks), and the points are scaled to the cached side.
    """
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


def _clip_frames(task: ClipTask, transform, k: int, have: dict[int, np.ndarray], info: dict) -> np.ndarray:
    """The clip's aligned grey frames from onset to offset, resampled to `k` (linear in time, `temporal_resample`).

    Only the frames the resampling reads are loaded; an unreadable one is noted in `info` and left out, and its
    neighbours take its place (onset and apex, already read, are in `have`).
    """
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


def _run(args: tuple[ClipTask, dict]) -> tuple[int, dict[str, np.ndarray], dict]:
    task, config = args
    crops, info = align_clip(task, config)
    return task.number, crops, info


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already
    dlib_models()


def _part_path(directory: Path, number: int) -> Path:
    return directory / "parts" / f"{number:06d}.safetensors"


def _sample_facts(sample: Sample, clip_frames: int = 0) -> dict:
    facts = {
        "uid": sample.uid,
        "label": sample.label,
        "onset": sample.onset,
        "apex": sample.apex,
        # absolute: two copies of a dataset, each reached as `--root CASME2` from its own folder, are two datasets
        "frames": [os.path.abspath(p) for p in sample.frames],
        "aus": sample.au_string,  # the AU table follows the sheet: an edited AU cell makes a new cache
    }
    if clip_frames:  # the cached clip frames run to the offset: an edited offset makes a new cache
        facts["offset"] = sample.offset  # only then: caches made without frames keep their key
    return facts


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
    the aligner version and each clip's label, key frames (with `clip_frames`, its offset too) and frame files'
    absolute paths, not the pixels, so after replacing frame files delete the cache directory to rebuild it.

    Raises:
        ConfigError: a bad `representation`, `size`, `margin`, `workers` or `clip_frames`.
        NotInstalledError: dlib, its model file, or (for flow) OpenCV's contrib modules are not installed.
        CacheError: an index with no clips, or `out` cannot be written (read-only, a file, the disk full: the
            message says which).
    """
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
    samples_digest = digest([_sample_facts(s, clip_frames) for s in index.samples])
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
            (clip_task(i, s, aligner.max_frames, clip_frames), config)
            for i, s in enumerate(index.samples)
            if not _part_path(directory, i).is_file()
        ]
        with _progress(progress, len(index.samples), len(index.samples) - len(todo), f"aligning {name}") as advance:
            if workers == 1 or len(todo) <= 1:
                results = map(_run, todo)
                _write_parts(directory, results, advance)
            else:
                # spawned workers that exit with this process and leave nothing in /dev/shm (pamer.workers)
                with WorkerPool(min(workers, len(todo)), _worker_init) as pool:
                    _write_parts(directory, pool.run(_run, [(task,) for task in todo]), advance)
        _assemble(directory, index, config, key, samples_digest)
    return directory


@contextmanager
def _sole_writer(directory: Path) -> Iterator[None]:
    """Hold the cache directory's lock while this prepare writes it; refuse at once when another prepare holds it.

    The lock is `outputs.sole_writer` on `.prepare.lock`: a killed prepare never blocks the rerun that resumes it.
    """
    with sole_writer(directory / LOCK_FILE) as held:
        if not held:
            raise CacheError(
                f"another `pamer prepare` is writing the cache {directory} right now; let it finish, then rerun "
                "this one (it returns the finished cache)"
            )
        yield


def _write_parts(directory: Path, results, advance) -> None:
    for number, crops, info in results:
        save_arrays(_part_path(directory, number), crops, {"info": json.dumps(info, sort_keys=True)})
        advance()


@contextmanager
def _progress(show: bool, total: int, done: int, label: str) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr (or nothing), yielding the callback that advances it by one clip."""
    if not show:
        yield lambda: None
        return
    # lazy: spotting and predict import pamer.preprocess without preparing; only a shown bar loads rich
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total, completed=done)
        yield lambda: bar.advance(task)


def _assemble(directory: Path, index: DatasetIndex, config: dict, key: str, samples_digest: str) -> None:
    """Gather the parts into the final arrays, manifest and cache.json (in that order), then drop the parts."""
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
