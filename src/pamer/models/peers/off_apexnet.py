"""OFF-ApexNet: Gan, Liong, Yau, Huang and Tan 2019, "OFF-ApexNet on micro-expression recognition system",
Signal Processing: Image Communication 74, 129-139 (arXiv 1805.08699).

No public code of the authors was found (the group's repositories, github.com/christy1206, hold STSTNet and
Bi-WOOF only), so this follows the paper's description: the horizontal (u) and vertical (v) optical flow of onset
-> apex, each 28 x 28, go through their own stream of conv 5x5 (6 filters) -> 2x2 max pool -> conv 5x5 (16
filters) -> 2x2 max pool; the two streams are flattened and concatenated -> fully connected 1024 -> fully connected
1024 -> classes, with dropout 0.5 before each fully connected layer after the first. The convolutions keep the
size ("same" padding, 28 -> 14 -> 7 per stream): the 2.66 M parameters a public reimplementation reports for 3
classes (github README of Off-TANet) need it, where unpadded convolutions would give 1.58 M. ReLU after every
convolution and hidden layer. The strain channel of pamer's flow input is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pamer.models._registry import register_model
from pamer.models.peers.base import PeerNetwork

__all__ = ["OFFApexNet"]


def _stream() -> nn.Sequential:
    """One flow component: (B, 1, 28, 28) -> (B, 16, 7, 7)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),  # 28 -> 14
        nn.Conv2d(6, 16, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),  # 14 -> 7
    )


class OFFApexNet(PeerNetwork):
    """Two LeNet-style streams on u and v (channels 0 and 1 of the flow input), two hidden layers of 1024.

    Args:
        num_classes: number of output logits.
        hidden: width of the two fully connected hidden layers (the paper's: 1024).
        drop_rate: dropout before the second hidden layer and before the classifier (the paper's: 0.5).

    Shape:
        - Input: (B, 3, 28, 28); channel 2 (strain) is ignored
        - Output: (B, num_classes)
    """

    name = "off_apexnet"
    input_size = 28

    def __init__(self, num_classes: int = 5, hidden: int = 1024, drop_rate: float = 0.5) -> None:
        super().__init__(num_classes, num_features=hidden)
        self.stream_u = _stream()
        self.stream_v = _stream()
        self.fc1 = nn.Linear(2 * 16 * 7 * 7, hidden)
        self.fc2 = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(hidden, hidden))
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(hidden, num_classes))

    def features(self, x: Tensor) -> Tensor:
        u = self.stream_u(x[:, 0:1]).flatten(1)
        v = self.stream_v(x[:, 1:2]).flatten(1)
        x = self.relu(self.fc1(torch.cat([u, v], dim=1)))
        return self.relu(self.fc2(x))


@register_model(input_size=OFFApexNet.input_size)
def off_apexnet(num_classes: int = 5, hidden: int = 1024, drop_rate: float = 0.5) -> OFFApexNet:
    """OFF-ApexNet (Gan et al. 2019): u and v streams of two 5x5 convs, two 1024 hidden layers; 28x28 flow."""
    return OFFApexNet(num_classes, hidden, drop_rate)
