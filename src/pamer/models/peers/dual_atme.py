"""Dual-ATME: Zhou, Huang, Li and Wang 2023, "Dual-ATME: Dual-Branch Attention Network for Micro-Expression
Recognition", Entropy 25(3):460.

Follows the authors' public code (github.com/HaoliangZhou/Dual-ATME): `Me_Model_att.py` (`MEROIInception`, `CBAM`,
`Inception`), `LossFunctions.py` (`FocalLoss`) and `ModelTrain_MERoI_flow_3ls_cde2019.py` (the recipe).

Network. Two branches on 28 x 28 inputs: the whole-face onset -> apex optical flow (AARS, automated attention
region selection) and the hand-crafted attention region selection (HARS) image, the eye/brow and mouth regions of
the same flow joined into one image. Each branch: Inception block (1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1;
batch norm and ReLU after every convolution; the reduction 1x1 convolutions have 6 channels) to 4 x 6 channels, 2x2
max pool, Inception block to 4 x 12, 2x2 max pool: (48, 7, 7). CBAM (channel attention through a shared MLP with
reduction 16 over average- and max-pooled features, then spatial attention from a 3x3 convolution over the channel
mean and max, as the code's `k_size=3`) on the face branch. The branches' maps are concatenated (96 x 7 x 7 = 4704)
-> fully connected 1024 -> batch norm -> ReLU -> dropout 0.5 -> classes.

Loss: focal loss (gamma 2, alpha 1 for every class, mean over the batch) of the logits plus 0.01 x (1 - cosine
similarity) of the two branches' flattened maps, averaged over the batch. With `train.class_weights` the class
weights take the focal loss's alpha.

Recipe (their script's defaults): Adam, learning rate 1e-3, batches of 128, 60 epochs, constant rate (their StepLR
is made but never stepped), no augmentation, the weights after the last epoch; see `configs/peers/dual_atme*.yaml`.

Deviations, each on purpose:
- HARS attention. The paper says the HARS branch has no attention (its Table 1: adding one did not help); the code
  applies the face branch's CBAM module (the same weights) to the HARS branch too. pamer follows the paper by default;
  `hars_attention=True` is the code's behaviour (one CBAM shared by both branches).
- Inputs. Their flow and HARS images are made by preprocessing that is not public (RCN's flow images, a
  `flow_puzzle` folder). pamer builds both from its own TV-L1 flow (u, v, optical strain, `--representation flow`)
  and the cache's landmarks: the face input is the flow resized to 28 x 28; the HARS image (`hars_images`) cuts,
  from the flow at the crop's full resolution, the box around the subject's right eye and brow (dlib points 17-21,
  36-41), the box around the left eye and brow (22-26, 42-47), each widened by 5 % of the crop side, and the box
  around the mouth (48-67) widened likewise, and joins them into one 28 x 28 image: the two eye regions side by side
  (14 x 14 each) above the mouth (14 x 28). The onset's landmarks are used (the flow is in the onset's frame); a clip
  whose onset has none uses the apex's, and a clip with neither (a ready-made image where dlib found no face) uses
  fixed boxes of the aligned crop (eyes and brows: rows 15-45 % of the side, left and right halves; mouth: rows
  62-92 %, columns 25-75 %).
- Normalisation: the code maps each flow image to [-1, 1] with mean and std 0.5; pamer normalises each input per
  channel with the training clips' mean and standard deviation, as for every network.
- Evaluation: their script trains on the MEGC2019 composite; pamer runs any cache through plain LOSO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamer.models._registry import ModelConfigError, register_model
from pamer.models.method import Method

if TYPE_CHECKING:
    from pamer.preprocess.cache import Cache

__all__ = ["CBAM", "DualATME", "Inception", "dual_atme_loss", "focal_loss", "hars_images"]

SIDE = 28
# dlib 68-point indices: the subject's right eye and brow, left eye and brow, mouth
RIGHT_REGION = (*range(17, 22), *range(36, 42))
LEFT_REGION = (*range(22, 27), *range(42, 48))
MOUTH_REGION = tuple(range(48, 68))
MARGIN = 0.05  # of the crop side, around each landmark box
# the boxes of a clip without landmarks, as fractions of the aligned crop: (top, bottom, left, right)
FIXED_BOXES = ((0.15, 0.45, 0.0, 0.5), (0.15, 0.45, 0.5, 1.0), (0.62, 0.92, 0.25, 0.75))


class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al. 2018), as the authors' `CBAM`.

    Args:
        channels: input channels.
        reduction: the shared MLP's reduction.
        kernel_size: the spatial attention's convolution.

    Shape:
        - Input and output: (B, channels, H, W)
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 3) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
        )
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        channel = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))
        x = x * channel[:, :, None, None]
        spatial = torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))
        return x * spatial


def _conv_bn(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class Inception(nn.Module):
    """The authors' Inception block: four paths with batch norm and ReLU after every convolution, concatenated.

    Args:
        in_channels: input channels.
        width: output channels of each path.
        reduce: channels of the 1x1 convolutions before the 3x3 and 5x5 ones (theirs: 6).

    Shape:
        - Input: (B, in_channels, H, W)
        - Output: (B, 4 * width, H, W)
    """

    def __init__(self, in_channels: int, width: int, reduce: int = 6) -> None:
        super().__init__()
        self.path1 = nn.Sequential(*_conv_bn(in_channels, width, 1))
        self.path3 = nn.Sequential(*_conv_bn(in_channels, reduce, 1), *_conv_bn(reduce, width, 3))
        self.path5 = nn.Sequential(*_conv_bn(in_channels, reduce, 1), *_conv_bn(reduce, width, 5))
        self.path_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *_conv_bn(in_channels, width, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.path1(x), self.path3(x), self.path5(x), self.path_pool(x)], dim=1)


def _branch() -> nn.Sequential:
    """(B, 3, 28, 28) -> (B, 48, 7, 7)."""
    return nn.Sequential(Inception(3, 6), nn.MaxPool2d(2), Inception(24, 12), nn.MaxPool2d(2))


class DualATME(nn.Module):
    """The face (AARS) branch with CBAM and the HARS branch, fused by one hidden layer of 1024.

    Args:
        num_classes: number of output logits.
        hidden: width of the hidden layer (theirs: 1024).
        drop_rate: dropout before the classifier (theirs: 0.5).
        hars_attention: also apply the face branch's CBAM to the HARS branch (the code's behaviour; the paper's,
            the default, has none).

    Shape:
        - Input: face (B, 3, 28, 28), hars (B, 3, 28, 28): u, v, strain
        - Output: (B, num_classes)
    """

    name = "dual_atme"
    input_size = SIDE
    in_chans = 3

    def __init__(
        self, num_classes: int = 3, hidden: int = 1024, drop_rate: float = 0.5, hars_attention: bool = False
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = hidden
        self.hars_attention = hars_attention
        self.face = _branch()
        self.hars = _branch()
        self.cbam = CBAM(48)
        self.fc = nn.Sequential(
            nn.Linear(2 * 48 * 7 * 7, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(drop_rate)
        )
        self.head = nn.Linear(hidden, num_classes)

    def branches(self, face: Tensor, hars: Tensor) -> tuple[Tensor, Tensor]:
        """Each branch's (B, 48, 7, 7) map (after attention where it has one)."""
        for x in (face, hars):
            if x.ndim != 4 or tuple(x.shape[1:]) != (3, SIDE, SIDE):
                raise ModelConfigError(
                    f"dual_atme takes two (B, 3, {SIDE}, {SIDE}) batches (the face flow and the HARS image, built by "
                    f"its declared inputs from a flow cache; set data.representation: flow and train.input_size: "
                    f"{SIDE}), got {tuple(x.shape)}"
                )
        a = self.cbam(self.face(face))
        b = self.hars(hars)
        return a, self.cbam(b) if self.hars_attention else b

    def forward_features(self, face: Tensor, hars: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The fused 1024 features and no attention maps.

        Shape:
            - Output: (B, hidden), []
        """
        a, b = self.branches(face, hars)
        return self.fc(torch.cat([a, b], dim=1).flatten(1)), []

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, face: Tensor, hars: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(face, hars)[0])


def focal_loss(logits: Tensor, y: Tensor, gamma: float = 2.0, alpha: Tensor | None = None) -> Tensor:
    """Mean focal loss -alpha_y (1 - p_y)^gamma log p_y (Lin et al. 2017), as the authors' `FocalLoss`.

    Shape:
        - logits: (B, C); y: (B,); alpha: (C,) or None (1 for every class).
    """
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, y[:, None])[:, 0]
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if alpha is not None:
        loss = alpha[y] * loss
    return loss.mean()


def dual_atme_loss(
    model: nn.Module, inputs: Sequence[Tensor], y: Tensor, weight: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Focal loss plus 0.01 x (1 - cosine similarity) of the two branches' flattened maps (their training script)."""
    a, b = model.branches(*inputs)
    logits = model.forward_head(model.fc(torch.cat([a, b], dim=1).flatten(1)))
    similarity = F.cosine_similarity(a.flatten(1).float(), b.flatten(1).float(), dim=1).mean()
    return focal_loss(logits, y, alpha=weight) + 0.01 * (1 - similarity), logits


def _box(points: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) in pixels: the points' bounding box widened by MARGIN, inside the crop."""
    pad = MARGIN * side
    x0, y0 = np.floor(points.min(axis=0) - pad)
    x1, y1 = np.ceil(points.max(axis=0) + pad)
    top, left = int(np.clip(y0, 0, side - 2)), int(np.clip(x0, 0, side - 2))
    return top, max(int(np.clip(y1, 0, side)), top + 2), left, max(int(np.clip(x1, 0, side)), left + 2)


def hars_images(motion: Tensor, landmarks: np.ndarray | None, crop_side: int, size: int = SIDE) -> Tensor:
    """The HARS image of every clip: eye/brow regions side by side above the mouth region (see the module).

    Args:
        motion: every clip's motion at some side S (the flow resized from the cached crop).
        landmarks: the cache's (N, 2, 68, 2) onset/apex landmarks in crop pixels (None: every clip's fixed boxes).
        crop_side: the cached crop's side (the landmarks' scale).
        size: the output side (28).

    Shape:
        - motion: (N, C, S, S); output: (N, C, size, size).
    """
    n, _, side, _ = motion.shape
    half = size // 2
    out = motion.new_empty(n, motion.shape[1], size, size)
    scale = side / crop_side
    for i in range(n):
        points = None
        if landmarks is not None:
            usable = [p for p in landmarks[i] if np.isfinite(p).all()]
            points = usable[0] * scale if usable else None
        if points is None:
            boxes = [
                (round(t * side), round(b * side), round(lo * side), round(r * side)) for t, b, lo, r in FIXED_BOXES
            ]
        else:
            boxes = [_box(points[list(region)], side) for region in (RIGHT_REGION, LEFT_REGION, MOUTH_REGION)]
        top_row, bottom_row = slice(0, half), slice(half, size)
        targets = ((top_row, slice(0, half)), (top_row, slice(half, size)), (bottom_row, slice(0, size)))
        for (top, bottom, left, right), (rows, cols) in zip(boxes, targets, strict=True):
            region = motion[i : i + 1, :, top:bottom, left:right]
            shape = (rows.stop - rows.start, cols.stop - cols.start)
            out[i, :, rows, cols] = F.interpolate(region, size=shape, mode="bilinear", antialias=True)[0]
    return out


def dual_atme_inputs(cache: Cache, standard: Callable[[int], Tensor]) -> tuple[Tensor, Tensor]:
    """The face flow at 28 x 28 and the HARS image cut from the flow at the crop's own side."""
    crop_side = int(cache.config.get("size") or 0)
    if crop_side < SIDE:
        raise ModelConfigError(f"dual_atme needs a cache whose config names its crop size (got size={crop_side!r})")
    if cache.landmarks is None:
        raise ModelConfigError(
            "dual_atme cuts its HARS image at the cache's landmarks, but this cache holds none (made by a pamer "
            "before caches kept them): prepare it again with `pamer prepare`"
        )
    return standard(SIDE), hars_images(standard(crop_side), cache.landmarks, crop_side)


@register_model(
    input_size=SIDE,
    method=Method(inputs=dual_atme_inputs, input_shapes=((3, SIDE, SIDE), (3, SIDE, SIDE)), loss=dual_atme_loss),
)
def dual_atme(
    num_classes: int = 3, hidden: int = 1024, drop_rate: float = 0.5, hars_attention: bool = False
) -> DualATME:
    """Dual-ATME (Zhou et al. 2023): face flow with CBAM + HARS landmark-region image, Inception branches; 28x28."""
    return DualATME(num_classes, hidden, drop_rate, hars_attention)
