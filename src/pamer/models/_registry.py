"""Model registry: variants register a builder function under a unique name; `create_model` builds one by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from torch import nn

from pamer.errors import PamerError
from pamer.models.method import Method

__all__ = [
    "ModelConfigError",
    "create_model",
    "describe_model",
    "list_models",
    "model_input_size",
    "model_method",
    "register_model",
]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# name -> the one square input side the network accepts (a classifier sized for it); absent: any side
_INPUT_SIZES: dict[str, int] = {}
# name -> what the network declares beyond one input and cross-entropy (`pamer.models.method`); absent: nothing
_METHODS: dict[str, Method] = {}
PLAIN = Method()


class ModelConfigError(PamerError):
    """A model name, option or input that the networks cannot accept (the message names the value)."""


@overload
def register_model(fn: Builder, *, input_size: int | None = None, method: Method | None = None) -> Builder: ...


@overload
def register_model(
    fn: None = None, *, input_size: int | None = None, method: Method | None = None
) -> Callable[[Builder], Builder]: ...


def register_model(
    fn: Builder | None = None, *, input_size: int | None = None, method: Method | None = None
) -> Builder | Callable[[Builder], Builder]:
    """Register a builder function under its own name (use as `@register_model` or `@register_model(input_size=28)`).

    Args:
        fn: the builder; it takes `num_classes` and the network's options as keywords.
        input_size: the only square input side the network accepts (e.g. a fully connected layer sized for a
            28 x 28 input); None for networks that take any side.
        method: the network's inputs, loss and fold statistics (`pamer.models.method.Method`); None: one input
            from `prepare_inputs` and cross-entropy.

    Raises:
        ModelConfigError: when a model of that name is registered already, or `input_size` is not a positive integer.
    """
    if input_size is not None and (isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1):
        raise ModelConfigError(f"input_size must be a positive integer or None, got {input_size!r}")

    def register(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _MODELS:
            raise ModelConfigError(f"model {name!r} is registered already ({_MODELS[name].__module__}.{name})")
        _MODELS[name] = builder
        if input_size is not None:
            _INPUT_SIZES[name] = input_size
        if method is not None:
            _METHODS[name] = method
        return builder

    return register if fn is None else register(fn)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def _known(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise ModelConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name]


def describe_model(name: str) -> str:
    """The first line of model `name`'s builder docstring."""
    return (inspect.getdoc(_known(name)) or "").split("\n", 1)[0]


def model_input_size(name: str) -> int | None:
    """The only square input side model `name` accepts, or None when it takes any side (>= 16 pixels)."""
    _known(name)
    return _INPUT_SIZES.get(name)


def model_method(name: str) -> Method:
    """What model `name` declares beyond one input and cross-entropy: a plain `Method()` for any name that declares
    nothing (`create_model` is what refuses an unknown name)."""
    return _METHODS.get(name, PLAIN)


def create_model(name: str, num_classes: int = 5, **overrides: Any) -> nn.Module:
    """Build the registered model `name` with `num_classes` outputs.

    Args:
        name: a name from `list_models()`.
        num_classes: number of output logits.
        **overrides: constructor options that replace the variant's own (e.g. `stem_stride=1`).

    Raises:
        ModelConfigError: for an unknown name (the message lists the known ones) or an invalid option.
    """
    builder = _known(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:
        inspect.signature(builder).bind(num_classes=num_classes, **overrides)
    except TypeError:
        options = [p for p in inspect.signature(builder).parameters if p != "num_classes"]
        unknown = sorted(set(overrides) - set(options))
        if not unknown:  # a builder written without a num_classes keyword
            raise ModelConfigError(f"model {name!r}: its builder does not take num_classes as a keyword") from None
        raise ModelConfigError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}; options: {', '.join(options) or 'none'}"
        ) from None
    return builder(num_classes=num_classes, **overrides)
