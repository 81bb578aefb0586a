"""ResNet18's residual stages (He et al. 2016), written without torchvision, and a torchvision weight loader."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from pamer.models._registry import ModelConfigError

__all__ = ["BasicBlock", "load_torchvision_resnet18", "make_stage"]

NormLayer = Callable[[int], nn.Module]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (ResNet18's block); attribute names follow torchvision.

    Shape:
        - Input: (B, in_channels, H, W)
        - Output: (B, channels, ceil(H / stride), ceil(W / stride))
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, norm_layer: NormLayer | None = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm_layer(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), norm_layer(channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def make_stage(
    in_channels: int, channels: int, blocks: int, stride: int, norm_layer: NormLayer | None = None
) -> nn.Sequential:
    """One residual stage: `blocks` BasicBlocks, the first one strided (torchvision's `_make_layer`)."""
    layers = [BasicBlock(in_channels, channels, stride, norm_layer)]
    layers += [BasicBlock(channels, channels, 1, norm_layer) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def load_torchvision_resnet18(model: nn.Module, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Copy a torchvision-format ResNet18 state dict (`layer1.0.conv1.weight`, ...) into `model`'s stages.

    The four stages (`layer1` .. `layer4`) must be filled completely and with matching shapes. The stem
    (`conv1`, `bn1`) is copied only when the model has torchvision's 7x7 stem (conv1's weight shape matches), and
    the classifier (`fc`) only when the class count matches; otherwise their keys are reported as unused, since a
    3x3 stem or a different class count differs from ImageNet's ResNet18 by design.

    Args:
        model: a `PAMNet` (or any module with torchvision's ResNet attribute names).
        state_dict: e.g. `torchvision.models.resnet18(weights="DEFAULT").state_dict()`.

    Returns:
        The keys of `state_dict` that were not copied, sorted.

    Raises:
        ModelConfigError: a stage tensor with the wrong shape (naming the key and both shapes), or stage keys
            of the model that `state_dict` lacks.
    """
    target = model.state_dict()
    used: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("layer") and key in target:
            if tuple(value.shape) != tuple(target[key].shape):
                raise ModelConfigError(
                    f"torchvision ResNet18 weights: {key!r} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(target[key].shape)}"
                )
            used[key] = value
    missing = sorted(k for k in target if k.startswith("layer") and k not in used)
    if missing:
        shown = ", ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
        raise ModelConfigError(f"torchvision ResNet18 weights lack {len(missing)} stage tensors of the model: {shown}")

    def matches(prefix: str) -> bool:
        keys = [k for k in target if k.startswith(prefix)]
        return bool(keys) and all(k in state_dict and state_dict[k].shape == target[k].shape for k in keys)

    if matches("conv1.") and matches("bn1."):
        used.update({k: state_dict[k] for k in target if k.startswith(("conv1.", "bn1."))})
    if matches("fc."):
        used.update({k: state_dict[k] for k in target if k.startswith("fc.")})
    with torch.no_grad():
        for key, value in used.items():
            target[key].copy_(value)
    return sorted(k for k in state_dict if k not in used)
