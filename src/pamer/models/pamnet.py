"""PA-MSC network of Zhan et al. 2024 (Fig. 3): ResNet18 with multi-scale convolution and progressive attention.

One configurable class, `PAMNet`; every registered variant is a few lines that pass options to it: the paper's
model D (`pamnet`), its ablations A-C, its MSC kernel sets E-I, a tiny `pamnet_test` for fast tests, and a plain
`resnet18` (torchvision's 7x7 stem) as the reference peer for speed comparisons.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pamer.models._registry import ModelConfigError, register_model
from pamer.models.layers import MultiScaleConv, ProgressiveAttention
from pamer.models.resnet import BasicBlock, make_stage

__all__ = ["PAMNet"]


class PAMNet(nn.Module):
    """stem -> [MSC] -> 4 x (residual stage -> [PA]) -> global average pool -> fully connected.

    The stem is a k x k convolution + BN + ReLU (eq. 1; the paper: k = 3), optionally followed by a 3x3/2 max
    pool. The paper leaves the stem's stride and pooling open; the default (stride 2 + max pool) runs the stages
    at 56/28/14/7 for a 224 input as in ResNet18, about 4x cheaper than without the pool (see BENCHMARKS.md).
    `forward` returns logits; softmax is the caller's.

    Args:
        num_classes: number of output logits.
        layers: BasicBlocks per stage (ResNet18: 2, 2, 2, 2).
        widths: channels of the four stages; the stem and MSC run at `widths[0]`.
        in_chans: input channels (3: the apex - onset motion image).
        stem_kernel: stem convolution size (3 in the paper, 7 for torchvision's ResNet18).
        stem_stride: stem convolution stride.
        stem_pool: whether a 3x3/2 max pool follows the stem.
        msc_kernels: kernel sizes of the MSC branches, or None for no MSC.
        attention: whether a progressive attention module follows each stage.
        attention_kernel: size of the PA convolution (the paper: 1x1).
        drop_rate: dropout before the classifier.
        norm_layer: normalisation built as `norm_layer(num_channels)`; default `nn.BatchNorm2d`.
        zero_init_residual: start each block's last BN at zero so blocks begin as identities (torchvision's option).
        channels_last: run the network in channels_last memory format (faster with oneDNN on a CPU, see
            `forward_features`); the result is the same either way.

    Shape:
        - Input: (B, in_chans, H, W)
        - Output: (B, num_classes)
    """

    def __init__(
        self,
        num_classes: int = 5,
        *,
        layers: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        in_chans: int = 3,
        stem_kernel: int = 3,
        stem_stride: int = 2,
        stem_pool: bool = True,
        msc_kernels: Sequence[int] | None = (3, 5, 7, 9),
        attention: bool = True,
        attention_kernel: int = 1,
        drop_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] | None = None,
        zero_init_residual: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ModelConfigError(f"PAMNet has 4 stages: layers and widths need 4 values, got {layers}, {widths}")
        if stem_stride not in (1, 2):
            raise ModelConfigError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = widths[-1]
        self.channels_last = channels_last

        self.conv1 = nn.Conv2d(
            in_chans, widths[0], stem_kernel, stride=stem_stride, padding=stem_kernel // 2, bias=False
        )
        self.bn1 = norm_layer(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        self.msc = MultiScaleConv(widths[0], msc_kernels, norm_layer) if msc_kernels else nn.Identity()

        strides = (1, 2, 2, 2)
        channels = (widths[0], *widths[:-1])
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            make_stage(channels[i], widths[i], layers[i], strides[i], norm_layer) for i in range(4)
        )
        self.attention = nn.ModuleList(ProgressiveAttention(attention_kernel) for _ in range(4)) if attention else None
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(widths[-1], num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's ResNet initialisation; the PA convolutions keep PyTorch's default
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith("attention"):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock) and isinstance(m.bn2, nn.BatchNorm2d):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Pooled features and the four progressive attention maps (empty list without PA).

        Shape:
            - Input: (B, in_chans, H, W)
            - Output: features (B, num_features); maps A_1..A_4, each (B, 1, h_i, w_i) at stage i's resolution
        """
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ModelConfigError(
                f"expected a (B, {self.in_chans}, H, W) image batch, got a tensor of shape {tuple(x.shape)}"
            )
        # channels_last: oneDNN runs the MSC's large-kernel convolutions 1.3-1.9x faster in it and the stages as fast;
        # a pamnet training step at 224 drops from 1.38x to 1.21x the backbone's time (BENCHMARKS.md)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.msc(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        maps: list[Tensor] = []
        attention_map = None
        for i, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = stage(x)
            if self.attention is not None:
                x, attention_map = self.attention[i](x, attention_map)
                maps.append(attention_map)
        return self.global_pool(x).flatten(1), maps

    def forward_head(self, features: Tensor) -> Tensor:
        """Logits from pooled features.

        Shape:
            - Input: (B, num_features)
            - Output: (B, num_classes)
        """
        return self.fc(self.drop(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x)[0])


_OPTIONS = frozenset(p for p in inspect.signature(PAMNet).parameters)


def _create(variant_args: dict[str, Any], kwargs: dict[str, Any], name: str) -> PAMNet:
    unknown = sorted(set(kwargs) - _OPTIONS)
    if unknown:
        raise ModelConfigError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}; options: {', '.join(sorted(_OPTIONS))}"
        )
    return PAMNet(**dict(variant_args, **kwargs))


@register_model
def pamnet(**kwargs: Any) -> PAMNet:
    """The paper's PA-MSC (Table 3 D / Table 4 F): MSC with kernels 3, 5, 7, 9 and progressive attention."""
    return _create({"msc_kernels": (3, 5, 7, 9), "attention": True}, kwargs, "pamnet")


@register_model
def pamnet_backbone(**kwargs: Any) -> PAMNet:
    """Ablation A: the ResNet18 backbone with the 3x3 stem, no MSC, no PA.

    The paper's rows B-D add PA, MSC or both to A (section 2.5), so A is model D without both modules and keeps D's
    stem; `resnet18` is torchvision's 7x7 stem instead.
    """
    return _create({"msc_kernels": None, "attention": False}, kwargs, "pamnet_backbone")


@register_model
def pamnet_pa(**kwargs: Any) -> PAMNet:
    """Ablation B: backbone + progressive attention."""
    return _create({"msc_kernels": None, "attention": True}, kwargs, "pamnet_pa")


@register_model
def pamnet_msc(**kwargs: Any) -> PAMNet:
    """Ablation C: backbone + multi-scale convolution (kernels 3, 5, 7, 9)."""
    return _create({"msc_kernels": (3, 5, 7, 9), "attention": False}, kwargs, "pamnet_msc")


@register_model
def pamnet_k1357(**kwargs: Any) -> PAMNet:
    """Kernel set E: MSC kernels 1, 3, 5, 7 + PA."""
    return _create({"msc_kernels": (1, 3, 5, 7), "attention": True}, kwargs, "pamnet_k1357")


@register_model
def pamnet_k57911(**kwargs: Any) -> PAMNet:
    """Kernel set G: MSC kernels 5, 7, 9, 11 + PA."""
    return _create({"msc_kernels": (5, 7, 9, 11), "attention": True}, kwargs, "pamnet_k57911")


@register_model
def pamnet_k3333(**kwargs: Any) -> PAMNet:
    """Kernel set H: MSC kernels 3, 3, 3, 3 + PA."""
    return _create({"msc_kernels": (3, 3, 3, 3), "attention": True}, kwargs, "pamnet_k3333")


@register_model
def pamnet_k9999(**kwargs: Any) -> PAMNet:
    """Kernel set I: MSC kernels 9, 9, 9, 9 + PA."""
    return _create({"msc_kernels": (9, 9, 9, 9), "attention": True}, kwargs, "pamnet_k9999")


@register_model
def pamnet_test(**kwargs: Any) -> PAMNet:
    """A tiny PA-MSC (one block per stage, 8..64 channels) that exists only so tests run in milliseconds.

    It runs in the contiguous layout: torch 2.13's oneDNN crashes (SIGSEGV in the AVX-512 1x1-convolution
    weight gradient) on its 8 -> 16 channel stride-2 downsample in channels_last with two or more threads and an
    odd batch; pamnet's own widths (64 and up) do not hit that path.
    """
    return _create(
        {
            "layers": (1, 1, 1, 1),
            "widths": (8, 16, 32, 64),
            "msc_kernels": (3, 5, 7, 9),
            "attention": True,
            "channels_last": False,
        },
        kwargs,
        "pamnet_test",
    )


@register_model
def resnet18(**kwargs: Any) -> PAMNet:
    """Plain ResNet18 as torchvision builds it (7x7/2 stem + 3x3/2 max pool, no MSC, no PA): the speed reference."""
    return _create(
        {"stem_kernel": 7, "stem_stride": 2, "stem_pool": True, "msc_kernels": None, "attention": False},
        kwargs,
        "resnet18",
    )
