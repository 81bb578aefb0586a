"""PA-MSC building blocks (Zhan et al. 2024): multi-scale convolution (eq. 5-6), progressive attention (eq. 9-10)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamer.models._registry import ModelConfigError

__all__ = ["MultiScaleConv", "ProgressiveAttention"]


class MultiScaleConv(nn.Module):
    """Multi-scale convolution module (MSC, paper eq. 5-6, Fig. 6).

    The C-channel input goes through parallel branches, one per kernel size k: a k x k convolution with same
    padding from C to C / len(kernels) channels, batch norm and ReLU. The branch outputs are concatenated along
    the channel axis back to C channels. Eq. 6 writes the convolution alone; the batch norm and ReLU are pamer's,
    as they follow the stem's convolution (eq. 1) and the first convolution of each ResNet18 block.

    Args:
        channels: input and output channel count C; must be divisible by the number of branches.
        kernels: odd kernel size of each branch (the paper's best: 3, 5, 7, 9).
        norm_layer: normalisation built as `norm_layer(num_channels)`; default `nn.BatchNorm2d`.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)
    """

    def __init__(
        self,
        channels: int,
        kernels: Sequence[int] = (3, 5, 7, 9),
        norm_layer: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        kernels = tuple(kernels)
        if not kernels:
            raise ModelConfigError("MultiScaleConv needs at least one kernel size, got an empty list")
        if channels % len(kernels):
            raise ModelConfigError(
                f"MultiScaleConv: {channels} channels cannot be split evenly into {len(kernels)} branches "
                f"(kernels {kernels}); use a channel count divisible by {len(kernels)}"
            )
        bad = [k for k in kernels if not isinstance(k, int) or k < 1 or k % 2 == 0]
        if bad:
            raise ModelConfigError(
                f"MultiScaleConv kernel sizes must be odd positive integers (same padding), got {kernels}"
            )
        norm_layer = norm_layer or nn.BatchNorm2d
        self.kernels = kernels
        width = channels // len(kernels)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, width, k, padding=k // 2, bias=False),
                norm_layer(width),
                nn.ReLU(inplace=True),
            )
            for k in kernels
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class ProgressiveAttention(nn.Module):
    """Progressive spatial attention (PA, paper eq. 9-10): CBAM-style spatial attention chained across stages.

    A = sigmoid(conv1x1([max_c F; mean_c F])), a one-channel map. For the first PA module that map is A_1; a
    later module multiplies it element-wise by the previous module's map max-pooled down to the current spatial
    size, A_i = A * maxpool(A_{i-1}), so a region the earlier stages played down stays played down. The output is
    F * A_i.

    Args:
        kernel_size: size of the convolution over the 2-channel pooled map (the paper: 1).

    Shape:
        - Input: features (B, C, H, W) and, for i >= 2, the previous map (B, 1, H', W') with H' >= H, W' >= W
        - Output: (features * A_i of shape (B, C, H, W), A_i of shape (B, 1, H, W))
    """

    def __init__(self, kernel_size: int = 1) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ModelConfigError(f"ProgressiveAttention kernel_size must be odd and positive, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, previous: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        attention = torch.sigmoid(self.conv(pooled))
        if previous is not None:
            # adaptive pooling handles odd sizes (e.g. 7 -> 4) where a fixed 2x2 window would not match
            attention = attention * F.adaptive_max_pool2d(previous, attention.shape[-2:])
        return x * attention, attention
