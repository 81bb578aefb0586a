"""Pictures of a run: confusion matrices (paper Fig. 7) and progressive attention maps over a face."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pamer.outputs import pyplot

__all__ = ["plot_attention", "plot_confusion"]


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Save counts and row-normalised rates (each true class sums to 1) side by side as a PNG.

    Shape:
        - confusion: (C, C), rows true classes, columns predicted.
    """
    plt = pyplot()
    confusion = np.asarray(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    rates = np.divide(confusion, rows, out=np.zeros(confusion.shape, dtype=float), where=rows > 0)
    n = len(classes)
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * n, 1.5 + 0.8 * n), layout="constrained")
    for ax, values, name, fmt in ((axes[0], confusion, "counts", "{:d}"), (axes[1], rates, "row-normalised", "{:.2f}")):
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                value = int(values[i, j]) if fmt == "{:d}" else values[i, j]
                ax.text(
                    j, i, fmt.format(value), ha="center", va="center", color="white" if rates[i, j] > 0.5 else "black"
                )
        ax.set_xticks(range(n), classes, rotation=45, ha="right")
        ax.set_yticks(range(n), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
    return _save(fig, path, title, dpi=120)


def plot_attention(
    face_rgb: np.ndarray,
    motion: np.ndarray,
    maps: Sequence[np.ndarray],
    path: str | Path,
    title: str = "",
) -> Path:
    """Save the face, the motion image and each progressive attention map laid over the face.

    Args:
        face_rgb: the aligned face (e.g. the apex crop), uint8 RGB.
        motion: the network input (normalised or not); shown as its per-pixel magnitude.
        maps: attention maps A_1..A_4, each (h, w) or (1, h, w) with values in [0, 1], any resolution; each is
            shown stretched to its own range (given in its title).
        path: the PNG to write.

    Shape:
        - face_rgb: (H, W, 3); motion: (3, h, w) or (h, w, 3).
    """
    plt = pyplot()

    face = np.asarray(face_rgb)
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim == 3 and motion.shape[0] in (1, 2, 3) and motion.shape[-1] not in (1, 2, 3):
        motion = motion.transpose(1, 2, 0)
    magnitude = np.sqrt((motion**2).sum(axis=-1)) if motion.ndim == 3 else np.abs(motion)
    fig, axes = plt.subplots(1, 2 + len(maps), figsize=(2.4 * (2 + len(maps)), 2.8), layout="constrained")
    axes[0].imshow(face)
    axes[0].set_title("face")
    axes[1].imshow(magnitude, cmap="magma")
    axes[1].set_title("motion |apex - onset|")
    for k, (ax, m) in enumerate(zip(axes[2:], maps, strict=True), start=1):
        m = np.asarray(m, dtype=np.float32).reshape(np.shape(m)[-2:])  # (1, h, w) -> (h, w), also for 1 x 1 maps
        # bilinear upsampling to the face so the coarse maps line up with it
        up = F.interpolate(torch.from_numpy(m)[None, None], size=face.shape[:2], mode="bilinear", align_corners=False)
        ax.imshow(face)
        # each map stretched to its own range: the progressive products A_2..A_4 are small everywhere, and where
        # the network looks is the point of the picture; the range is in the title
        ax.imshow(up[0, 0].numpy(), cmap="jet", alpha=0.45, vmin=float(m.min()), vmax=max(float(m.max()), 1e-12))
        ax.set_title(f"A_{k} {m.shape[0]}x{m.shape[1]} [{m.min():.2f}, {m.max():.2f}]", fontsize=9)
    for ax in axes:
        ax.axis("off")
    return _save(fig, path, title, dpi=100)


def _save(fig, path: str | Path, title: str, dpi: int) -> Path:
    """Title, write and close a figure; returns the PNG's path."""
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
