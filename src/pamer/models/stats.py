"""Model size and cost: parameter counts and FLOPs as counted by `torch.utils.flop_counter`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pamer.models._registry import create_model, model_method

__all__ = ["count_flops", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(name: str, size: int = 224, *, batch: int = 1, backward: bool = False, **overrides: Any) -> int:
    """FLOPs of one forward pass (and the backward pass too, if `backward`) of registered model `name`.

    The model runs on the `meta` device, so nothing is computed and the count takes milliseconds. Counted are the
    matrix operations `FlopCounterMode` knows (convolutions, linear layers; a multiply-add counts as 2 FLOPs);
    normalisation, activations and pooling are not.

    Args:
        name: a name from `list_models()`.
        size: height and width of the square input image (a network that declares its own inputs,
            `Method.input_shapes`, takes those instead).
        batch: batch size.
        backward: also count the backward pass of a scalar loss over the logits.
        **overrides: options passed on to `create_model`.
    """
    shapes = model_method(name).input_shapes
    with torch.device("meta"):
        model = create_model(name, **overrides).train(backward)
        xs = [torch.empty(batch, *shape) for shape in shapes or [(model.in_chans, size, size)]]
    with FlopCounterMode(display=False) as counter:
        logits = model(*xs)
        if backward:
            logits.sum().backward()
    return counter.get_total_flops()
