"""Where pamer writes: one check that an output folder can be written, made BEFORE the work that fills it (so a
read-only folder or a path that is a file loses no training), one wording of why a write failed, and the one
atomic file writer (a reader never sees half a file), the one lock a folder's single writer holds; and pictures are
drawn on matplotlib's file-only backend."""

from __future__ import annotations

import errno
import fcntl  # POSIX: Linux and macOS, where pamer runs
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pamer.errors import PamerError

__all__ = ["os_error_text", "pyplot", "sole_writer", "write_atomic", "write_problem"]

_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied (a read-only folder?)",
    errno.EPERM: "permission denied (a read-only folder?)",
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is too large for this file system or process limit",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder, not a file",
}


def os_error_text(error: OSError) -> str:
    """Why an operating-system call failed, in words a user can act on (read-only, disk full, ...)."""
    return _REASONS.get(error.errno, error.strerror or str(error))


def write_problem(folder: str | Path, create: bool = False) -> str | None:
    """Why files cannot be written into `folder`, or None when they can.

    A small file is created in the folder and removed again, so the answer holds for root (who ignores
    permission bits but not read-only mounts) and for any file system.

    Args:
        folder: the folder that will hold the outputs.
        create: make the folder (and its parents) when it does not exist yet.
    """
    folder = Path(folder)
    for parent in (folder, *folder.parents):  # the first existing path decides: a file there blocks the folder
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    if not folder.is_dir():
        if not create:
            return f"the folder {folder} does not exist"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return f"cannot create the folder {folder}: {os_error_text(error)}"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".pamer-write-check-") as probe:
            probe.write(b"pamer")
            probe.flush()
    except OSError as error:
        return f"cannot write into {folder}: {os_error_text(error)}"
    return None


@contextmanager
def sole_writer(lock_file: Path) -> Iterator[bool]:
    """Hold an `flock` on `lock_file` (created if need be) for the block; yields False at once when another process
    holds it. The system releases the lock when its process ends, however it ends, so a killed writer never blocks
    the rerun that resumes its work. A file system without locks (some network mounts) yields True, unguarded."""
    with open(lock_file, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:  # no locks here (ENOLCK): the work goes on without the guard
            pass
        yield True


def write_atomic(path: Path, data: bytes | str, error: type[PamerError] | None = None) -> None:
    """Write `data` (text as UTF-8) to a temporary file beside `path`, flush it to the disk, then rename it over
    `path`: a reader never sees half a file, and a process killed midway leaves at most the temporary file
    `.<name>.tmp`, which nothing reads. The file gets the permissions of any file the user makes (0666 less the
    umask). On a failure the temporary file is removed.

    Args:
        path: the file to write.
        data: its contents.
        error: the `PamerError` to raise, as "cannot write PATH: why", when the write fails; None: the OSError.

    Raises:
        OSError: the write failed (read-only folder, full disk, ...) and `error` is None.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as problem:  # an interrupt too: no temporary file stays behind
        with suppress(OSError):
            tmp.unlink()
        if error is not None and isinstance(problem, OSError):
            raise error(f"cannot write {path}: {os_error_text(problem)}") from None
        raise


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed). Imported on first use: it costs about
    0.35 s, which a command that draws no picture (a resumed run, a prediction without --picture) does not pay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
