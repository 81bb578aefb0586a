"""Model registry: variants register a builder function under a unique name; `create_model` builds one by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

__all__ = ["ModelConfigError", "create_model", "describe_model", "list_models", "register_model"]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}


class ModelConfigError(ValueError):
    """A model name, option or input that the networks cannot accept (the message names the value)."""


def register_model(fn: Builder) -> Builder:
    """Register a builder function under its own name (use as a decorator).

    Raises:
        ModelConfigError: when a model of that name is registered already.
    """
    name = fn.__name__
    if name in _MODELS:
        raise ModelConfigError(f"model {name!r} is registered already ({_MODELS[name].__module__}.{name})")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def describe_model(name: str) -> str:
    """The first line of model `name`'s builder docstring."""
    if name not in _MODELS:
        raise ModelConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return (inspect.getdoc(_MODELS[name]) or "").split("\n", 1)[0]


def create_model(name: str, num_classes: int = 5, **overrides: Any) -> nn.Module:
    """Build the registered model `name` with `num_classes` outputs.

    Args:
        name: a name from `list_models()`.
        num_classes: number of output logits.
        **overrides: constructor options that replace the variant's own (e.g. `stem_stride=1`).

    Raises:
        ModelConfigError: for an unknown name (the message lists the known ones) or an invalid option.
    """
    if name not in _MODELS:
        raise ModelConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    return _MODELS[name](num_classes=num_classes, **overrides)
