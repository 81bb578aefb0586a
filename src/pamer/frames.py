"""How pamer reads a frame file: one decoder and one frame-number rule, shared by the dataset readers,
`pamer prepare` and `pamer predict`, so a frame file means the same pixels and the same number everywhere.

- `read_rgb` decodes with OpenCV's `IMREAD_COLOR`: the EXIF orientation of a JPEG is applied, 16-bit images are
  scaled to 8 bits, grey and alpha images become 3-channel RGB.
- `file_frame_number` reads the number at the end of a file name's stem (`img46.jpg` -> 46, `006_05562.jpg` ->
  5562); junk (`is_junk`: `._img46.jpg`, macOS metadata beside a copied frame, `Thumbs.db`, ...) or a non-image
  suffix is no frame.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pamer.errors import PamerError

__all__ = ["IMAGE_SUFFIXES", "JUNK_NAMES", "ImageError", "file_frame_number", "is_junk", "read_rgb"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# file and folder names that copies carry and no dataset ships (compared in lower case); hidden names too
JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})
# the frame number is the last run of digits of the stem: img46, reg_img46, 006_05562, image17581039, 175
_NUMBER = re.compile(r"(\d+)$")


class ImageError(PamerError):
    """An image file that cannot be read or decoded (the message names the file)."""


def is_junk(name: str) -> bool:
    """Whether a file or folder name is junk that copies carry, never data: hidden names (`.DS_Store`, macOS
    AppleDouble files `._img46.jpg`), `Thumbs.db`, `desktop.ini`, `__MACOSX`."""
    return name.startswith(".") or name.lower() in JUNK_NAMES


def file_frame_number(name: str | Path) -> int | None:
    """The frame number of an image file's name, or None when the file is not a numbered frame.

    `img46.jpg` -> 46, `reg_img46.jpg` -> 46, `006_05562.jpg` -> 5562, `image17581039.jpg` -> 17581039; None for
    `onset.jpg` (no digits ending the stem), `img46.txt` (not an image suffix) and `._img46.jpg` (junk).
    """
    name = Path(name).name
    stem, suffix = Path(name).stem, Path(name).suffix
    if is_junk(name) or suffix.lower() not in IMAGE_SUFFIXES:
        return None
    match = _NUMBER.search(stem)
    return None if match is None else int(match.group(1))


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as an RGB uint8 array H x W x 3 (EXIF orientation applied; grey, alpha and 16-bit images
    converted); `ImageError` naming the file when it is missing, unreadable or not a decodable image."""
    # imported here: the dataset readers import this module for the frame-number rule only, and cv2 adds ~0.13 s
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageError(f"{path}: not a readable image (corrupt, empty or of an unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
