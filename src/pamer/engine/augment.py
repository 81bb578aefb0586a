"""Training-time augmentation on the device: one batched geometric warp per step, and the training clips'
normalisation statistics.

The network's input itself (the motion image apex - onset, or another representation) is made by
`pamer.preprocess.network_input`, as prediction makes it. Flip, rotation and crop-resize are one affine map per
clip, applied to the whole batch in one `grid_sample` call; kornia's separate RandomHorizontalFlip /
RandomRotation / RandomResizedCrop would resample the image three times, so pamer does not use kornia.
Because bilinear sampling with zero padding is linear in the pixel values, warping the difference image equals
the difference of the warped onset and apex under the same map (SPEC section 2, decision 3); `warp` works on
any channel count, so a stacked (B, 6, H, W) onset/apex pair gets one transform for both frames.

Inputs other than the paper's motion image:
- `apex`: the aligned apex crop / 255, in [0, 1]; warped like any image (a flip mirrors the face).
- `flow`, metric (pamer's TV-L1, in pixels): the warp moves the pixels and turns each (u, v) vector with the
  image: a horizontal flip negates u, a rotation rotates (u, v); padding is zero motion.
- `flow`, normalised (flow images min-max stretched to 0..255 per image and channel, e.g. the HTNet/STSTNet
  MEGC2019 folders): u and v have no zero and no sign, so negating them would be wrong. `motion_inputs` centres
  u and v on 127.5, the middle of the stretch, and the metric warp then does the right thing for the flip:
  stretching the flipped flow gives 255 - u, which is exactly the negated centred value (-(u - 127.5) =
  (255 - u) - 127.5); v and strain are unchanged by a horizontal flip. A rotation turns the centred (u, v),
  which is exact only when u and v were stretched by the same range (each channel had its own); for the small
  default rotations (10 degrees) the error is small, and `augment.rotation: 0` removes it. Padding is the
  middle value (centred zero) for u, v and 0 (the least strain) for strain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["channel_stats", "random_affine", "warp"]


def random_affine(
    batch: int,
    *,
    hflip: float = 0.5,
    rotation: float = 10.0,
    crop_scale: float = 0.8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random output-to-input maps for a square image: horizontal flip, rotation about the centre, square crop.

    The crop covers a share of the area uniform in [crop_scale, 1] at a uniform position inside the image; the
    warp then resizes it to the full output. Random numbers come from `generator` on the CPU, so a seed gives
    the same transforms on every device.

    Shape:
        - Output: (batch, 2, 3) float32 in `F.affine_grid`'s normalised coordinates (output -> input).
    """
    u = torch.rand(batch, 5, generator=generator, dtype=torch.float64)
    flip = torch.where(u[:, 0] < hflip, -1.0, 1.0).to(torch.float64)
    angle = (2 * u[:, 1] - 1) * math.radians(rotation)
    side = torch.sqrt(crop_scale + (1 - crop_scale) * u[:, 2])  # crop side as a share of the image side
    centre = (2 * u[:, 3:5] - 1) * (1 - side)[:, None]  # keeps the crop inside the image
    cos, sin = torch.cos(angle), torch.sin(angle)
    # input point = Flip @ R(-angle) @ (side * output point + centre); rotating the image by +angle
    theta = torch.zeros(batch, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = flip * cos * side
    theta[:, 0, 1] = flip * sin * side
    theta[:, 1, 0] = -sin * side
    theta[:, 1, 1] = cos * side
    theta[:, 0, 2] = flip * (cos * centre[:, 0] + sin * centre[:, 1])
    theta[:, 1, 2] = -sin * centre[:, 0] + cos * centre[:, 1]
    return theta.float()


def warp(x: Tensor, theta: Tensor, *, vector_channels: tuple[int, int] | None = None) -> Tensor:
    """Resample a batch with one affine map per image (bilinear, zeros outside: zero motion).

    Args:
        x: images.
        theta: output-to-input maps from `random_affine`.
        vector_channels: channels holding a 2-D vector field (flow u, v); their vectors are turned with the
            image (rotation and flip, not the crop's scale, so magnitudes keep their meaning).

    Shape:
        - x: (B, C, H, W), any C (e.g. 6 for a stacked onset/apex pair).
        - theta: (B, 2, 3).
        - Output: (B, C, H, W).
    """
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if vector_channels is not None:
        linear = theta[:, :, :2]
        # a vector field sampled through p_in = A p_out transforms as v_out = A^-1 v_in; drop A's scale
        rotation = torch.linalg.inv(linear / torch.sqrt(torch.linalg.det(linear).abs())[:, None, None])
        i, j = vector_channels
        vec = out[:, [i, j]]
        turned = torch.einsum("bij,bjhw->bihw", rotation, vec)
        out = out.clone()
        out[:, [i, j]] = turned
    return out


def channel_stats(x: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of a set of inputs (the training clips only).

    Shape:
        - x: (N, C, H, W).
    """
    mean = x.mean(dim=(0, 2, 3), dtype=torch.float64)
    std = x.std(dim=(0, 2, 3)).double().clamp_min(1e-6)
    return mean.tolist(), std.tolist()
