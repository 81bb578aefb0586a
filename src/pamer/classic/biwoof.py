"""Bi-WOOF: bi-weighted oriented optical flow of the onset -> apex motion.

Follows Liong, See, Wong & Phan 2018 ("Less is more: micro-expression recognition from video using apex frame",
Signal Processing: Image Communication 62) and the authors' public MATLAB code (github.com/christy1206/biwoof,
biwoof.m): TV-L1 optical flow from the onset to the apex frame; per pixel the flow's orientation, magnitude and
optical strain; the face split into a 5 x 5 grid of blocks; in each block a histogram of 8 orientation bins whose
votes are the pixels' flow magnitudes (local weighting), normalised to sum 1; each block's histogram then scaled by
the block's optical strain (global weighting); the blocks concatenated and the whole vector scaled to unit length;
a linear SVM.

What pamer does, and where it differs:
- The flow is the cache's `flow` representation (`pamer prepare --representation flow`): OpenCV's TV-L1 with its
  default parameters on pamer's aligned onset and apex crops, u and v in pixels, and the optical strain magnitude
  sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2) (the same quantity as the paper's).
- Orientation is atan2(v, u) in image coordinates (y down, so 90 degrees points down the face); the 8 bins are 45
  degrees wide starting at -180 degrees, as the authors' bin edges are. Their MATLAB `histc` edges stop at 135
  degrees, which leaves angles in (135, 180) out of every bin; here the last bin takes [135, 180), and +180 falls in
  the first bin with -180 (one direction).
- A block's global weight is its mean optical strain (the paper's wording; the authors' code sums it, which is the
  same up to a factor once every block has the same size and the vector is scaled to unit length). A block with no
  flow at all keeps an all-zero histogram.
"""

from __future__ import annotations

import numpy as np

from pamer.classic.blocks import block_index

__all__ = ["biwoof_features", "biwoof_histogram", "orientation_bin"]


def orientation_bin(u: np.ndarray, v: np.ndarray, bins: int = 8) -> np.ndarray:
    """The orientation bin of each flow vector: `bins` equal sectors of atan2(v, u) from -180 degrees.

    u = 1, v = 0 (rightwards) falls in bin bins / 2 (4 of 8: [0, 45) degrees); leftwards in bin 0.
    """
    angle = np.degrees(np.arctan2(np.asarray(v, dtype=np.float64), np.asarray(u, dtype=np.float64)))
    return np.floor((angle + 180.0) / (360.0 / bins)).astype(np.int64) % bins


def biwoof_histogram(flow: np.ndarray, blocks: int = 5, bins: int = 8) -> np.ndarray:
    """The Bi-WOOF feature of one clip.

    Args:
        flow: (H, W, 3) u, v and optical strain of the onset -> apex flow (a cache's `flow[i]`).
        blocks: blocks per side of the grid.
        bins: orientation bins.

    Returns:
        (blocks**2 * bins,) float64, block-major (row by row), unit length (all zero when nothing moved).
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 3:
        raise ValueError(f"expected a flow field (H, W, 3) of u, v and strain, got shape {flow.shape}")
    height, width, _ = flow.shape
    if min(height, width) < blocks:
        raise ValueError(f"a flow field of {height} x {width} is too small for {blocks} x {blocks} blocks")
    u, v, strain = flow[..., 0], flow[..., 1], flow[..., 2]
    block = block_index(height, width, blocks).ravel()
    cells = blocks * blocks
    # local weighting: each pixel votes for its orientation with its flow magnitude
    votes = np.bincount(
        block * bins + orientation_bin(u, v, bins).ravel(), weights=np.hypot(u, v).ravel(), minlength=cells * bins
    ).reshape(cells, bins)
    total = votes.sum(axis=1, keepdims=True)
    hist = np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)
    # global weighting: each block by its mean optical strain
    weight = np.bincount(block, weights=strain.ravel(), minlength=cells) / np.bincount(block, minlength=cells)
    feature = (hist * weight[:, None]).ravel()
    norm = np.linalg.norm(feature)
    return feature / norm if norm > 0 else feature


def biwoof_features(flow: np.ndarray, blocks: int = 5, bins: int = 8) -> np.ndarray:
    """`biwoof_histogram` of every clip of a cache's `flow` (N, H, W, 3); returns (N, blocks**2 * bins) float64."""
    return np.stack([biwoof_histogram(f, blocks, bins) for f in flow])
