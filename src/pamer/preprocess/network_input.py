"""The network's input from cached or aligned arrays, exactly as training and prediction both compute it.

`motion_inputs` makes the un-normalised input of every clip: the paper's motion image apex - onset (paper
section 1.2), the apex crop alone, or a flow field (a min-max stretched one centred on `NORMALISED_FLOW_CENTRE`,
so that the training-time warp of `pamer.engine.augment` flips it as it flips a metric one). The engine makes it
once per run and augments it; `model_input` normalises it with a checkpoint's mean and std: the evaluation-time
input, with no augmentation, which `pamer.predict` feeds the network.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pamer.preprocess.cache import FLOW_KINDS

__all__ = ["NORMALISED_FLOW_CENTRE", "model_input", "motion_inputs", "normalize"]

# the middle of a 0..255 min-max stretch: centred there, a stretched u flips as a metric one does (u -> 255 - u)
NORMALISED_FLOW_CENTRE = 127.5


def motion_inputs(
    onset: np.ndarray | None,
    apex: np.ndarray | None,
    size: int,
    *,
    representation: str = "diff",
    flow_kind: str = "metric",
    device: torch.device | str = "cpu",
    chunk: int = 64,
) -> Tensor:
    """The network's un-normalised input for every clip, resized to `size` x `size`.

    `diff`: (apex - onset) / 255 from uint8 RGB frames, in [-1, 1]. `apex`: apex / 255, in [0, 1] (`onset` is
    not read and may be None). `flow`: `onset` holds the float flow field (u, v, strain) and `apex` is None; with
    `flow_kind` "normalised" (flow images stretched to 0..255) u and v are centred on 127.5 (why: the docstring
    of `pamer.engine.augment`). The resize is bilinear with antialiasing, done once per run, so the training hot
    path only indexes this tensor.

    Shape:
        - onset, apex: (N, H, W, 3) uint8 (`diff`, `apex`) or float32 (`flow`, onset only).
        - Output: (N, 3, size, size) float32 on `device`.
    """
    frames = apex if representation == "apex" else onset
    if frames is None or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (N, H, W, 3), got {None if frames is None else frames.shape}")
    if representation == "diff" and (apex is None or apex.shape != onset.shape):
        raise ValueError(
            f"onset and apex frames differ in shape: {onset.shape} vs {None if apex is None else apex.shape}"
        )
    if flow_kind not in FLOW_KINDS:
        raise ValueError(f"unknown flow_kind {flow_kind!r}; expected one of {', '.join(FLOW_KINDS)}")
    out = torch.empty(len(frames), 3, size, size, device=device)
    for start in range(0, len(frames), chunk):  # chunks of clips bound the float memory on the device
        part = slice(start, start + chunk)
        if representation == "diff":
            x = torch.as_tensor(apex[part], device=device).float() - torch.as_tensor(onset[part], device=device).float()
            x = x / 255.0
        elif representation == "apex":
            x = torch.as_tensor(apex[part], device=device).float() / 255.0
        else:
            x = torch.as_tensor(np.ascontiguousarray(onset[part]), device=device).float()
            if flow_kind == "normalised":  # not in place: x may share memory with the cache's array
                x = x - torch.tensor([NORMALISED_FLOW_CENTRE, NORMALISED_FLOW_CENTRE, 0.0], device=device)
        x = x.permute(0, 3, 1, 2)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[part] = x
    return out


def normalize(x: Tensor, mean: list[float], std: list[float]) -> Tensor:
    """(x - mean) / std per channel.

    Shape:
        - x: (B, C, H, W); mean, std: C values.
    """
    m = torch.tensor(mean, device=x.device, dtype=x.dtype)[None, :, None, None]
    s = torch.tensor(std, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x - m) / s


def model_input(
    onset: np.ndarray | None,
    apex: np.ndarray | None,
    *,
    input_size: int,
    mean: list[float] | tuple[float, ...],
    std: list[float] | tuple[float, ...],
    representation: str = "diff",
    flow_kind: str = "metric",
    device: torch.device | str = "cpu",
) -> Tensor:
    """The evaluation-time network input, exactly as the engine computes it (no augmentation).

    Use it with the `input_size`, `mean`, `std` and `representation` of a checkpoint's `model.json`.

    Shape:
        - onset, apex: (N, H, W, 3) aligned uint8 RGB crops (or float flow in `onset` with apex None; for
          `apex`, onset may be None).
        - Output: (N, 3, input_size, input_size) float32.
    """
    x = motion_inputs(onset, apex, input_size, representation=representation, flow_kind=flow_kind, device=device)
    return normalize(x, list(mean), list(std))
