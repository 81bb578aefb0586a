"""Face alignment, motion representations and the preprocessing cache (the paper's section 1.2).

- `pamer.preprocess.face`: dlib face + 68 landmarks -> one eye-level similarity transform per clip
  (`FaceAligner().fit(frames) -> AlignTransform`, `transform.apply(frame) -> crop`).
- `pamer.preprocess.motion`: apex - onset, TV-L1 flow + optical strain, apex spotting.
- `pamer.preprocess.cache`: the cache format; `load_cache(path)` reads a cache, `write_cache` writes one.
- `pamer.preprocess.pipeline`: `prepare(index, out)` aligns every clip (dlib) and writes its cache once.
- `pamer.preprocess.images`: `prepare_images(index, out, representation)` caches ready-made images (the htnet
  and images readers' flow images or apex crops) without face detection.
"""

from __future__ import annotations

from pamer.frames import ImageError, read_rgb
from pamer.preprocess.cache import Cache, CacheError, load_cache, read_manifest
from pamer.preprocess.face import AlignTransform, FaceAligner
from pamer.preprocess.motion import difference, flow_image, spot_apex
from pamer.preprocess.pipeline import prepare

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
