"""What a run trains on and where: the cache named by the config, the device, every clip's network input."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pamer.config import Config, ConfigError
from pamer.devices import DeviceError, torch_device
from pamer.models import model_method
from pamer.preprocess.cache import Cache, CacheError, flow_kind, load_cache
from pamer.preprocess.network_input import motion_inputs

__all__ = ["Inputs", "as_inputs", "cache_path", "device_for", "load_cache_for", "network_inputs", "prepare_inputs"]

# every clip's network input(s): one tensor (the plain path), or a tuple for a network that declares its own inputs
Inputs = Tensor | tuple[Tensor, ...]


def device_for(config: Config) -> torch.device:
    """The device named by `train.device` (`auto`: CUDA when available)."""
    name = config.train.device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch_device(name)
    except DeviceError as err:
        raise ConfigError(f"train.device = {name!r}: {err}") from None


def cache_path(config: Config) -> Path:
    """The cache directory named by `data.cache`; also accepts `pamer prepare`'s `--out` folder holding one cache."""
    if not config.data.cache:
        raise ConfigError("data.cache is empty: name a cache written by `pamer prepare` (--set data.cache=PATH)")
    path = Path(config.data.cache)
    inside = sorted(p.parent for p in path.glob("*/cache.json")) if path.is_dir() else []
    if not (path / "cache.json").is_file() and len(inside) == 1:
        return inside[0]
    return path


def load_cache_for(config: Config) -> Cache:
    """The cache named by `data.cache` (see `cache_path`), checked against `data.representation`."""
    expect = {"representation": "flow"} if config.data.representation == "flow" else None
    return load_cache(cache_path(config), expect=expect)


def prepare_inputs(cache: Cache, config: Config, device: torch.device, size: int | None = None) -> Tensor:
    """Every clip's un-normalised network input on `device`, computed once per run.

    Args:
        size: the side to resize to; None: `train.input_size`.

    Shape:
        - Output: (N, 3, size, size) float32.

    Raises:
        CacheError: the cache holds no clips, or not the arrays `data.representation` reads.
    """
    name = config.data.cache or "(in memory)"
    if len(cache) == 0:
        raise CacheError(f"cache {name} holds no clips")
    representation, size = config.data.representation, size or config.train.input_size
    if representation == "flow":
        if cache.flow is None:
            raise CacheError(
                f"data.representation is 'flow' but cache {name} has no flow field; "
                "prepare it with --representation flow"
            )
        kind = flow_kind(cache.config)
        return motion_inputs(cache.flow, None, size, representation="flow", flow_kind=kind, device=device)
    if representation == "apex":
        if cache.apex is None:
            raise CacheError(
                f"data.representation is 'apex' but cache {name} holds no apex crops (it holds flow images only); "
                "prepare it with --representation apex"
            )
        return motion_inputs(None, cache.apex, size, representation="apex", device=device)
    if cache.onset is None or cache.apex is None:
        held = "apex crops" if cache.apex is not None else "flow images"
        use = "apex" if cache.apex is not None else "flow"
        raise CacheError(
            f"data.representation is 'diff' (apex - onset) but cache {name} holds {held} only, no onset; "
            f"set data.representation={use}"
        )
    return motion_inputs(cache.onset, cache.apex, size, device=device)


def network_inputs(cache: Cache, config: Config, device: torch.device) -> Inputs:
    """Every clip's input(s) to the configured network: `prepare_inputs`' tensor, or the tuple the network's
    declared `Method.inputs` builds (checked against its `input_shapes`)."""
    method = model_method(config.model.name)
    if method.inputs is None:
        return prepare_inputs(cache, config, device)
    inputs = tuple(method.inputs(cache, lambda side: prepare_inputs(cache, config, device, side)))
    shapes = tuple(tuple(x.shape[1:]) for x in inputs)
    if shapes != method.input_shapes or any(len(x) != len(cache) for x in inputs):
        raise ValueError(
            f"model {config.model.name!r} built inputs of per-clip shapes {shapes} for {len(cache)} clips; "
            f"it declares {method.input_shapes}"
        )
    return inputs


def as_inputs(inputs: Inputs) -> tuple[Tensor, ...]:
    """`inputs` as a tuple (one tensor becomes a tuple of one)."""
    return inputs if isinstance(inputs, tuple) else (inputs,)
