"""Classic methods of the paper's comparison: hand-crafted features + a linear SVM, run by `pamer loso` like a network.

A classic method is named in a run's configuration as `model.name` (`lbptop`, `biwoof`); `model.args` holds its
feature options (defaults: the published recipe) and the SVM's `C`, or a `c_grid` to choose C from by an inner
leave-one-subject-out on each fold's training subjects. The engine (`pamer.engine.classic`) computes every clip's
features once per process and fits the SVM per fold on the training subjects only.

- `lbptop` (`pamer.classic.lbptop`): LBP-TOP of each clip's frames, onset to offset resampled to K (the cache's
  `frames`, `pamer prepare --clip-frames 10`).
- `biwoof` (`pamer.classic.biwoof`): Bi-WOOF of the onset -> apex TV-L1 flow (the cache's `flow`,
  `pamer prepare --representation flow`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pamer.classic.biwoof import biwoof_features
from pamer.config import Config, ConfigError
from pamer.preprocess.cache import Cache

__all__ = [
    "SVM_OPTIONS",
    "ClassicMethod",
    "check_classic",
    "classic_features",
    "describe_fit",
    "feature_options",
    "get_classic",
    "is_classic",
    "list_classic",
    "svm_options",
]

# the SVM's options in `model.args`, beside the method's feature options: a fixed C (LIBSVM's default), or a grid
# of C values to choose from by an inner leave-one-subject-out on each fold's training subjects (when not empty)
SVM_OPTIONS: dict[str, Any] = {"C": 1.0, "c_grid": []}


@dataclass(frozen=True)
class ClassicMethod:
    """A hand-crafted feature for the linear SVM.

    Attributes:
        name: the `model.name` that selects it (also its name in `configs/peers/published.yaml`).
        title: how papers name it.
        needs: what of the cache it reads: "frames" (`Cache.frames`) or "flow" (`Cache.flow`).
        options: its feature options with their defaults (the published recipe); `model.args` may set them.
        compute: (the array it reads, options) -> (N, D) features.
        check: (cache, options) -> a message saying why the cache does not fit, or "".
    """

    name: str
    title: str
    needs: str
    options: dict[str, Any]
    compute: Callable[..., np.ndarray]
    check: Callable[[Cache, dict[str, Any]], str]


def _lbptop(frames: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    # scikit-image (and SciPy under it) load only when LBP-TOP runs: the engine imports this registry for every
    # run, and they add about 0.3 s to its start
    from pamer.classic.lbptop import lbptop_features

    return lbptop_features(frames, options["radius_xy"], options["radius_t"], options["points"], options["blocks"])


def _check_lbptop(cache: Cache, options: dict[str, Any]) -> str:
    have = cache.frames.shape[1]
    if have != options["frames"]:
        return (
            f"lbptop's recipe resamples each clip to {options['frames']} frames (model.args.frames), but the cache "
            f"holds {have} per clip: prepare one with --clip-frames {options['frames']}, or set model.args.frames"
        )
    if have <= 2 * math.ceil(options["radius_t"]):
        return f"lbptop with radius_t={options['radius_t']} needs more than {2 * math.ceil(options['radius_t'])} frames"
    height, width = cache.frames.shape[2:]
    blocks, border = options["blocks"], math.ceil(options["radius_xy"])
    if min(height, width) - 2 * border < blocks:
        return (
            f"lbptop's {blocks} x {blocks} blocks with radius_xy={options['radius_xy']} need frames of at least "
            f"{blocks + 2 * border} px a side, the cache's are {height} x {width}: set model.args.blocks or "
            "model.args.radius_xy, or prepare larger crops (--size)"
        )
    return ""


def _check_biwoof(cache: Cache, options: dict[str, Any]) -> str:
    kind = cache.config.get("flow_kind", "metric")
    if kind != "metric":
        return (
            f"biwoof needs metric flow (orientation and magnitude in pixels); this cache's flow is {kind!r} "
            "(min-max stretched images have no zero and no sign): prepare the raw frames with --representation flow"
        )
    height, width = cache.flow.shape[1:3]
    if min(height, width) < options["blocks"]:
        return (
            f"biwoof's {options['blocks']} x {options['blocks']} blocks need a flow field of at least "
            f"{options['blocks']} px a side, the cache's is {height} x {width}: set model.args.blocks, or prepare "
            "larger crops (--size)"
        )
    return ""


_METHODS: dict[str, ClassicMethod] = {
    m.name: m
    for m in (
        ClassicMethod(
            "lbptop",
            "LBP-TOP",
            "frames",
            {"frames": 10, "radius_xy": 1.0, "radius_t": 4.0, "points": 8, "blocks": 5},
            _lbptop,
            _check_lbptop,
        ),
        ClassicMethod(
            "biwoof",
            "Bi-WOOF",
            "flow",
            {"blocks": 5, "bins": 8},
            lambda flow, o: biwoof_features(flow, o["blocks"], o["bins"]),
            _check_biwoof,
        ),
    )
}

# what each option must be: (test, expected) - all are numbers, and a bool is not one
_VALID: dict[str, tuple[Callable[[Any], bool], str]] = {
    "frames": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "radius_xy": (lambda v: isinstance(v, (int, float)) and 0 < v <= 8, "a radius in (0, 8] pixels"),
    "radius_t": (lambda v: isinstance(v, (int, float)) and 0 < v <= 8, "a radius in (0, 8] frames"),
    "points": (lambda v: isinstance(v, int) and 4 <= v <= 16, "an integer in [4, 16]"),
    "blocks": (lambda v: isinstance(v, int) and 1 <= v <= 32, "an integer in [1, 32]"),
    "bins": (lambda v: isinstance(v, int) and 2 <= v <= 360, "an integer in [2, 360]"),
    "C": (lambda v: isinstance(v, (int, float)) and v > 0, "a positive number"),
    "c_grid": (
        lambda v: isinstance(v, list) and all(isinstance(c, (int, float)) and c > 0 for c in v),
        "a list of positive numbers (empty: use C)",
    ),
}


def is_classic(name: str) -> bool:
    """Whether `name` is a classic method rather than a network."""
    return name in _METHODS


def list_classic() -> list[str]:
    """Names of the classic methods, sorted."""
    return sorted(_METHODS)


def get_classic(name: str) -> ClassicMethod:
    """The classic method `name` (a `ConfigError` listing the known ones for another name)."""
    if name not in _METHODS:
        raise ConfigError(f"unknown classic method {name!r}; known: {', '.join(list_classic())}")
    return _METHODS[name]


def _options(method: ClassicMethod, args: dict[str, Any]) -> dict[str, Any]:
    """The method's feature and SVM options: its defaults, then `model.args`, each checked."""
    known = {**method.options, **SVM_OPTIONS}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ConfigError(
            f"model.args {', '.join(unknown)} not an option of {method.name!r}; it takes {', '.join(sorted(known))}"
        )
    options = {**known, **args}
    for key, value in options.items():
        valid, expected = _VALID[key]
        if isinstance(value, bool) or not valid(value):
            raise ConfigError(f"model.args.{key} = {value!r} for {method.name!r}: expected {expected}")
    if "C" in args and options["c_grid"]:  # the grid chooses C: a C given beside it was never used
        raise ConfigError(
            f"model.args.C = {args['C']!r} for {method.name!r} is not used while model.args.c_grid = "
            f"{options['c_grid']!r} chooses C; give one: C with c_grid: [], or the grid alone"
        )
    return options


def feature_options(config: Config) -> dict[str, Any]:
    """The feature options of the configured classic method (its defaults overridden by `model.args`)."""
    method = get_classic(config.model.name)
    options = _options(method, config.model.args)
    return {k: options[k] for k in method.options}


def svm_options(config: Config) -> tuple[float, list[float]]:
    """(C, c_grid) of the configured classic method: a fixed C, or the grid an inner LOSO chooses C from."""
    options = _options(get_classic(config.model.name), config.model.args)
    return float(options["C"]), [float(c) for c in options["c_grid"]]


def describe_fit(config: Config) -> str:
    """How a fold's classifier was fitted, for `metrics.json`'s protocol line."""
    c, grid = svm_options(config)
    how = f"C chosen from {grid} by an inner LOSO on the training subjects" if grid else f"C = {c:g}"
    return f"linear SVM on {config.model.name} features, {how}"


def check_classic(config: Config, cache: Cache | None = None) -> None:
    """Check a classic method's configuration (and, given, the cache it will read) before any fold starts.

    Raises:
        ConfigError: an unknown option or a bad value in `model.args`, `oracle: true` (a classic method has no
            epochs to choose from), a cache without what the method reads, or a `c_grid` with fewer than 3
            subjects.
    """
    method = get_classic(config.model.name)
    options = _options(method, config.model.args)
    if config.oracle:
        raise ConfigError(
            f"oracle: true has no meaning for the classic method {method.name!r} (an SVM has no epochs to pick "
            "on the test subject); set oracle: false"
        )
    if cache is None:
        return
    where = config.data.cache or "(in memory)"
    if method.needs == "frames" and cache.frames is None:
        raise ConfigError(
            f"{method.name} reads each clip's frames, but cache {where} has none: prepare it with "
            f"`pamer prepare ... --clip-frames {options.get('frames', 10)}`"
        )
    if method.needs == "flow" and cache.flow is None:
        raise ConfigError(
            f"{method.name} reads the onset -> apex flow, but cache {where} has none: prepare it with "
            "`pamer prepare ... --representation flow` (and set data.representation: flow)"
        )
    problem = method.check(cache, options)
    if problem:
        raise ConfigError(f"cache {where}: {problem}")
    subjects = len(set(cache.subjects))
    if options["c_grid"] and subjects < 3:
        raise ConfigError(
            f"model.args.c_grid: choosing C by a leave-one-subject-out inside each fold's training subjects needs "
            f"at least 3 subjects, cache {where} has {subjects}; set model.args.c_grid: [] and model.args.C instead"
        )


def classic_features(config: Config, cache: Cache) -> np.ndarray:
    """Every clip's feature vector for the configured classic method: (N, D) float64.

    Each clip's vector depends on that clip alone (nothing is fitted across clips), so computing all of them once
    lets no test clip influence a training clip's features.
    """
    check_classic(config, cache)
    method = get_classic(config.model.name)
    data = cache.frames if method.needs == "frames" else cache.flow
    return method.compute(data, feature_options(config))
