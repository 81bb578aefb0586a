"""STSTNet: Liong, Gan, See, Khor and Huang 2019, "Shallow Triple Stream Three-dimensional CNN (STSTNet) for
Micro-expression Recognition", IEEE FG 2019 (arXiv 1902.03634).

Follows the authors' public PyTorch code (github.com/christy1206/STSTNet, `main.py`, class `STSTNet`) layer for
layer: three parallel 3x3 convolutions (3, 5 and 8 filters, padding 2) on the 28 x 28 (u, v, strain) image, each
ReLU -> batch norm -> 3x3/3 max pool (padding 1) -> dropout 0.5; the 16 x 10 x 10 concatenation -> 2x2 average
pool -> one fully connected layer from 400 features to the classes. PyTorch's default initialisation, as the
authors' `reset_weights`. The training recipe (Adam 5e-5, batch 256, 800 epochs, no augmentation, last epoch) is
in `configs/peers/ststnet.yaml`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pamer.models._registry import register_model
from pamer.models.peers.base import PeerNetwork

__all__ = ["STSTNet"]


class STSTNet(PeerNetwork):
    """Three shallow convolution streams on all three flow channels (u, v, strain), one linear classifier.

    Args:
        num_classes: number of output logits.
        drop_rate: dropout after each stream's pooling (the authors': 0.5).

    Shape:
        - Input: (B, 3, 28, 28)
        - Output: (B, num_classes)
    """

    name = "ststnet"
    input_size = 28
    widths = (3, 5, 8)

    def __init__(self, num_classes: int = 5, drop_rate: float = 0.5) -> None:
        super().__init__(num_classes, num_features=sum(self.widths) * 5 * 5)
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(self.in_chans, width, 3, padding=2),  # 28 -> 30
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(width),  # after the ReLU, as in the authors' code
                nn.MaxPool2d(3, stride=3, padding=1),  # 30 -> 10
                nn.Dropout(drop_rate),
            )
            for width in self.widths
        )
        self.pool = nn.AvgPool2d(2)  # 10 -> 5
        self.head = nn.Linear(self.num_features, num_classes)

    def features(self, x: Tensor) -> Tensor:
        x = torch.cat([stream(x) for stream in self.streams], dim=1)
        return self.pool(x).flatten(1)


@register_model(input_size=STSTNet.input_size)
def ststnet(num_classes: int = 5, drop_rate: float = 0.5) -> STSTNet:
    """STSTNet (Liong et al. 2019): three shallow conv streams on 28x28 (u, v, strain) flow, as the authors' code."""
    return STSTNet(num_classes, drop_rate)
