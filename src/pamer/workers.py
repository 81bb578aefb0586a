"""Worker processes that never outlive the process that started them.

A pool's workers block on a queue whose write end they hold themselves, so a parent killed with SIGKILL (which
runs no clean-up) leaves them running for ever, each holding dlib's models and a clip's frames. A worker calls
`exit_with_parent` first thing; it then exits within about `interval` seconds of its parent's death.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["exit_with_parent"]


def exit_with_parent(parent: int, interval: float = 0.25) -> threading.Thread:
    """Make this process exit as soon as the process `parent` that started it is gone.

    A daemon thread compares the parent pid with `parent` every `interval` seconds: a process whose parent dies is
    re-parented (to init or a sub-reaper), so its parent pid changes. The check is portable and, unlike Linux's
    `PR_SET_PDEATHSIG`, does not fire when merely the parent's thread that spawned the worker ends.

    Args:
        parent: the pid of the parent, as the parent saw itself (`os.getpid()` there, passed to the worker).
        interval: seconds between checks.

    Returns:
        The watching thread (a daemon: it never keeps the worker alive).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)  # no clean-up to run: the parent that would collect the results is gone

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
