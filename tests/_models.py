"""What the model tests look at in one forward pass: the output shape of named layers, the features and logits."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def layer_shapes(
    model: nn.Module, paths: Iterable[str], *xs: Tensor
) -> tuple[dict[str, tuple[int, ...]], Tensor, Tensor, list]:
    """The output shape of each layer in `paths` (dotted module names) when `model` runs on `xs` without gradients,
    and the pass's features, logits and attention maps (`forward_features`, `forward_head`)."""
    modules = dict(model.named_modules())
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        modules[path].register_forward_hook(lambda m, i, out, path=path: seen.__setitem__(path, tuple(out.shape)))
        for path in paths
    ]
    try:
        with torch.no_grad():
            features, maps = model.forward_features(*xs)
            logits = model.forward_head(features)
    finally:
        for hook in hooks:
            hook.remove()
    return seen, features, logits, maps
