"""LBP+attention: Li Shuaichao, Li Mingze, Sun Jiaao and Lu Shuhua, "Combining LBP and parallel attention mechanism
micro-expression recognition" (Chinese: J. Beijing Univ. Aeronaut. Astronaut. 2025, 51(4): 1404-1414,
doi 10.13700/j.bh.1001-5965.2023.0215; English: J. Applied Artificial Intelligence 2024, 1(3): 310-326,
doi 10.59782/aai.v1i3.333), the paper's Table 2 row "LBP+attention".

A design from the paper's description: no code of the authors was found, and the full text could not be read here.
Searched (stored public pages, documentation, code): the two titles, the DOIs, "Shuffle Stage" + "LBP" +
"micro-expression", the Chinese title and abstract phrases; found the two abstracts only (the journal pages at
bhxb.buaa.edu.cn and crestapress.org, abstract and keywords), no figure, table or training section.

From the abstract (its words in quotes):
- two branches: the RGB face image goes through a "densely connected improved Shuffle Stage branch" for global
  features; its LBP image through "the local texture feature branch composed of multi-scale hierarchical
  convolutional neural network" for detail;
- "after the dual-branch feature extraction, the parallel attention mechanism is introduced at the back end of the
  network to improve the feature fusion ability"; the keywords add "dense connection, Shuffle Stage branch,
  multi-scale layered convolution, parallel attention mechanism";
- evaluated on CASME, CASME II and SMIC (Zhan et al. 2024 quote CASME II 0.745, SMIC 0.812 accuracy, no F1).
Zhan et al. 2024 describe it the same way: "extracts the image's RGB features and LBP texture features and adds
an attention mechanism to fuse them".

pamer's choices (fixed before any run; none from a test subject's result), and why:
- Input: the aligned apex face crop (RGB, the "RGB image") and its LBP image, both at 112 x 112. The LBP image is
  scikit-image's `local_binary_pattern` (8 neighbours on a circle of radius 1, the 256-code "default" mapping, as
  `pamer.classic.lbptop` uses it) of the resized apex in grey (ITU-R 601 weights), read as a one-channel image:
  the usual "LBP image" of the LBP-CNN literature. 112 (not ShuffleNet's 224): without ShuffleNet's max pool the
  branches still end at 7 x 7, as ShuffleNet does at 224, for a quarter of the cost.
- RGB branch, ShuffleNet V2 (Ma et al. 2018) at its 0.5x widths: a 3x3/2 stem of 24 channels (no max pool, so 112
  ends at 7 x 7), then three "Shuffle Stages" of 48, 96, 192 channels with ShuffleNet V2's unit counts (4, 8, 4: a
  stride-2 unit, then basic units). "Densely connected": inside a stage each basic unit reads the concatenation of
  every earlier unit's output (DenseNet, Huang et al. 2017), brought back to the stage width by a 1x1 convolution
  + BN + ReLU; the stage's output is the same transition of all its units' outputs.
- LBP branch, "multi-scale hierarchical convolution": a 3x3/2 stem of 24 channels, then three stages of 48, 96,
  192 channels, each a 3x3/2 convolution followed by one Res2Net block (Gao et al. 2021, the "hierarchical
  residual-like" multi-scale convolution): the channels split into 4 groups, group i > 1 passes a 3x3 convolution
  after adding group i - 1's output, so the groups see 1, 3, 5, 7 pixel scales; a 1x1 convolution merges them, plus
  the block's input.
- Parallel attention on the concatenated 384-channel 7 x 7 maps: CBAM's channel attention (Woo et al. 2018:
  shared MLP, reduction 16, over average and max pooled channels) and its spatial attention (7x7 convolution over
  the channel max and mean) computed side by side from the same input, and the two reweighted maps summed:
  x * Mc(x) + x * Ms(x) (CBAM applies them one after the other).
- Head: global average pooling, dropout 0.2, a fully connected layer to the classes. BN and ReLU after every
  convolution as in the sources; He initialisation.
- Training from scratch (no ImageNet ShuffleNet weights exist here); recipe in configs/peers/lbp_attention*.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from skimage.feature import local_binary_pattern
from torch import Tensor, nn

from pamer.models._registry import ModelConfigError, register_model
from pamer.models.method import Method

if TYPE_CHECKING:
    from pamer.preprocess.cache import Cache

__all__ = ["LBP_SIZE", "LBPAttentionNet", "ParallelAttention", "lbp_attention_inputs", "lbp_images"]

# the input side of both branches (see the module docstring)
LBP_SIZE = 112
# ITU-R BT.601 luma weights: RGB -> grey for the LBP image
GREY = (0.299, 0.587, 0.114)


def lbp_images(rgb: np.ndarray, points: int = 8, radius: float = 1.0) -> np.ndarray:
    """The LBP image of each RGB image: scikit-image's `local_binary_pattern` ("default" codes) of its grey values.

    Args:
        rgb: (N, 3, H, W) images with values in [0, 1] (the engine's `apex` input) .
        points, radius: LBP neighbours and their circle's radius.

    Returns:
        (N, 1, H, W) float32 codes in [0, 2**points).
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected RGB images of shape (N, 3, H, W), got {rgb.shape}")
    grey = np.tensordot(np.asarray(GREY), rgb, axes=([0], [1]))  # (N, H, W) in [0, 1]
    grey = np.clip(np.rint(grey * 255), 0, 255).astype(np.uint8)  # integer grey, as LBP on 8-bit images expects
    codes = [local_binary_pattern(image, points, radius, method="default") for image in grey]
    return np.stack(codes)[:, None].astype(np.float32)


def lbp_attention_inputs(cache: Cache, standard: Callable[[int], Tensor]) -> tuple[Tensor, Tensor]:
    """The network's two inputs of every clip (its `Method.inputs`): the apex image and its LBP image.

    Args:
        cache: the run's cache (its apex crops only checked against `standard`'s images).
        standard: the engine's input of every clip at a side, which must be `data.representation: apex`.

    Shape:
        - output: (N, 3, 112, 112) in [0, 1], (N, 1, 112, 112) codes, float32 on the engine's device.
    """
    base = standard(LBP_SIZE)
    if base.ndim != 4 or base.shape[1] != 3 or len(base) != len(cache):
        raise ValueError(f"lbp_attention expected the apex images of {len(cache)} clips, got {tuple(base.shape)}")
    # the apex representation is apex / 255 resized: each clip's mean brightness is its crop's (a resize keeps it)
    apex_means = None if cache.apex is None else cache.apex.reshape(len(cache), -1).mean(axis=1) / 255
    if apex_means is None or np.abs(base.mean(dim=(1, 2, 3)).cpu().numpy() - apex_means).max() > 0.02:
        raise ModelConfigError(
            "lbp_attention reads the apex face image and computes its LBP image, but the engine's input is not the "
            "cache's apex crops (a motion image or flow): set data.representation: apex"
        )
    lbp = torch.from_numpy(lbp_images(base.cpu().numpy())).to(base.device)
    return base, lbp


def _conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, *, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    """ShuffleNet's channel shuffle: (B, g * c, H, W) -> channels interleaved across the g groups."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet V2 unit (Ma et al. 2018, Fig. 3c/d): stride 1 splits the channels in two and transforms one half;
    stride 2 transforms the whole input on two paths and doubles the channel count (here: to `c_out`)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = c_out // 2
        if stride == 1 and c_in != c_out:
            raise ModelConfigError(f"a stride-1 shuffle unit keeps its width, got {c_in} -> {c_out}")
        branch_in = c_in if stride == 2 else half
        if stride == 2:
            self.branch1 = nn.Sequential(_conv_bn(c_in, c_in, 3, 2, groups=c_in, relu=False), _conv_bn(c_in, half, 1))
        self.branch2 = nn.Sequential(
            _conv_bn(branch_in, half, 1),
            _conv_bn(half, half, 3, stride, groups=half, relu=False),
            _conv_bn(half, half, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            keep, change = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(change)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return channel_shuffle(out)


class DenseShuffleStage(nn.Module):
    """A stride-2 shuffle unit, then `units` basic units, each reading the concatenation of every earlier unit's
    output through a 1x1 transition; the stage returns the transition of all of them.

    Shape:
        - Input: (B, c_in, H, W)
        - Output: (B, c_out, H / 2, W / 2)
    """

    def __init__(self, c_in: int, c_out: int, units: int) -> None:
        super().__init__()
        self.down = ShuffleUnit(c_in, c_out, 2)
        self.units = nn.ModuleList(ShuffleUnit(c_out, c_out, 1) for _ in range(units))
        # transitions[k] reads the k + 1 outputs before unit k + 1 (k = 0: the down unit alone, no transition)
        self.transitions = nn.ModuleList(_conv_bn((k + 1) * c_out, c_out, 1) for k in range(1, units + 1))

    def forward(self, x: Tensor) -> Tensor:
        outputs = [self.down(x)]
        for k, unit in enumerate(self.units):
            inp = outputs[0] if k == 0 else self.transitions[k - 1](torch.cat(outputs, dim=1))
            outputs.append(unit(inp))
        return self.transitions[-1](torch.cat(outputs, dim=1))


class HierarchicalConv(nn.Module):
    """Res2Net block (Gao et al. 2021): `scales` channel groups, group i > 1 convolved 3x3 after adding group
    i - 1's result; a 1x1 convolution merges the groups; a residual connection around it.

    Shape:
        - Input and output: (B, channels, H, W)
    """

    def __init__(self, channels: int, scales: int = 4) -> None:
        super().__init__()
        if channels % scales:
            raise ModelConfigError(f"{channels} channels do not split into {scales} groups")
        self.scales = scales
        width = channels // scales
        self.convs = nn.ModuleList(_conv_bn(width, width, 3) for _ in range(scales - 1))
        self.merge = _conv_bn(channels, channels, 1, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        groups = x.chunk(self.scales, dim=1)
        out, prev = [groups[0]], None
        for group, conv in zip(groups[1:], self.convs, strict=True):
            prev = conv(group if prev is None else group + prev)
            out.append(prev)
        return self.relu(self.merge(torch.cat(out, dim=1)) + x)


class ParallelAttention(nn.Module):
    """CBAM's channel and spatial attention computed side by side from the same input, the results summed:
    x * Mc(x) + x * Ms(x).

    Shape:
        - Input and output: (B, channels, H, W); `maps` after a forward: the spatial map (B, 1, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The fused features and the spatial attention map."""
        channel = torch.sigmoid(self.mlp(x.mean(dim=(2, 3), keepdim=True)) + self.mlp(x.amax(dim=(2, 3), keepdim=True)))
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        spatial = torch.sigmoid(self.spatial(pooled))
        return x * channel + x * spatial, spatial


class LBPAttentionNet(nn.Module):
    """Dense Shuffle-Stage branch (RGB apex) + hierarchical multi-scale branch (its LBP image), fused by parallel
    channel and spatial attention; global average pooling and one fully connected layer.

    Args:
        num_classes: number of output logits.
        widths: channels of the three stages of both branches.
        units: basic shuffle units after each stage's stride-2 unit (ShuffleNet V2: 3, 7, 3).
        stem: channels of both stems.
        drop_rate: dropout before the classifier.

    Shape:
        - Input: rgb (B, 3, 112, 112), lbp (B, 1, 112, 112)
        - Output: (B, num_classes)
    """

    name = "lbp_attention"
    input_size = LBP_SIZE

    def __init__(
        self,
        num_classes: int = 5,
        *,
        widths: tuple[int, int, int] = (48, 96, 192),
        units: tuple[int, int, int] = (3, 7, 3),
        stem: int = 24,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 2 * widths[-1]
        self.rgb_stem = _conv_bn(3, stem, 3, 2)
        self.rgb_stages = nn.Sequential(
            *(
                DenseShuffleStage(c_in, c_out, n)
                for c_in, c_out, n in zip((stem, *widths[:-1]), widths, units, strict=True)
            )
        )
        self.lbp_stem = _conv_bn(1, stem, 3, 2)
        self.lbp_stages = nn.Sequential(
            *(
                nn.Sequential(_conv_bn(c_in, c_out, 3, 2), HierarchicalConv(c_out))
                for c_in, c_out in zip((stem, *widths[:-1]), widths, strict=True)
            )
        )
        self.attention = ParallelAttention(self.num_features)
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.num_features, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, rgb: Tensor, lbp: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Pooled fused features and the spatial attention map.

        Shape:
            - Input: rgb (B, 3, 112, 112), lbp (B, 1, 112, 112)
            - Output: (B, num_features), [(B, 1, 7, 7)]
        """
        side = self.input_size
        if tuple(rgb.shape[1:]) != (3, side, side) or tuple(lbp.shape) != (rgb.shape[0], 1, side, side):
            raise ModelConfigError(
                f"{self.name} takes an RGB apex batch (B, 3, {side}, {side}) and its LBP images (B, 1, {side}, {side}) "
                f"(set train.input_size: {side}), got {tuple(rgb.shape)} and {tuple(lbp.shape)}"
            )
        fused = torch.cat([self.rgb_stages(self.rgb_stem(rgb)), self.lbp_stages(self.lbp_stem(lbp))], dim=1)
        fused, spatial = self.attention(fused)
        return fused.mean(dim=(2, 3)), [spatial]

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, rgb: Tensor, lbp: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(rgb, lbp)[0])


@register_model(
    input_size=LBP_SIZE,
    method=Method(inputs=lbp_attention_inputs, input_shapes=((3, LBP_SIZE, LBP_SIZE), (1, LBP_SIZE, LBP_SIZE))),
)
def lbp_attention(num_classes: int = 5, drop_rate: float = 0.2) -> LBPAttentionNet:
    """LBP+attention (Li et al. 2023/2024), designed from the paper's description: dense ShuffleNet + LBP branch."""
    return LBPAttentionNet(num_classes, drop_rate=drop_rate)
