"""How pamer reads a frame file: one decoder and one frame-number rule, shared by the dataset readers,
`pamer prepare` and `pamer predict`, so a frame file means the same pixels and the same number everywhere.

- `read_rgb` decodes with OpenCV's `IMREAD_COLOR | IMREAD_ANYDEPTH`: the EXIF orientation of a JPEG is applied,
  grey and alpha images become 3-channel RGB, and a 16-bit image is read by its bit depth: one whose values all lie
  in 0..255 holds 8-bit values in a 16-bit file (as `np.uint16` arrays of 0..255 save) and keeps them, any other
  keeps its high byte (0..65535 -> 0..255, OpenCV's own conversion). Applied to every 16-bit file, that conversion
  made the first kind an all-black image. Other depths (float TIFFs) are refused by name.
- `file_frame_number` reads the number at the end of a file name's stem (`img46.jpg` -> 46, `006_05562.jpg` ->
  5562); junk (`is_junk`: `._img46.jpg`, macOS metadata beside a copied frame, `Thumbs.db`, ...), a file
  manager's copy (`img46 copy 2.jpg`: its number is the copy's, not the frame's) or a non-image suffix is no frame.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pamer.errors import PamerError

__all__ = ["IMAGE_SUFFIXES", "JUNK_NAMES", "ImageError", "file_frame_number", "frame_files", "is_junk", "read_rgb"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# file and folder names that copies carry and no dataset ships (compared in lower case); hidden names too
JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})
# the frame number is the last run of digits of the stem: img46, reg_img46, 006_05562, image17581039, 175
_NUMBER = re.compile(r"(\d+)$")
# the name macOS Finder gives a second copy of a file, `img46 copy 2.jpg`: the last digits count copies, not frames
_COPY = re.compile(r"\scopy\s+\d+$", re.IGNORECASE)


class ImageError(PamerError):
    """An image file that cannot be read or decoded (the message names the file)."""


def is_junk(name: str) -> bool:
    """Whether a file or folder name is junk that copies carry, never data: hidden names (`.DS_Store`, macOS
    AppleDouble files `._img46.jpg`), `Thumbs.db`, `desktop.ini`, `__MACOSX`."""
    return name.startswith(".") or name.lower() in JUNK_NAMES


def file_frame_number(name: str | Path) -> int | None:
    """The frame number of an image file's name, or None when the file is not a numbered frame.

    `img46.jpg` -> 46, `reg_img46.jpg` -> 46, `006_05562.jpg` -> 5562, `image17581039.jpg` -> 17581039; None for
    `onset.jpg` (no digits ending the stem), `img46.txt` (not an image suffix), `._img46.jpg` (junk) and
    `img46 copy 2.jpg` (a copy).
    """
    name = Path(name).name
    stem, suffix = Path(name).stem, Path(name).suffix
    if is_junk(name) or suffix.lower() not in IMAGE_SUFFIXES or _COPY.search(stem):
        return None
    match = _NUMBER.search(stem)
    return None if match is None else int(match.group(1))


def frame_files(folder: Path) -> list[tuple[int, Path]]:
    """A folder's frame files as (frame number, path), sorted by number (not by listing order); junk and non-image
    files left out. `ImageError` when the folder holds no image, a name has no number ending it, or two files
    have the same number."""
    files = [p for p in folder.iterdir() if not is_junk(p.name) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ImageError(f"frame folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    numbered = []
    for path in files:
        number = file_frame_number(path)
        if number is None and _COPY.search(path.stem):
            raise ImageError(f"frame file {path} is a copy of a frame (its name ends in 'copy N'); remove it")
        if number is None:
            raise ImageError(
                f"frame file {path} has no frame number ending its name (expected e.g. img46.jpg or 006_05562.png)"
            )
        numbered.append((number, path))
    numbered.sort()
    for (n1, p1), (n2, p2) in zip(numbered, numbered[1:], strict=False):
        if n1 == n2:
            raise ImageError(f"frame folder {folder}: {p1.name} and {p2.name} have the same frame number {n1}")
    return numbered


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as an RGB uint8 array H x W x 3 (EXIF orientation applied; grey, alpha and 16-bit images
    converted, see the module docstring); `ImageError` naming the file when it is missing, unreadable, not a
    decodable image or of a bit depth other than 8 or 16."""
    # imported here: the dataset readers import this module for the frame-number rule only, and cv2 adds ~0.13 s
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if image is None:
        raise ImageError(f"{path}: not a readable image (corrupt, empty or of an unsupported format)")
    if image.dtype == np.uint16:
        high = int(image.max()) if image.size else 0
        image = (image if high <= 255 else image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"{path}: {image.dtype} pixels; expected an 8- or 16-bit image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
