"""The base class of every refusal pamer makes, and the refusal no one module owns: a package that is not installed."""

from __future__ import annotations

__all__ = ["NotInstalledError", "PamerError"]


class PamerError(ValueError):
    """A refusal: an input, file, setting or state pamer cannot accept, with a message that names the file, clip,
    key or value and what was expected.

    Every error class of pamer derives from it (a `ValueError`, so callers that caught `ValueError` keep working).
    The command line prints a `PamerError` as one line (`error: ...`, exit status 2); any other exception is a
    bug and shows its traceback.
    """


class NotInstalledError(PamerError):
    """A package that a step needs and that is not installed (dlib, its landmark model, OpenCV's contrib modules):
    the message names it and the `pip install` that adds it."""
