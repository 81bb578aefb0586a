"""Where a dataset's clip folders are, and what in them is junk rather than data."""

from __future__ import annotations

# file and folder names that copies carry and no dataset ships (compared in lower case); hidden names too
JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})


def is_junk(name: str) -> bool:
    """Whether a file or folder name is junk that copies carry, never data: hidden names (`.DS_Store`, macOS
    AppleDouble files `._img46.jpg`), `Thumbs.db`, `desktop.ini`, `__MACOSX`."""
    return name.startswith(".") or name.lower() in JUNK_NAMES
