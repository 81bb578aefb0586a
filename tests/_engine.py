"""Caches and configurations for the engine, run, method and report tests.

`make_cache` builds every in-memory `Cache` these tests train or report on: noise clips whose apex (and flow)
carries a bright band at rows chosen by the clip's class, so that a network can learn the labels. Its arguments
choose the subjects, labels, classes, side, arrays, AU coding and config, and any `Cache` field may be given as it
is (a test's own frames, flow or landmarks). `tiny_config` is the two-epoch `pamnet_test` configuration of the
engine tests, and `write_cache` writes a cache to disk as `pamer prepare` does, for runs that load it themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pamer.config import Config, load_config
from pamer.preprocess import cache as cache_module
from pamer.preprocess.cache import Cache

CLASSES = ("negative", "positive", "surprise")


def make_cache(
    subjects: int | Sequence[str] = 3,
    per_subject: int = 6,
    *,
    labels: Sequence[int] | str = "random",
    classes: Sequence[str] = CLASSES,
    size: int = 36,
    seed: int = 0,
    arrays: Sequence[str] = ("onset", "apex"),
    au_names: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    **given: Any,
) -> Cache:
    """A cache of noise clips whose class shows as a brighter band of the apex (rows 4 + 8 c to 12 + 8 c, columns
    6 to 30 for class c) and of the flow.

    Args:
        subjects: how many subjects, clip i belonging to `sub{i % subjects:02d}` (`per_subject` clips each); or
            each clip's subject.
        labels: each clip's class index; "random" (drawn after the frames) or "every class" (clip i of class
            `(i // subjects) % len(classes)`, so that every subject has every class).
        size: the frames' side.
        arrays: what the cache holds of onset (uint8 noise below 200), apex (the onset and the band) and flow
            (float32 noise of 0.3 and the band); without an onset the config lists them, as for ready-made images.
        au_names: AU numbers: an AU table is added, each AU coded on about 40% of the clips, clip 1 uncoded.
        config: entries that add to or replace the cache config (`dataset` synthetic, `size`, `representation`).
        given: `Cache` fields taken as they are (`datasets`, `landmarks`, `frames`, or an array in place of the
            one that would be made).
    """
    rng = np.random.default_rng(seed)
    names = [f"sub{i % subjects:02d}" for i in range(subjects * per_subject)] if isinstance(subjects, int) else subjects
    n = len(names)
    made = [name for name in ("onset", "apex") if name in arrays and name not in given]
    base = rng.integers(0, 200, (n, size, size, 3), dtype=np.uint8) if made else None
    if isinstance(labels, str):
        every_class = (np.arange(n) // len(set(names))) % len(classes)
        labels = rng.integers(0, len(classes), n) if labels == "random" else every_class
    labels = np.asarray(labels, dtype=np.int64)
    bands = [(slice(4 + 8 * label, 12 + 8 * label), slice(6, 30)) for label in labels]
    made_arrays: dict[str, np.ndarray | None] = dict.fromkeys(("onset", "apex", "flow"))
    if "onset" in made:
        made_arrays["onset"] = base
    if "apex" in made:
        made_arrays["apex"] = base.copy()
        for i, band in enumerate(bands):
            made_arrays["apex"][(i, *band)] += 50
    if "flow" in arrays and "flow" not in given:
        made_arrays["flow"] = rng.normal(0, 0.3, (n, size, size, 3)).astype(np.float32)
        for i, band in enumerate(bands):
            made_arrays["flow"][(i, *band)] += 1.0
    if au_names is not None and "aus" not in given:
        given["aus"] = (rng.random((n, len(au_names))) < 0.4).astype(np.float32)
        given["aus"][1] = np.nan  # a clip without AU coding
    representation = "flow" if "flow" in arrays else "diff" if "onset" in arrays else "apex"
    settings = {"dataset": "synthetic", "size": size, "representation": representation}
    if "onset" not in arrays:
        settings["arrays"] = list(arrays)
    return Cache(
        **{**made_arrays, **given},
        labels=labels,
        subjects=list(names),
        clips=[f"clip{i:03d}" for i in range(n)],
        classes=tuple(classes),
        config={**settings, **(config or {})},
        au_names=None if au_names is None else tuple(au_names),
    )


def tiny_config(*extra: str) -> Config:
    """`pamnet_test` for 2 epochs at 32 px, batches of 8, one thread on the CPU, seed 3; `extra` are more overrides."""
    return load_config(
        None,
        [
            "model.name=pamnet_test",
            "train.epochs=2",
            "train.input_size=32",
            "train.batch_size=8",
            "train.threads=1",
            "train.device=cpu",
            "seed=3",
            *extra,
        ],
    )


def write_cache(cache: Cache, path: Path) -> Path:
    """`cache` (onset, apex, labels) as a cache directory in `pamer prepare`'s format, content digests included."""
    path.mkdir(parents=True)
    arrays = {"onset": cache.onset, "apex": cache.apex, "labels": cache.labels}
    meta = {
        "format": cache_module.FORMAT,
        "key": cache_module.digest([cache.config, "handmade"]),
        "samples_digest": "handmade",
        "config": cache.config,
        "classes": list(cache.classes),
        "subjects": cache.subjects,
        "clips": cache.clips,
    }
    cache_module.write_cache(path, arrays, meta, {})
    return path
