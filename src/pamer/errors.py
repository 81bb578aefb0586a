"""The one base class of every refusal pamer makes."""

from __future__ import annotations

__all__ = ["PamerError"]


class PamerError(ValueError):
    """A refusal: an input, file, setting or state pamer cannot accept, with a message that names the file, clip,
    key or value and what was expected.

    Every error class of pamer derives from it (a `ValueError`, so callers that caught `ValueError` keep working).
    The command line prints a `PamerError` as one line (`error: ...`, exit status 2); any other exception is a
    bug and shows its traceback.
    """
