"""What a registered network may declare beyond "one motion image in, cross-entropy out": its inputs, its loss and
statistics of the training fold.

A network registers a `Method` with `register_model(method=...)`; `model_method(name)` gives the engine what to do
(the plain `Method()` for every network that declares nothing, such as PA-MSC: one input from `prepare_inputs`,
cross-entropy on the logits). The engine (`pamer.engine.fold.fit`) uses the declaration at three points:

- inputs, once per run: `inputs(cache, standard)` builds the network's inputs of every clip, a tuple of
  (N, C, H, W) float32 tensors on the training device, given to `model(*inputs)` in this order. `standard(side)`
  gives the engine's own input of every clip (`prepare_inputs`: the configured motion representation, (N, 3, side,
  side) on the training device) at any side, so a network can cut regions from the full-resolution motion and use
  the cache's landmarks (in crop pixels: side / `cache.config["size"]` scales them). Each input is normalised per
  channel with the training clips' mean and standard deviation, as the standard input is. `input_shapes` are their
  per-clip shapes (used to count FLOPs and to check what `inputs` returns).
- fold statistics, once per fold: `fold_args(train_cache)` gets a `Cache` holding only the fold's training clips
  (`Cache.subset(train_idx)`: the test subject's clips, labels and action units are not in it) and returns keyword
  arguments for the network's builder (e.g. an AU co-occurrence graph). By construction nothing of the test
  subject reaches them.
- loss, every step: `loss(model, inputs, y, weight) -> (loss, logits)` runs the forward pass of a batch (inside the
  engine's autocast) and returns the scalar training loss and the logits the training accuracy is counted from;
  `weight` is `train.class_weights`' per-class weight or None.

What the other training paths do with a declaration: the stacked executor refuses a network that declares anything
(`auto` then runs local or process); augmentation is refused for networks with their own inputs (a warp of a
landmark puzzle or of a patch table is not the recipe's); `pamer train` and prediction from a checkpoint take
single-input networks only and refuse the others by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from pamer.preprocess.cache import Cache

__all__ = ["Method", "cross_entropy_loss"]


def cross_entropy_loss(
    model: nn.Module, inputs: Sequence[Tensor], y: Tensor, weight: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The default loss: cross-entropy of the logits (computed in float32 also under bf16 autocast)."""
    logits = model(*inputs)
    return F.cross_entropy(logits.float(), y, weight=weight), logits


@dataclass(frozen=True)
class Method:
    """A network's declaration of its inputs, loss and fold statistics (every field optional; see the module).

    Attributes:
        inputs: (cache, standard input at a side) -> the network's inputs of every clip; None: the standard input.
        input_shapes: the per-clip shape of each input `inputs` returns (required with `inputs`).
        fold_args: (cache of the training clips only) -> keyword arguments for the network's builder.
        loss: (model, normalised batch inputs, labels, class weights) -> (loss, logits).
    """

    inputs: Callable[[Cache, Callable[[int], Tensor]], tuple[Tensor, ...]] | None = None
    input_shapes: tuple[tuple[int, ...], ...] | None = None
    fold_args: Callable[[Cache], dict[str, Any]] | None = None
    loss: Callable[[nn.Module, Sequence[Tensor], Tensor, Tensor | None], tuple[Tensor, Tensor]] = cross_entropy_loss

    def __post_init__(self) -> None:
        if (self.inputs is None) != (self.input_shapes is None):
            raise ValueError("a Method declares its inputs and their input_shapes together, or neither")

    @property
    def declared(self) -> bool:
        """Whether the network declares anything beyond the plain path."""
        return self.inputs is not None or self.fold_args is not None or self.loss is not cross_entropy_loss

    def what(self) -> str:
        """What it declares, in words (for messages): e.g. "its own inputs and loss"."""
        parts = [
            word
            for word, on in (
                ("its own inputs", self.inputs is not None),
                ("its own loss", self.loss is not cross_entropy_loss),
                ("statistics of the training fold", self.fold_args is not None),
            )
            if on
        ]
        return " and ".join(parts) or "nothing"
