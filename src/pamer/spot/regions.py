"""The regions of interest whose motion is measured for spotting, and one motion value per patch and frame.

The regions and patches are those of the MEGC2022 winners' code (Yu, Cai et al.; CZP-1/Facial-Expression-
Spotting-Based-on-Optical-Flow-Features-MindSpore, `cas_util.py`, `draw_roiline19`), on dlib's 68 points:

- both eyebrows: a 20 px patch centred on each of the points 18, 19, 20 and 23, 24, 25;
- the mouth: 20 px patches on the corners 48, 54, the lip centres 51, 57 and the inner lip 62;
- the nose sides: 25 x 30 px patches above and beside the nostril wings 31 and 35;
- the nose bridge (points 28-30, `pamer.preprocess.register.nose_box`): its motion is the head's, removed from
  every patch.

The eyes are never used: blinks are not expressions. Sizes are quoted at the reference scale (a 256 px face crop)
and scaled to the crop size used. A patch's motion is the mean flow vector of its fastest `TOP_FRACTION` of pixels
(the code's `get_roi(flow, 0.2)`), minus the nose bridge's mean vector of its fastest `NOSE_TOP_FRACTION` (the
code's `get_roi(flow2, 0.7)`); its magnitude, in reference pixels, is the channel's value for that frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pamer.preprocess.register import Reference, farneback, map_points

REGIONS = ("left brow", "right brow", "mouth", "nose sides")  # left/right as seen in the image
# kind of each region, which picks its local threshold in `pamer.spot.peaks.LOCAL_PX`
REGION_KIND = {"left brow": "brow", "right brow": "brow", "mouth": "mouth", "nose sides": "nose"}
# (region, landmark, (top, bottom, left, right) extent around it in px at the 256 px reference crop)
PATCHES = (
    ("left brow", 18, (10, 10, 10, 10)),
    ("left brow", 19, (10, 10, 10, 10)),
    ("left brow", 20, (10, 10, 10, 10)),
    ("right brow", 23, (10, 10, 10, 10)),
    ("right brow", 24, (10, 10, 10, 10)),
    ("right brow", 25, (10, 10, 10, 10)),
    ("mouth", 48, (10, 10, 10, 20)),
    ("mouth", 54, (10, 10, 20, 10)),
    ("mouth", 51, (10, 10, 10, 10)),
    ("mouth", 57, (10, 10, 10, 10)),
    ("mouth", 62, (10, 10, 10, 10)),
    ("nose sides", 31, (20, 5, 20, 10)),
    ("nose sides", 35, (20, 5, 10, 20)),
)
TOP_FRACTION = 0.2
NOSE_TOP_FRACTION = 0.7
REFERENCE_CROP = 256
MARGIN = 20  # reference px around a region's patches (the code's region boxes reach 15-20 px past the landmarks)


def top_mean(vectors: np.ndarray, fraction: float) -> np.ndarray:
    """The mean (x, y) of the `fraction` of `vectors` (N, 2) with the largest magnitude (at least one)."""
    k = max(int(round(len(vectors) * fraction)), 1)
    magnitude = np.einsum("ij,ij->i", vectors, vectors)
    idx = np.argpartition(magnitude, len(vectors) - k)[len(vectors) - k :]
    return vectors[idx].mean(axis=0)


@dataclass(frozen=True)
class Patches:
    """Where the flow is measured on one window's reference crop: one box per region (its patches' bounding box
    widened by `MARGIN` reference px, as the code computes one flow per region box), each patch as slices inside
    its region's box, and the nose bridge's box."""

    regions: tuple[tuple[slice, slice], ...]  # per region, in crop pixels
    boxes: tuple[tuple[slice, slice], ...]  # per patch, inside its region's box
    region: tuple[int, ...]  # index into REGIONS, per patch
    nose: tuple[slice, slice]
    to_reference_px: float

    @classmethod
    def of(cls, reference: Reference) -> Patches:
        """The patches of `reference`'s crop, placed on its landmarks."""
        size = reference.size
        k = size / REFERENCE_CROP
        points = map_points(reference.matrix, reference.points)
        spans = []
        for _, point, (up, down, left, right) in PATCHES:
            x, y = points[point]
            y0, y1 = int(round(y - k * up)), int(round(y + k * down))
            x0, x1 = int(round(x - k * left)), int(round(x + k * right))
            y0, x0 = min(max(y0, 0), size - 1), min(max(x0, 0), size - 1)
            spans.append((y0, min(max(y1, y0 + 1), size), x0, min(max(x1, x0 + 1), size)))
        region = tuple(REGIONS.index(r) for r, _, _ in PATCHES)
        margin = round(k * MARGIN)
        regions, boxes = [], [None] * len(PATCHES)
        for r in range(len(REGIONS)):
            mine = [i for i, g in enumerate(region) if g == r]
            top = max(min(spans[i][0] for i in mine) - margin, 0)
            bottom = min(max(spans[i][1] for i in mine) + margin, size)
            left = max(min(spans[i][2] for i in mine) - margin, 0)
            right = min(max(spans[i][3] for i in mine) + margin, size)
            regions.append((slice(top, bottom), slice(left, right)))
            for i in mine:
                y0, y1, x0, x1 = spans[i]
                boxes[i] = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        left, top, right, bottom = reference.nose
        return cls(
            tuple(regions), tuple(boxes), region, (slice(top, bottom), slice(left, right)), reference.to_reference_px
        )

    def values(self, reference: np.ndarray, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """Each patch's motion magnitude (reference px), the nose bridge's motion removed, and the magnitude of that
        nose motion (reference px): the registration's residual.

        Shape:
            reference, crop: (S, S) grey uint8, the window's reference crop and the registered frame's crop.
            Returns (P,) float64 and a float.
        """
        nose = top_mean(farneback(reference[self.nose], crop[self.nose]).reshape(-1, 2), NOSE_TOP_FRACTION)
        flows = [farneback(reference[box], crop[box]) for box in self.regions]
        out = np.empty(len(self.boxes))
        for i, (box, r) in enumerate(zip(self.boxes, self.region, strict=True)):
            patch = flows[r][box].reshape(-1, 2)
            out[i] = np.hypot(*(top_mean(patch, TOP_FRACTION) - nose)) if len(patch) else 0.0
        return out * self.to_reference_px, float(np.hypot(*nose)) * self.to_reference_px
