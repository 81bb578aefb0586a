"""DSSN: Khor, See, Liong, Phan and Lin 2019, "Dual-stream Shallow Networks for Facial Micro-expression
Recognition", IEEE ICIP 2019, pp. 36-40 (the paper's Table 2 row "DSSN").

Follows the authors' public Keras code (github.com/IcedDoggie/DSSN-MER, `networks.py`,
`train_dual_stream_shallow_alexnet`, and `models.py`, `alexnet`): each stream is AlexNet cut after its second
convolution ("shallow AlexNet"): conv 11x11/4 (96) + ReLU -> 3x3/2 max pool -> cross-channel normalisation ->
conv 5x5 (256, two groups of 128, padding 2) + ReLU -> 3x3/2 max pool -> cross-channel normalisation, at a
227 x 227 input. The two streams' 256 x 13 x 13 maps are multiplied element-wise, flattened, dropout 0.5 ->
one fully connected layer to the classes.

Differences from the authors' code, each keeping the function the network computes:
- Inputs: the authors' streams read an optical-flow image and an optical-strain image, each as 3 channels; pamer
  feeds the flow stream the (u, v) field (channels 0, 1) and the strain stream the strain (channel 2), so the first
  convolutions take 2 and 1 channels.
- The authors flatten AlexNet's 1-pixel zero padding around the 13 x 13 maps (15 x 15); its products are always
  zero, so those 256 x 56 inputs of the classifier (and their weights) carry nothing and are left out here.
- The authors start both streams' convolutions from ImageNet AlexNet weights (convnets-keras); pamer has no such
  weights and trains from He-normal initialisation (zero biases), so its numbers test the architecture only.
- Cross-channel normalisation: convnets-keras divides by (2 + 1e-4 * sum of 5 squared neighbours) ** 0.75;
  `nn.LocalResponseNorm` divides alpha by the window size, so alpha = 5e-4 here gives the same normalisation.
"""

from __future__ import annotations

from torch import Tensor, nn

from pamer.models._registry import register_model
from pamer.models.peers.base import PeerNetwork

__all__ = ["DSSN"]


def _shallow_alexnet(in_channels: int) -> nn.Sequential:
    """AlexNet's first two convolution stages: (B, in_channels, 227, 227) -> (B, 256, 13, 13)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4),  # 227 -> 55
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2),  # 55 -> 27
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),
        nn.Conv2d(96, 256, 5, padding=2, groups=2),  # 27 -> 27
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2),  # 27 -> 13
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),
    )


class DSSN(PeerNetwork):
    """Two shallow AlexNet streams (flow u, v and strain), fused by element-wise multiplication, one classifier.

    Args:
        num_classes: number of output logits.
        drop_rate: dropout before the classifier (the authors': 0.5).

    Shape:
        - Input: (B, 3, 227, 227): u, v feed the flow stream, strain the strain stream
        - Output: (B, num_classes)
    """

    name = "dssn"
    input_size = 227

    def __init__(self, num_classes: int = 5, drop_rate: float = 0.5) -> None:
        super().__init__(num_classes, num_features=256 * 13 * 13)
        self.stream_flow = _shallow_alexnet(2)
        self.stream_strain = _shallow_alexnet(1)
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.num_features, num_classes))
        for m in self.modules():  # the authors' he_normal, with zero biases (see the module docstring)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        fused = self.stream_flow(x[:, 0:2]) * self.stream_strain(x[:, 2:3])
        return fused.flatten(1)


@register_model(input_size=DSSN.input_size)
def dssn(num_classes: int = 5, drop_rate: float = 0.5) -> DSSN:
    """DSSN (Khor et al. 2019): two shallow AlexNet streams (flow, strain) fused by multiplication; 227x227 flow."""
    return DSSN(num_classes, drop_rate)
