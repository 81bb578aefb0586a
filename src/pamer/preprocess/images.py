"""The cache of ready-made images (`pamer prepare htnet|images`): one flow image or apex crop per clip, no alignment.

These inputs were cropped (and their flow computed) by someone else's preprocessing, so pamer detects no face and
aligns nothing: each image is read (`pamer.frames.read_rgb`, by its bit depth), resized to the cache's square side
when it has another size (as the HTNet and STSTNet code resizes with `cv2.resize`, aspect not kept), and stored. An
image that holds nothing (one colour) or a grey image given as flow is skipped with its reason
(`pamer.data.images.image_trouble`). The cache is an ordinary pamer cache
(`pamer.preprocess.cache`), so `pamer loso`, `pamer train` and `pamer report` take it unchanged:

- `--representation flow`: `flow` float32 N x S x S x 3, the image's R, G, B values 0..255 as u, v and strain
  (the channel order of the MEGC2019 flow images); `config["flow_kind"] = "normalised"`: the values were min-max
  stretched per image, so they have no zero and no sign (`pamer.engine.augment` handles them accordingly).
- `--representation apex`: `apex` uint8 N x S x S x 3, the face crops.

No onset is stored (`Cache.onset` is None): the inputs have none. Each clip's subject, clip, label and dataset of
origin are kept, and its action units where the csv has an `aus` column (`Cache.aus`, `au_names`).

Landmarks (`Cache.landmarks`, N x 2 x 68 x 2): the onset's are NaN (no onset); the apex's are dlib's 68 points
detected on the clip's apex crop when it has one (`--representation apex`, or the MEGC2019 folders' apex crop beside
a flow image), scaled to the cached side. For a flow cache this takes the flow image and the apex crop to show the
same face square, as the HTNet authors' code does (its `whole_face_block_coordinates` resizes the apex crop to
28 x 28 and takes its landmarks as the flow image's). A clip without an apex crop, or whose crop shows no face, keeps
NaN and says so in the manifest's `landmarks` column; it is cached all the same.

`manifest.csv` has one row per clip of the index with what happened to it (`face`: "given", never aligned;
`landmarks`: where the apex's were found, or why there are none), and `problems.csv` every problem the reader
found (files missing or unlisted, per-fold copy differences), so nothing it reported is lost with the terminal.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from pamer.config import MAX_SIZE, ConfigError
from pamer.data.images import ImageIndex, ImageSample, image_trouble
from pamer.frames import ImageError, read_rgb
from pamer.preprocess.cache import FORMAT, CacheError, au_table, cache_meta, check_writable, digest, write_cache
from pamer.preprocess.face import crop_landmarks, rescale_points

REPRESENTATIONS = ("flow", "apex")
MANIFEST_COLUMNS = (
    "subject",
    "clip",
    "dataset",
    "label",
    "status",
    "file",
    "source_size",
    "face",
    "landmarks",
    "problems",
)
PROBLEM_COLUMNS = ("clip", "kind", "detail")
FACE_NOTE = "given: the inputs are already cropped faces (or flow of them); no alignment"


def prepare_images(
    index: ImageIndex,
    out: str | Path,
    representation: str,
    size: int | None = None,
    protocol: str | None = None,
) -> Path:
    """Read every clip's image of `representation` and write the cache under `out`; return the cache directory.

    Args:
        index: an `ImageIndex` from `pamer.data.read("htnet" | "images", ...)`.
        out: the folder that holds caches; the cache is `out/<dataset>[-<protocol>]-<representation>-<key>`.
        representation: "flow" (flow images) or "apex" (apex face crops).
        size: side of the cached squares; None: the side of the most common image size (28 for the MEGC2019 flow
            images, the crop's side for apex crops), never that of one odd image. Images of another size are
            resized to it (area interpolation when shrinking, bilinear when enlarging), each noted by name in the
            manifest.
        protocol: the protocol name the index was read with, recorded in the name and config.

    A clip without an image of `representation` (e.g. its flow image is missing), with an image that cannot be
    decoded, that holds one colour only, or a grey image given as flow, is skipped and listed in the manifest with
    the file named and the reason; none stops the run. The cache key covers the settings and each clip's label
    and file (its path and a digest of its bytes), so a changed file makes a new cache even at the same size.

    Raises:
        ConfigError: a bad `representation` or `size`.
        ValueError: an index of frame clips (a `DatasetIndex` goes to `pamer.preprocess.prepare`).
        CacheError: not one clip with a readable image of `representation`, or `out` cannot be written.
    """
    if representation not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {representation!r}; expected one of {', '.join(REPRESENTATIONS)}")
    if not isinstance(index, ImageIndex):
        raise ValueError(
            f"dataset {index.name} holds frame clips, not images: prepare it with `pamer.preprocess.prepare`"
        )
    if size is not None and not 8 <= size <= MAX_SIZE:
        raise ConfigError(f"size must be 8 to {MAX_SIZE} pixels, got {size}")
    images: list[np.ndarray | None] = []
    infos: list[dict] = []
    for sample in index.samples:
        image, info = _read(sample, representation)
        images.append(image)
        infos.append(info)
    read_ok = [image for image in images if image is not None]
    if not read_ok:
        reasons = "; ".join(dict.fromkeys(i["problems"] for i in infos[:3]))
        raise CacheError(
            f"none of the {len(index.samples)} clips of {index.name} has a readable {representation} image: {reasons}"
        )
    if size is None:  # the most common size: one odd image must not set the side of all the others
        (height, width), _ = Counter(image.shape[:2] for image in read_ok).most_common(1)[0]
        size = max(height, width)

    config = {
        "format": FORMAT,
        "dataset": index.name,
        "protocol": protocol,
        "classes": list(index.classes),
        "representation": representation,
        "arrays": [representation],
        "size": size,
        "face": "given",
    }
    if representation == "flow":
        config["flow_kind"] = "normalised"
    samples_digest = digest([_facts(s, representation) for s in index.samples])
    key = digest([config, samples_digest])
    name = "-".join(part for part in (index.name, protocol, representation, key[:12]) if part)
    directory = Path(out) / name
    if (directory / "cache.json").is_file():
        return directory
    check_writable(out)
    directory.mkdir(parents=True, exist_ok=True)

    kept, labels, subjects, clips, origins, rows, points, coded = [], [], [], [], [], [], [], []
    for sample, image, info in zip(index.samples, images, infos, strict=True):
        row = {
            "subject": sample.subject,
            "clip": sample.clip,
            "dataset": sample.dataset,
            "label": sample.label,
            "status": "skipped",
            "file": info["file"],
            "source_size": "",
            "face": FACE_NOTE,
            "problems": info["problems"],
        }
        if image is not None:
            height, width = image.shape[:2]
            row.update(status="cached", source_size=f"{width}x{height}")
            if (height, width) != (size, size):
                image = to_square(image, size)
                row["problems"] = f"resized from {width}x{height} to {size}x{size}"
            apex, row["landmarks"] = _apex_landmarks(sample, representation, image, size)
            points.append(np.stack([np.full_like(apex, np.nan), apex]))
            coded.append(sample.aus)
            kept.append(image)
            labels.append(index.classes.index(sample.label))
            subjects.append(sample.subject)
            clips.append(sample.clip)
            origins.append(sample.dataset)
        rows.append(row)
    found: dict[str, list[str]] = {}  # what the reader found about a clip stays beside it
    for problem in index.problems:
        found.setdefault(problem.clip, []).append(f"{problem.kind}: {problem.detail}")
    for sample, row in zip(index.samples, rows, strict=True):
        row["problems"] = "; ".join([*found.get(sample.uid, []), *filter(None, [row["problems"]])])
    dtype = np.float32 if representation == "flow" else np.uint8
    arrays = {
        "labels": np.asarray(labels, dtype=np.int64),
        representation: np.stack(kept).astype(dtype) if kept else np.zeros((0, size, size, 3), dtype),
    }
    arrays["landmarks"] = np.stack(points) if points else np.zeros((0, 2, 68, 2), np.float32)
    meta = cache_meta(config, key, samples_digest, subjects, clips, origins if index.origins else None)
    aus, au_names = au_table(coded)
    if aus is not None:
        arrays["aus"], meta["au_names"] = aus, list(au_names)
    problems = [{"clip": p.clip, "kind": p.kind, "detail": p.detail} for p in index.problems]
    tables = {"manifest.csv": (MANIFEST_COLUMNS, rows), "problems.csv": (PROBLEM_COLUMNS, problems)}
    write_cache(directory, arrays, meta, tables)
    return directory


def to_square(image: np.ndarray, size: int) -> np.ndarray:
    """`image` resized to `size` x `size` as the cache stores it (area interpolation when shrinking, bilinear when
    enlarging; aspect not kept, as the HTNet/STSTNet code resizes). `pamer predict` crops given frames the same way.
    """
    if image.shape[:2] == (size, size):
        return image
    shrink = max(image.shape[:2]) > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _read(sample: ImageSample, representation: str) -> tuple[np.ndarray | None, dict]:
    """One clip's image (RGB uint8) and its manifest facts; None with the reason when it has none or it is bad."""
    path = sample.file_for(representation)
    if path is None:
        return None, {"file": "", "problems": f"no {representation} image (see the reader's problems)"}
    try:
        image = read_rgb(path)
    except ImageError as error:
        return None, {"file": str(path), "problems": str(error)}
    trouble = image_trouble(image, representation)
    if trouble is not None:
        return None, {"file": str(path), "problems": f"{trouble[0]}: {path}: {trouble[1]}; skipped"}
    return image, {"file": str(path), "problems": ""}


def _apex_landmarks(sample: ImageSample, representation: str, image: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """The apex's 68 landmarks in the cached square's pixels, float32 (68, 2) (NaN when there is none), and the
    manifest's note: found on the clip's apex crop (`image` itself for an apex cache)."""
    nothing = np.full((68, 2), np.nan, dtype=np.float32)
    if representation == "apex":
        crop, path = image, sample.file_for("apex")
    else:
        path = sample.files.get("apex")
        if path is None:
            return nothing, "none: no apex crop"
        try:
            crop = read_rgb(path)
        except ImageError as error:
            return nothing, f"none: {error}"
    found = crop_landmarks([crop])[0]
    if np.isnan(found).any():
        return nothing, f"none: no face found in {path}"
    return rescale_points(found, crop.shape[:2], (size, size)).astype(np.float32), f"apex: {path}"


def _facts(sample: ImageSample, representation: str) -> list:
    """What the cache key knows of a clip: its name, label, file and a digest of the file's bytes (not its size:
    another image of the same byte size must make another cache)."""
    path = sample.file_for(representation)
    content = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest() if path and path.is_file() else None
    return [sample.uid, sample.label, str(path), content, sample.au_string]


__all__ = ["REPRESENTATIONS", "prepare_images", "to_square"]
