"""Dual-Inception: Zhou, Mao and Xue 2019, "Dual-Inception Network for Cross-Database Micro-Expression
Recognition", IEEE FG 2019 (MEGC2019), pp. 642-646.

Follows the authors' public Keras code (github.com/xly135846/MEGC2019, `dual_inception.py`,
`create_inception_model`): the horizontal (u) and vertical (v) optical flow, each 28 x 28, go through their own
stream of two inception blocks, each followed by a 2x2 max pool. A block has four paths with ReLU after every
convolution: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3/1 max pool -> 1x1, all "same" padded, with 6 channels per path in
the first block and 16 in the second. The two streams (64 x 7 x 7 each) are flattened and concatenated -> fully
connected 1024 (ReLU) -> classes; no dropout, no batch norm (the authors' second 1024 layer is commented out).
One difference: the authors read each flow component image as 3 channels (`cv2.imread`; three copies of a grey
image); pamer feeds the component as one channel, which spans the same functions with 2 x 4 x 6 x 2 = 96 fewer
weights in the first convolutions. The strain channel of pamer's flow input is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pamer.models._registry import register_model
from pamer.models.peers.base import PeerNetwork

__all__ = ["DualInception", "InceptionBlock"]


class InceptionBlock(nn.Module):
    """Four parallel paths (1x1; 1x1 -> 3x3; 1x1 -> 5x5; max pool -> 1x1), concatenated.

    Args:
        in_channels: input channels.
        width: output channels of each path.

    Shape:
        - Input: (B, in_channels, H, W)
        - Output: (B, 4 * width, H, W)
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()

        def conv(c_in: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, width, k, padding=k // 2), nn.ReLU(inplace=True)]

        self.path1 = nn.Sequential(*conv(in_channels, 1))
        self.path3 = nn.Sequential(*conv(in_channels, 1), *conv(width, 3))
        self.path5 = nn.Sequential(*conv(in_channels, 1), *conv(width, 5))
        self.path_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *conv(in_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.path1(x), self.path3(x), self.path5(x), self.path_pool(x)], dim=1)


def _stream() -> nn.Sequential:
    """One flow component: (B, 1, 28, 28) -> (B, 64, 7, 7)."""
    return nn.Sequential(InceptionBlock(1, 6), nn.MaxPool2d(2), InceptionBlock(24, 16), nn.MaxPool2d(2))


class DualInception(PeerNetwork):
    """Two inception streams on u and v (channels 0 and 1 of the flow input), one hidden layer of 1024.

    Args:
        num_classes: number of output logits.
        hidden: width of the fully connected hidden layer (the authors': 1024).

    Shape:
        - Input: (B, 3, 28, 28); channel 2 (strain) is ignored
        - Output: (B, num_classes)
    """

    name = "dual_inception"
    input_size = 28

    def __init__(self, num_classes: int = 5, hidden: int = 1024) -> None:
        super().__init__(num_classes, num_features=hidden)
        self.stream_u = _stream()
        self.stream_v = _stream()
        self.fc = nn.Sequential(nn.Linear(2 * 64 * 7 * 7, hidden), nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: Tensor) -> Tensor:
        u = self.stream_u(x[:, 0:1]).flatten(1)
        v = self.stream_v(x[:, 1:2]).flatten(1)
        return self.fc(torch.cat([u, v], dim=1))


@register_model(input_size=DualInception.input_size)
def dual_inception(num_classes: int = 5, hidden: int = 1024) -> DualInception:
    """Dual-Inception (Zhou et al. 2019): u and v streams of two inception blocks, one 1024 layer; 28x28 flow."""
    return DualInception(num_classes, hidden)
