"""FGRMER: Lei, Chen, Li and Li 2021, "Micro-expression Recognition Based on Facial Graph Representation Learning
and Facial Action Unit Fusion", CVPR Workshops 2021 (the paper's Table 2 row "DConv+ETran+AUGCN+AUFusion").

Follows the authors' public network (github.com/raying777/FGRMER, `t_g_model_3and6.py`, `NetworkModel`; their
repository holds the test script only) and, for what it lacks (training, patches, the AU graph), the public
reproduction github.com/Justin900429/Facial-Graph-Representation-Learning (`train.py`, `compute_adj.py`,
`dataloader/dataset.py`).

Network. 30 patches of 7 x 7 around the landmarks of the eyebrows (dlib points 17-26) and mouth (48-67), one channel
each -> depthwise 3x3 convolution (30 groups) + batch norm + ReLU -> 30 tokens of 49. The 10 eyebrow tokens and the
20 mouth tokens go through their own transformer encoder: 6 layers of d_model 49, 8 heads of 16, feed-forward 128,
post-norm, dropout 0.5 (attention-weight dropout 0.1), as their `EncoderLayer`. Heads: eyebrow 490 -> 320 (ReLU,
dropout) -> 160 (ReLU); mouth 980 -> 320 -> 160 likewise. AU graph: 9 learned node embeddings of 40 (AUs 1, 2, 4 |
10, 12, 14, 15, 17, 25), two graph convolutions 40 -> 80 -> 160 (no bias, LeakyReLU 0.2) over the normalised
adjacency D^-1/2 (A + I)^T D^-1/2. Fusion: eyebrow features x the 3 eyebrow AU nodes and mouth features x the 6
mouth AU nodes -> 9 values -> LayerNorm -> linear classifier. Cross-entropy (their log-softmax + NLL).

Adjacency, a statistic of the training fold (`fgrmer_fold_args`, given the fold's training clips only): A[i, j] is
the share of training clips coded with AU j that are also coded with AU i, as in their `data/adj/adj_train*.npy`
(every column of those files is a multiple of one 1 / n_j, no row is; the reproduction's `compute_adj.py` divides
by the row's count instead, the transpose), counted over the clips that have AU coding (a NaN row of `Cache.aus` is
a clip without coding, e.g. SMIC's part of the composite). A fold whose training clips have no AU coding at all (SMIC
alone) uses A = 0, i.e. the identity adjacency after adding I (`au_fallback: identity`, the only fallback).

Recipe (the reproduction's `train.py`; the authors published none): Adam, learning rate 1e-4, batches of 32,
15 epochs, no augmentation but its MagNet amplification (see Deviations). See `configs/peers/fgrmer*.yaml`.

Deviations, each on purpose:
- Input. The authors' patches come from the shape representation of a pretrained motion-magnification network
  (MagNet, onset -> apex at amplification 2, landmarks on the magnified apex), whose weights no package ships.
  pamer cuts the same 30 patches from its own onset -> apex motion at 128 x 128 (the reproduction's side): the
  configured representation (TV-L1 u, v, optical strain with `--representation flow`), min-max scaled per channel
  and clip and averaged over the channels (the reproduction's post-processing of the shape representation), at the
  apex landmarks (the onset's where the apex has none; a clip with neither is refused by name). The reproduction
  indexes rows by x and columns by y (a transposed patch); pamer cuts rows by y. Each patch is normalised with the
  training clips' mean and standard deviation (as every pamer input).
- Augmentation. The reproduction magnifies each training clip by a factor drawn from 1.2, 1.4, ..., 3.0 (2.0 for the
  test clips; `dataloader/dataset.py`, `MEDataset.AMP_LIST`), which changes the shape representation and moves the
  landmarks found on the magnified apex. Without MagNet there is nothing to draw: pamer trains on the motion as is.
- Encoder. The official encoder loop feeds every layer the original tokens, so only the last layer counts; pamer
  chains the six layers, as the paper describes.
- The adjacency is a buffer (the official code keeps it as a parameter that never receives a gradient: 81 values).
- The last epoch is kept (the reproduction keeps the epoch of best training accuracy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamer.models._registry import ModelConfigError, register_model
from pamer.models.method import Method

if TYPE_CHECKING:
    from pamer.preprocess.cache import Cache

__all__ = ["AUGraph", "EncoderLayer", "FGRMER", "au_adjacency", "landmark_patches"]

AUS = ("1", "2", "4", "10", "12", "14", "15", "17", "25")  # the first 3: eyebrows, the other 6: mouth
EYEBROW_POINTS = tuple(range(17, 27))
MOUTH_POINTS = tuple(range(48, 68))
PATCH = 7
MOTION_SIDE = 128
FALLBACKS = ("identity",)


class EncoderLayer(nn.Module):
    """One post-norm transformer encoder layer, as their `EncoderLayer` (attention-is-all-you-need-pytorch).

    Args:
        d_model: token width (49).
        d_inner: feed-forward width (128).
        heads: attention heads (8).
        d_head: query/key/value width per head (16).
        dropout: dropout after the attention projection and the feed-forward (0.5).
        attn_dropout: dropout of the attention weights (0.1).

    Shape:
        - Input and output: (B, T, d_model)
    """

    def __init__(
        self,
        d_model: int = 49,
        d_inner: int = 128,
        heads: int = 8,
        d_head: int = 16,
        dropout: float = 0.5,
        attn_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.heads, self.d_head = heads, d_head
        self.w_q = nn.Linear(d_model, heads * d_head, bias=False)
        self.w_k = nn.Linear(d_model, heads * d_head, bias=False)
        self.w_v = nn.Linear(d_model, heads * d_head, bias=False)
        self.proj = nn.Linear(heads * d_head, d_model, bias=False)
        self.attn_drop = nn.Dropout(attn_dropout)
        self.drop1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_inner), nn.ReLU(), nn.Linear(d_inner, d_model))
        self.drop2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, self.heads, self.d_head).transpose(1, 2)

        q, k, v = split(self.w_q(x)), split(self.w_k(x)), split(self.w_v(x))
        attn = self.attn_drop(torch.softmax(q @ k.transpose(2, 3) / self.d_head**0.5, dim=-1))
        y = (attn @ v).transpose(1, 2).reshape(b, t, -1)
        x = self.norm1(self.drop1(self.proj(y)) + x)
        return self.norm2(self.drop2(self.ffn(x)) + x)


class AUGraph(nn.Module):
    """Learned AU node embeddings through two graph convolutions over a fixed normalised adjacency.

    Args:
        adjacency: (9, 9) A of the training fold (before adding I); None: zeros (the identity adjacency).

    Shape:
        - Output: (9, 160) node features
    """

    def __init__(self, adjacency: Tensor | None = None, nodes: int = len(AUS), dims: tuple[int, ...] = (40, 80, 160)):
        super().__init__()
        self.embedding = nn.Embedding(nodes, dims[0])
        nn.init.normal_(self.embedding.weight, 0, 0.01)
        self.weights = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            bound = 1 / d_out**0.5  # their GraphConvolution's initialisation
            self.weights.append(nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound)))
        a = torch.zeros(nodes, nodes) if adjacency is None else torch.as_tensor(adjacency, dtype=torch.float32)
        if a.shape != (nodes, nodes):
            raise ModelConfigError(f"fgrmer: the AU adjacency must be {nodes} x {nodes}, got {tuple(a.shape)}")
        a = a + torch.eye(nodes)
        d = a.sum(1).pow(-0.5)
        self.register_buffer("adjacency", d[:, None] * a.T * d[None, :])  # their gen_adj: (A D)^T D

    def forward(self) -> Tensor:
        x = self.embedding.weight
        for w in self.weights:
            x = F.leaky_relu(self.adjacency @ (x @ w), 0.2)
        return x


def _head(n_in: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, 320), nn.ReLU(), nn.Dropout(dropout), nn.Linear(320, 160), nn.ReLU())


class FGRMER(nn.Module):
    """Depthwise convolution, eyebrow and mouth transformer encoders, AU graph and AU fusion.

    Args:
        num_classes: number of output logits.
        adjacency: the training fold's AU co-occurrence (9 x 9, `au_adjacency`); None: identity.
        layers: encoder layers per branch (6).
        dropout: the encoders' and heads' dropout (0.5).
        au_fallback: what a fold without AU coding uses ("identity", the only one).

    Shape:
        - Input: (B, 30, 7, 7) landmark patches (10 eyebrow, then 20 mouth)
        - Output: (B, num_classes)
    """

    name = "fgrmer"
    input_size = MOTION_SIDE
    in_chans = len(EYEBROW_POINTS) + len(MOUTH_POINTS)

    def __init__(
        self,
        num_classes: int = 3,
        adjacency: Tensor | None = None,
        layers: int = 6,
        dropout: float = 0.5,
        au_fallback: str = "identity",
    ) -> None:
        super().__init__()
        if au_fallback not in FALLBACKS:
            raise ModelConfigError(f"fgrmer: au_fallback {au_fallback!r}; expected one of {', '.join(FALLBACKS)}")
        n = self.in_chans
        self.num_classes = num_classes
        self.num_features = len(AUS)
        self.dwconv = nn.Sequential(nn.Conv2d(n, n, 3, padding=1, groups=n), nn.BatchNorm2d(n), nn.ReLU())
        self.eyebrow = nn.Sequential(*(EncoderLayer(dropout=dropout) for _ in range(layers)))
        self.mouth = nn.Sequential(*(EncoderLayer(dropout=dropout) for _ in range(layers)))
        self.eyebrow_head = _head(len(EYEBROW_POINTS) * PATCH * PATCH, dropout)
        self.mouth_head = _head(len(MOUTH_POINTS) * PATCH * PATCH, dropout)
        self.graph = AUGraph(adjacency)
        self.norm = nn.LayerNorm(len(AUS), eps=1e-6)
        self.head = nn.Linear(len(AUS), num_classes)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The 9 fused AU values after LayerNorm, and no attention maps.

        Shape:
            - Output: (B, 9), []
        """
        expected = (self.in_chans, PATCH, PATCH)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ModelConfigError(
                f"fgrmer takes a (B, {', '.join(map(str, expected))}) batch of landmark patches (built by its declared "
                f"inputs from the cache's motion and landmarks), got {tuple(x.shape)}"
            )
        tokens = self.dwconv(x).flatten(2)
        k = len(EYEBROW_POINTS)
        eyebrow = self.eyebrow_head(self.eyebrow(tokens[:, :k]).flatten(1))
        mouth = self.mouth_head(self.mouth(tokens[:, k:]).flatten(1))
        nodes = self.graph().T  # (160, 9)
        fused = torch.cat([eyebrow @ nodes[:, :3], mouth @ nodes[:, 3:]], dim=1)
        return self.norm(fused), []

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x)[0])


def au_adjacency(aus: np.ndarray | None, au_names: tuple[str, ...] | None) -> np.ndarray | None:
    """A[i, j]: the share of clips coded with AU j that are also coded with AU i (the 9 AUs of `AUS`; diagonal 0),
    over the clips with AU coding; None when no clip has any (then the network uses the identity adjacency).

    Shape:
        - aus: (N, len(au_names)), 1/0, NaN rows for clips without coding; output: (9, 9) float32.
    """
    if aus is None or au_names is None:
        return None
    coded = aus[np.isfinite(aus).all(axis=1)]
    if len(coded) == 0:
        return None
    table = np.zeros((len(coded), len(AUS)))
    for j, au in enumerate(AUS):
        if au in au_names:
            table[:, j] = coded[:, au_names.index(au)] > 0
    together = table.T @ table
    np.fill_diagonal(together, 0)
    return (together / np.maximum(table.sum(axis=0), 1)[None, :]).astype(np.float32)  # column j over AU j's clips


def fgrmer_fold_args(train: Cache) -> dict:
    """The AU graph of the fold's training clips (only they are in `train`)."""
    adjacency = au_adjacency(train.aus, train.au_names)
    return {} if adjacency is None else {"adjacency": torch.from_numpy(adjacency)}


def landmark_patches(motion: Tensor, landmarks: np.ndarray | None, crop_side: int, clips: list[str]) -> Tensor:
    """The 7 x 7 patches around the 30 eyebrow and mouth landmarks of every clip (see the module).

    Args:
        motion: every clip's motion at 128 x 128.
        landmarks: the cache's (N, 2, 68, 2) onset/apex landmarks in crop pixels.
        crop_side: the cached crop's side (the landmarks' scale).
        clips: clip ids (for the message naming clips without landmarks).

    Shape:
        - motion: (N, C, S, S); output: (N, 30, 7, 7) in [0, 1].
    """
    n, _, side, _ = motion.shape
    lo = motion.amin(dim=(2, 3), keepdim=True)
    hi = motion.amax(dim=(2, 3), keepdim=True)
    maps = ((motion - lo) / (hi - lo).clamp_min(1e-12)).mean(dim=1)  # (N, S, S)
    half = PATCH // 2
    padded = F.pad(maps, (half, half, half, half), mode="replicate")
    points = EYEBROW_POINTS + MOUTH_POINTS
    missing = []
    out = motion.new_empty(n, len(points), PATCH, PATCH)
    for i in range(n):
        usable = [] if landmarks is None else [p for p in landmarks[i][::-1] if np.isfinite(p).all()]  # apex first
        if not usable:
            missing.append(clips[i])
            continue
        xy = np.rint(usable[0][list(points)] * side / crop_side).astype(int).clip(0, side - 1)
        for k, (x, y) in enumerate(xy):
            out[i, k] = padded[i, y : y + PATCH, x : x + PATCH]  # centred on (x, y) in the padded map
    if missing:
        raise ModelConfigError(
            f"fgrmer cuts its patches around each clip's landmarks, but {len(missing)} clip(s) have none (no face "
            f"found in onset or apex): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; prepare the "
            "dataset with pamer's own alignment, or leave those clips out"
        )
    return out


def fgrmer_inputs(cache: Cache, standard: Callable[[int], Tensor]) -> tuple[Tensor]:
    """The landmark patches cut from the configured motion at 128 x 128."""
    crop_side = int(cache.config.get("size") or 0)
    if crop_side < 1:
        raise ModelConfigError(f"fgrmer needs a cache whose config names its crop size (got size={crop_side!r})")
    if cache.landmarks is None:
        raise ModelConfigError(
            "fgrmer cuts its patches at the cache's landmarks, but this cache holds none (made by a pamer "
            "before caches kept them): prepare it again with `pamer prepare`"
        )
    return (landmark_patches(standard(MOTION_SIDE), cache.landmarks, crop_side, cache.clips),)


@register_model(
    input_size=MOTION_SIDE,
    method=Method(
        inputs=fgrmer_inputs,
        input_shapes=((len(EYEBROW_POINTS) + len(MOUTH_POINTS), PATCH, PATCH),),
        fold_args=fgrmer_fold_args,
    ),
)
def fgrmer(
    num_classes: int = 3,
    adjacency: Tensor | None = None,
    layers: int = 6,
    dropout: float = 0.5,
    au_fallback: str = "identity",
) -> FGRMER:
    """FGRMER (Lei et al. 2021): landmark patches, eyebrow/mouth transformers, AU GCN and AU fusion; 7x7 patches."""
    return FGRMER(num_classes, adjacency, layers, dropout, au_fallback)
