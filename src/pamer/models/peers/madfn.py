"""MADFN: Yang Hongling, Xie Lun, Pan Hang, Li Chiqin, Wang Zhiliang and Zhong Jialiang, "Multimodal attention
dynamic fusion network for facial micro-expression recognition", Entropy 2023, 25(9): 1246
(doi 10.3390/e25091246), the paper's Table 2 row "MADFN".

A design from the paper's description: no code of the authors was found, and of the open-access article only the
abstract could be read here. Searched (stored public pages, documentation, code): the title, the DOI, "MADFN",
"learnable class token" + "micro-expression", "action unit dynamic fusion"; found the abstract (mdpi.com,
PubMed records: keywords "micro-expression recognition; learnable class token; dynamic fusion"), no figure, table,
layer size or training section.

From the abstract (its words in quotes):
- "a masked autoencoder based on learnable class tokens to remove local areas with low emotional expression ability
  in micro-expression images";
- "the action unit dynamic fusion module to fuse action unit representation to improve the potential
  representation ability of image features", motivated by earlier works that "ignore the impact of action units on
  the facial image feature extraction process" (so the AUs act inside the image encoder, not only at its end);
- evaluated on SMIC, CASME II, SAMM and their 3DB-Combined set; accuracy 81.71 %, 82.11 %, 77.21 % on SMIC,
  CASME II, SAMM (Zhan et al. 2024, Table 2: 0.817 / 0.810, 0.821 / 0.801, 0.772 / 0.749).
Zhan et al. 2024 describe it as "forms a mask by the attention mechanism to remove the local areas of low emotional
expression ability, and fuses AUs to improve the image features' latent expressive ability".

pamer's choices (fixed before any run; none from a test subject's result), and why:
- Weights: a ViT trained from scratch. A masked autoencoder's encoder is, in practice, started from MAE-pretrained
  weights (He et al. 2022; ImageNet or faces); the authors very likely did so, and no such weights are available
  here. This changes the numbers: a ViT from scratch on a few hundred clips is far weaker than a pretrained one, so
  pamer's MADFN row measures the architecture under pamer's protocol, not the authors' network. The MAE decoder
  serves pretraining only (He et al. 2022) and is not built.
- Input: pamer's motion image (apex - onset, `data.representation: diff`) at 112 x 112, patches of 8 x 8 (196
  patches, as ViT-B/16 has at 224). The paper's "micro-expression images" are probably apex frames; from scratch, a
  ViT on raw apex faces of ~100 subjects sees identity before expression, so the configs give it the motion image
  (`data.representation: apex` gives it the apex frame instead).
- Encoder: ViT-Tiny's width (192, 3 heads, MLP ratio 4; Touvron et al. 2021) at half its depth (6 blocks), pre-norm,
  learnable position embeddings; dropout 0.1 on the pooled features.
- "Learnable class tokens": one learnable token per emotion class (as multi-class-token transformers do, Xu et al.
  2022 MCTformer); the class tokens' final states are averaged into the feature vector.
- Patch removal: after block 3 the class tokens' attention to the patches (that block's softmax, averaged over
  heads and class tokens) ranks the patches, and the lower half is removed for the remaining blocks (keep ratio
  0.5; MAE removes 75 % at random for pretraining). The ranking is a hard top-k: no gradient flows through the
  choice itself, as in EViT (Liang et al. 2022).
- AU dynamic fusion, right after the removal (inside the encoder): each action unit of a fixed vocabulary
  (`AU_VOCABULARY`: FACS's action units 1 to 28 except 3, which is no code, and 8, 19, 21, coded twice in all of
  CASME II's and SAMM's sheets; plus one "no AU coding" flag for clips without coding) is a token v_a e_a + b_a
  (v_a the clip's AU value, e_a and b_a learned, layer-normalised); the patch and class tokens attend to the AU
  tokens (cross-attention, 3 heads), and a per-token gate computed from the token and its AU context,
  sigmoid(W [x; c]), decides how much of the context is added: x + g * c. Codes outside the vocabulary (8, 21,
  31, 38, 39, 43 and head movements) are not read. The value form v_a e_a + b_a, layer-normalised, keeps its
  meaning under the engine's per-column normalisation of the AU input.
- Without AUs (SMIC; `madfn_image`): the same network without the fusion module, on the image alone; its row is
  labelled so. How the authors fed AUs on SMIC, which has none, is not in the abstract.
- Head: LayerNorm, mean of the class tokens, dropout 0.1, one fully connected layer. Initialisation: truncated
  normal (std 0.02) for tokens, embeddings and linear layers, as timm's ViT.
"""

from __future__ import annotations

import math
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

__all__ = ["AU_VOCABULARY", "MADFN", "MADFN_SIZE", "AUFusion", "au_table", "madfn_inputs"]

MADFN_SIZE = 112
# FACS's action units 1-28 (Ekman, Friesen and Hager 2002) but 3, 8, 19, 21; the AU input adds a "not coded" column
AU_VOCABULARY: tuple[str, ...] = tuple(
    str(a) for a in (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 22, 23, 24, 25, 26, 27, 28)
)


def au_table(aus: np.ndarray | None, au_names: tuple[str, ...] | None, n: int) -> np.ndarray:
    """The clips' AU input: one column per `AU_VOCABULARY` entry (1 coded, 0 not), then a "no AU coding" flag.

    Args:
        aus: a cache's AU table, (n, len(au_names)) with NaN rows for clips that have no coding; None: none coded.
        au_names: the AU numbers of its columns (as text).
        n: number of clips.

    Returns:
        (n, len(AU_VOCABULARY) + 1) float32; an uncoded clip is all zeros with the flag 1.
    """
    table = np.zeros((n, len(AU_VOCABULARY) + 1), dtype=np.float32)
    if aus is None:
        table[:, -1] = 1
        return table
    if au_names is None or aus.shape != (n, len(au_names)):
        raise ValueError(
            f"the AU table has shape {aus.shape} for {n} clips and {None if au_names is None else len(au_names)} "
            "AU names; expected (clips, AU names)"
        )
    uncoded = np.isnan(aus).all(axis=1)
    for j, name in enumerate(au_names):
        if name in AU_VOCABULARY:
            column = aus[:, j]
            table[:, AU_VOCABULARY.index(name)] = np.where(np.isnan(column), 0, column)
    table[uncoded, -1] = 1
    return table


def madfn_inputs(cache: Cache, standard: Callable[[int], Tensor]) -> tuple[Tensor, Tensor]:
    """MADFN's two inputs of every clip (its `Method.inputs`): the engine's image and the clip's AU row (`au_table`).

    Raises:
        ModelConfigError: when the cache codes no AU at all (SMIC): the fusion would read nothing but the "not
            coded" flag, so such a run is refused and pointed at `madfn_image`.

    Shape:
        - output: (N, 3, 112, 112), (N, len(AU_VOCABULARY) + 1, 1, 1) float32 on the engine's device (the AU row
          as channels, so the engine normalises each column over the training clips as it does image channels).
    """
    name = cache.config.get("dataset") or "this cache"
    if cache.aus is None:
        raise ModelConfigError(
            f"madfn fuses each clip's action units, but {name} codes none (SMIC has no AU coding, and caches made "
            "before AUs were recorded hold none): run madfn_image (configs/peers/madfn_smic.yaml), MADFN without "
            "its AU fusion, or prepare the cache again"
        )
    base = standard(MADFN_SIZE)
    table = au_table(cache.aus, cache.au_names, len(cache))
    return base, torch.from_numpy(table)[:, :, None, None].to(base.device)


class Attention(nn.Module):
    """Multi-head self-attention that can also return its softmax weights (averaged over heads)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ModelConfigError(f"embedding dimension {dim} does not split into {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if need_weights:
            weights = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads), dim=-1)
            out = weights @ v
        else:
            weights, out = None, F.scaled_dot_product_attention(q, k, v)
        out = self.proj(out.transpose(1, 2).reshape(b, t, d))
        return out, None if weights is None else weights.mean(dim=1)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        out, weights = self.attn(self.norm1(x), need_weights)
        x = x + out
        return x + self.mlp(self.norm2(x)), weights


class AUFusion(nn.Module):
    """AU dynamic fusion: tokens attend to the clip's AU tokens; a per-token gate scales what is added.

    Shape:
        - Input: tokens (B, T, dim), aus (B, A)
        - Output: (B, T, dim)
    """

    def __init__(self, dim: int, num_aus: int, heads: int) -> None:
        super().__init__()
        self.au_embed = nn.Parameter(torch.zeros(num_aus, dim))
        self.au_bias = nn.Parameter(torch.zeros(num_aus, dim))
        self.norm_x = nn.LayerNorm(dim)
        self.norm_au = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.gate = nn.Linear(2 * dim, dim)
        nn.init.trunc_normal_(self.au_embed, std=0.02)
        nn.init.trunc_normal_(self.au_bias, std=0.02)

    def forward(self, x: Tensor, aus: Tensor) -> Tensor:
        au_tokens = self.norm_au(aus[:, :, None] * self.au_embed + self.au_bias)  # (B, A, dim)
        q = self.norm_x(x)
        context, _ = self.cross(q, au_tokens, au_tokens, need_weights=False)
        gate = torch.sigmoid(self.gate(torch.cat([q, context], dim=-1)))
        return x + gate * context


class MADFN(nn.Module):
    """ViT with learnable class tokens, class-token-guided patch removal and (optionally) AU dynamic fusion.

    Args:
        num_classes: number of output logits and of learnable class tokens.
        au_fusion: whether the AU dynamic fusion module is built (then `forward` takes the AU table too).
        img_size: input side (the configs: 112).
        patch: patch side.
        dim, depth, heads, mlp_ratio: the transformer's width, blocks, heads and MLP ratio.
        drop_after: the block whose class-token attention ranks the patches (1-based; the rest follow the removal).
        keep_ratio: the fraction of patches kept.
        drop_rate: dropout on the pooled features.
        num_aus: columns of the AU input (`au_table`: the vocabulary + the "not coded" flag).

    Shape:
        - Input: x (B, 3, img_size, img_size), with `au_fusion` aus (B, num_aus) or (B, num_aus, 1, 1)
        - Output: (B, num_classes)
    """

    name = "madfn"
    in_chans = 3

    def __init__(
        self,
        num_classes: int = 5,
        *,
        au_fusion: bool = True,
        img_size: int = MADFN_SIZE,
        patch: int = 8,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        drop_after: int = 3,
        keep_ratio: float = 0.5,
        drop_rate: float = 0.1,
        num_aus: int = len(AU_VOCABULARY) + 1,
    ) -> None:
        super().__init__()
        if img_size % patch:
            raise ModelConfigError(f"madfn: img_size {img_size} is not a multiple of the patch side {patch}")
        if not 1 <= drop_after < depth:
            raise ModelConfigError(
                f"madfn: drop_after must be in 1..{depth - 1} (blocks after it see the kept patches)"
            )
        if not 0 < keep_ratio <= 1:
            raise ModelConfigError(f"madfn: keep_ratio must be in (0, 1], got {keep_ratio}")
        self.num_classes = num_classes
        self.num_features = dim
        self.img_size, self.patch = img_size, patch
        self.grid = img_size // patch
        self.num_patches = self.grid**2
        self.keep = max(1, round(self.num_patches * keep_ratio))
        self.drop_after = drop_after
        self.patch_embed = nn.Conv2d(self.in_chans, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, dim))
        self.cls_tokens = nn.Parameter(torch.zeros(1, num_classes, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.fusion = AUFusion(dim, num_aus, heads) if au_fusion else None
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(dim, num_classes))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_tokens, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor, aus: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """Pooled class-token features and the class tokens' attention over the patch grid (before the removal).

        Shape:
            - Input: x (B, 3, img_size, img_size), aus (B, num_aus) or (B, num_aus, 1, 1) with the fusion module,
              else None
            - Output: (B, dim), [(B, 1, grid, grid)]
        """
        side = self.img_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_chans, side, side):
            raise ModelConfigError(
                f"{self.name} takes a (B, 3, {side}, {side}) image batch (set train.input_size: {side}), "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        if (aus is None) != (self.fusion is None):
            raise ModelConfigError(
                f"{self.name}: the AU fusion module is {'off' if self.fusion is None else 'on'}, so the AU table "
                f"must be {'left out' if self.fusion is None else 'given'}"
            )
        if aus is not None and aus.ndim == 4 and aus.shape[2:] == (1, 1):
            aus = aus.flatten(1)  # the engine's form: the AU row as channels
        if aus is not None and (
            aus.ndim != 2 or aus.shape[0] != x.shape[0] or aus.shape[1] != self.fusion.au_embed.shape[0]
        ):
            raise ModelConfigError(
                f"{self.name} takes an AU table of shape (B, {self.fusion.au_embed.shape[0]}), got {tuple(aus.shape)}"
            )
        b, k = x.shape[0], self.num_classes
        patches = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, dim)
        tokens = torch.cat([self.cls_tokens.expand(b, -1, -1), patches], dim=1)
        saliency = None
        for i, block in enumerate(self.blocks, start=1):
            tokens, weights = block(tokens, need_weights=i == self.drop_after)
            if i == self.drop_after:
                tokens, saliency = self.remove_patches(tokens, weights)
                if self.fusion is not None:
                    tokens = self.fusion(tokens, aus)
        features = self.norm(tokens)[:, :k].mean(dim=1)
        return features, [saliency.view(b, 1, self.grid, self.grid)]

    def remove_patches(self, tokens: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """Keep the class tokens and the `keep` patches the class tokens attend to most (in that order).

        Shape:
            - Input: tokens (B, K + N', dim) (class tokens first), weights (B, K + N', K + N') (a block's softmax
              averaged over heads)
            - Output: tokens (B, K + keep, dim), saliency (B, N'): the class tokens' mean attention to each patch
        """
        k = self.num_classes
        saliency = weights[:, :k, k:].mean(dim=1)
        kept = saliency.topk(self.keep, dim=1).indices
        patch_tokens = tokens[:, k:].gather(1, kept[:, :, None].expand(-1, -1, tokens.shape[-1]))
        return torch.cat([tokens[:, :k], patch_tokens], dim=1), saliency

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor, aus: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(x, aus)[0])


@register_model(
    input_size=MADFN_SIZE,
    method=Method(inputs=madfn_inputs, input_shapes=((3, MADFN_SIZE, MADFN_SIZE), (len(AU_VOCABULARY) + 1, 1, 1))),
)
def madfn(num_classes: int = 5, keep_ratio: float = 0.5, drop_rate: float = 0.1) -> MADFN:
    """MADFN (Yang et al. 2023), designed from the paper's description: ViT from scratch + AU dynamic fusion."""
    return MADFN(num_classes, au_fusion=True, keep_ratio=keep_ratio, drop_rate=drop_rate)


@register_model(input_size=MADFN_SIZE)
def madfn_image(num_classes: int = 5, keep_ratio: float = 0.5, drop_rate: float = 0.1) -> MADFN:
    """MADFN without its AU fusion (for SMIC, which codes no AUs): ViT from scratch with class-token patch removal."""
    model = MADFN(num_classes, au_fusion=False, keep_ratio=keep_ratio, drop_rate=drop_rate)
    model.name = "madfn_image"
    return model
