"""Face alignment, motion representations and the preprocessing cache (the paper's section 1.2).

- `pamer.preprocess.face`: dlib face + 68 landmarks -> one eye-level similarity transform per clip
  (`FaceAligner().fit(frames) -> AlignTransform`, `transform.apply(frame) -> crop`).
- `pamer.preprocess.motion`: apex - onset, TV-L1 flow + optical strain, apex spotting.
- `pamer.preprocess.cache`: `prepare(index, out)` writes the cache once; `load_cache(path)` reads it.
- `pamer.preprocess.images`: `prepare_images(index, out, representation)` caches ready-made images (the htnet
  and images readers' flow images or apex crops) without face detection.
"""

from __future__ import annotations

from pamer.frames import ImageError, read_rgb
from pamer.preprocess.cache import Cache, CacheError, load_cache, prepare, read_manifest
from pamer.preprocess.face import AlignTransform, FaceAligner
from pamer.preprocess.motion import difference, flow_image, spot_apex

__all__ = [
    "AlignTransform",
    "Cache",
    "CacheError",
    "FaceAligner",
    "ImageError",
    "difference",
    "flow_image",
    "load_cache",
    "prepare",
    "read_manifest",
    "read_rgb",
    "spot_apex",
]
