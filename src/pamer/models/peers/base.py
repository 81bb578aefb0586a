"""What every peer network shares: the PA-MSC network's interface (pooled features, then logits) and one clear
message for an input of the wrong shape.

The peers were published for a fixed input size (their classifiers are sized for it) and for optical-flow input.
pamer's `data.representation: flow` gives them a (B, 3, H, W) batch of (u, v, optical strain); each network
documents which of the three channels it reads.
"""

from __future__ import annotations

from torch import Tensor, nn

from pamer.models._registry import ModelConfigError

__all__ = ["FLOW_CHANNELS", "PeerNetwork"]

# channel order of pamer's flow representation (`pamer prepare --representation flow`)
FLOW_CHANNELS = ("u", "v", "strain")


class PeerNetwork(nn.Module):
    """Base class: `forward_features` -> (features, []) (peers have no attention maps), `forward_head` -> logits.

    Subclasses set `name` and `input_size`, build `self.head` (features -> logits) and implement `features`.

    Attributes:
        name: the registered model name (used in messages).
        input_size: the only square input side the network accepts.
        in_chans: input channels (3: u, v, strain).
        num_classes: number of output logits.
        num_features: size of the feature vector `forward_features` returns.
    """

    name = "peer"
    input_size = 0
    in_chans = len(FLOW_CHANNELS)

    def __init__(self, num_classes: int, num_features: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = num_features

    def features(self, x: Tensor) -> Tensor:
        """The feature vector of a checked input batch (subclasses implement it)."""
        raise NotImplementedError

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Features before the classifier, and no attention maps (an empty list, like PA-MSC without PA).

        Shape:
            - Input: (B, 3, input_size, input_size): u, v, optical strain
            - Output: features (B, num_features), []
        """
        expected = (self.in_chans, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ModelConfigError(
                f"{self.name} takes a (B, {', '.join(map(str, expected))}) batch of optical flow (u, v, strain) at the "
                f"authors' {self.input_size} x {self.input_size} (set train.input_size: {self.input_size} and "
                f"data.representation: flow), got a tensor of shape {tuple(x.shape)}"
            )
        return self.features(x), []

    def forward_head(self, features: Tensor) -> Tensor:
        """Logits from the features.

        Shape:
            - Input: (B, num_features)
            - Output: (B, num_classes)
        """
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x)[0])
