"""LBP-TOP: local binary patterns on three orthogonal planes of a clip's aligned grey frames.

Follows Zhao & Pietikainen 2007 ("Dynamic texture recognition using local binary patterns with an application to
facial expressions", IEEE TPAMI 29(6)) with the settings of the CASME II baseline (Yan et al. 2014, "CASME II: an
improved spontaneous micro-expression database and the baseline evaluation", PLoS ONE 9(1)), which the MEGC2019
LBP-TOP baseline (See et al. 2019) also uses: P = 8 neighbours on each of the XY, XT and YT planes, radii
R_X = R_Y = 1 and R_T = 4, uniform patterns (the "u2" mapping: 58 uniform codes + 1 bin for all others), a 5 x 5
grid of blocks, the blocks' histograms concatenated, a linear SVM.

What pamer does, and where it differs:
- The clip is the cache's frames from onset to offset resampled to K = 10 frames linear in time
  (`pamer prepare --clip-frames 10`); the CASME II baseline normalised clip length with the temporal interpolation
  model (TIM) instead.
- Every voxel at least R_T frames from either end and R_X pixels from the border is a centre (for K = 10 and
  R_T = 4: frames 4 and 5), as in Zhao's reference implementation; the XY codes come from those frames.
- Neighbours are sampled on a circle (XY) or an ellipse (XT, YT: R_X or R_Y across, R_T in time) with bilinear
  interpolation, as scikit-image's `local_binary_pattern` does: the XY plane uses it directly; its circles cannot
  have R_T != R_X, so the XT and YT planes (slices of the volume) use `plane_codes`, which samples the same way
  (the tests check that the two agree on circles). Zhao's MATLAB code rounds the neighbour positions instead.
- The 5 x 5 blocks split the centre voxels' rows and columns as evenly as possible; each block's histogram on each
  plane is normalised to sum 1 (so a block's size does not weigh), and the feature is the concatenation
  block by block, XY then XT then YT: 25 x 3 x 59 = 4425 values.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.feature import local_binary_pattern

from pamer.classic.blocks import block_index

__all__ = ["lbptop_features", "lbptop_histogram", "plane_codes", "uniform_table"]


def uniform_table(points: int = 8) -> np.ndarray:
    """The "u2" mapping of `points`-bit LBP codes to histogram bins.

    A code is uniform when its bits, read around the circle, change between 0 and 1 at most twice. Uniform codes
    get the bins 0, 1, ... in increasing code order, every other code the one last bin: P (P - 1) + 3 bins in all
    (59 for P = 8).

    Returns:
        (2**points,) int64: the bin of each code.
    """
    codes = np.arange(2**points, dtype=np.int64)
    rotated = ((codes << 1) | (codes >> (points - 1))) & (2**points - 1)
    changes = np.array([bin(c).count("1") for c in (codes ^ rotated)])
    uniform = changes <= 2
    table = np.full(2**points, int(uniform.sum()), dtype=np.int64)
    table[uniform] = np.arange(int(uniform.sum()))
    return table


def plane_codes(images: np.ndarray, radius_rows: float, radius_cols: float, points: int = 8) -> np.ndarray:
    """LBP codes of every pixel at least the radii (rounded up) from the border, on an ellipse of neighbours.

    Neighbour p sits at (row - radius_rows sin(2 pi p / P), col + radius_cols cos(2 pi p / P)), its value
    interpolated bilinearly, and sets bit p when it is at least the centre's value: scikit-image's
    `local_binary_pattern(..., method="default")` for radius_rows == radius_cols, but with two radii, as the XT and
    YT planes of LBP-TOP need (time on the rows).

    Shape:
        - images: (B, H, W), any real dtype.
        - output: (B, H - 2 ceil(radius_rows), W - 2 ceil(radius_cols)) int64 codes in [0, 2**points).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"expected a stack of images (B, H, W), got shape {images.shape}")
    mr, mc = math.ceil(radius_rows), math.ceil(radius_cols)
    _, height, width = images.shape
    if height <= 2 * mr or width <= 2 * mc:
        raise ValueError(f"images of {height} x {width} have no pixel {mr} rows and {mc} columns from the border")
    rows, cols = height - 2 * mr, width - 2 * mc

    def shifted(dr: int, dc: int) -> np.ndarray:
        return images[:, mr + dr : mr + dr + rows, mc + dc : mc + dc + cols]

    centre = shifted(0, 0)
    codes = np.zeros(centre.shape, dtype=np.int64)
    for p in range(points):
        # the positions rounded to 5 decimals, as scikit-image does, so that cos(pi/2) counts as 0
        r = round(-radius_rows * math.sin(2 * math.pi * p / points), 5)
        c = round(radius_cols * math.cos(2 * math.pi * p / points), 5)
        r0, c0, r1, c1 = math.floor(r), math.floor(c), math.ceil(r), math.ceil(c)
        fr, fc = r - r0, c - c0
        top = (1 - fc) * shifted(r0, c0) + fc * shifted(r0, c1)
        bottom = (1 - fc) * shifted(r1, c0) + fc * shifted(r1, c1)
        value = (1 - fr) * top + fr * bottom
        codes |= (value - centre >= 0).astype(np.int64) << p
    return codes


def lbptop_histogram(
    volume: np.ndarray, radius_xy: float = 1, radius_t: float = 4, points: int = 8, blocks: int = 5
) -> np.ndarray:
    """The LBP-TOP feature of one clip: per block of a `blocks` x `blocks` grid, the u2 histograms of the XY, XT
    and YT planes, each normalised to sum 1, concatenated (block-major, then XY, XT, YT).

    Args:
        volume: the clip's grey frames, (T, H, W), T > 2 ceil(radius_t).
        radius_xy: R_X = R_Y, in pixels.
        radius_t: R_T, in frames.
        points: neighbours P on each plane.
        blocks: blocks per side of the grid.

    Returns:
        (blocks**2 * 3 * (P (P - 1) + 3),) float64.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"expected a clip of grey frames (T, H, W), got shape {volume.shape}")
    frames, height, width = volume.shape
    mt, m = math.ceil(radius_t), math.ceil(radius_xy)
    if frames <= 2 * mt:
        raise ValueError(f"LBP-TOP with radius_t={radius_t} needs more than {2 * mt} frames, the clip has {frames}")
    if min(height, width) - 2 * m < blocks:
        raise ValueError(f"frames of {height} x {width} are too small for {blocks} x {blocks} blocks")
    centre_t = slice(mt, frames - mt)
    # XY: scikit-image's LBP of each centre frame (a circle of radius R_X = R_Y), border pixels dropped
    xy = np.stack(
        [local_binary_pattern(volume[t], points, radius_xy, method="default") for t in range(frames)[centre_t]]
    ).astype(np.int64)[:, m : height - m, m : width - m]
    # XT: for each row y, the (T, W) slice; YT: for each column x, the (T, H) slice. Time runs down the rows.
    xt = plane_codes(volume[:, m : height - m, :].transpose(1, 0, 2), radius_t, radius_xy, points)  # (H', T', W')
    yt = plane_codes(volume[:, :, m : width - m].transpose(2, 0, 1), radius_t, radius_xy, points)  # (W', T', H')
    planes = np.stack([xy, xt.transpose(1, 0, 2), yt.transpose(1, 2, 0)])  # (3, T', H', W')
    table = uniform_table(points)
    bins = int(table.max()) + 1
    block = block_index(planes.shape[2], planes.shape[3], blocks)  # (H', W')
    index = (block[None, None] * 3 + np.arange(3)[:, None, None, None]) * bins + table[planes]
    hist = np.bincount(index.ravel(), minlength=blocks * blocks * 3 * bins).astype(np.float64)
    hist = hist.reshape(blocks * blocks * 3, bins)
    hist /= hist.sum(axis=1, keepdims=True)
    return hist.ravel()


def lbptop_features(
    frames: np.ndarray, radius_xy: float = 1, radius_t: float = 4, points: int = 8, blocks: int = 5
) -> np.ndarray:
    """`lbptop_histogram` of every clip of a cache's `frames` (N, K, H, W); returns (N, D) float64."""
    return np.stack([lbptop_histogram(clip, radius_xy, radius_t, points, blocks) for clip in frames])
