"""Worker processes that never outlive the process that started them, and leave nothing behind when killed.

A pool's workers block on a queue whose write end they hold themselves, so a parent killed with SIGKILL (which
runs no clean-up) leaves them running for ever, each holding dlib's models and a clip's frames. A worker calls
`exit_with_parent` first thing; it then exits within about `interval` seconds of its parent's death.

`WorkerPool` is the pool of `pamer prepare` and of `pamer loso --executor process`. It talks to each worker over
its own pipe and uses no multiprocessing queue, lock or semaphore: the queues of `concurrent.futures` and
`multiprocessing.Pool` are built on POSIX named semaphores (five per pool: the call queue's two locks and its bound,
the result queue's two locks), which spawn-started workers open by name, so they stay in `/dev/shm` until the
parent (or its resource tracker) unlinks them; a SIGKILL of the whole process group, tracker included, left five
`sem.mp-*` files there per kill. A pipe is a file descriptor: the system closes it with its process, however that
ends.

Ctrl-C in a terminal interrupts the whole process group: the parent alone answers it (it stops the pool). A worker
ignores it from its first line, and only then loads its initializer and its arguments (pamer's engine, torch: seconds),
so that neither a worker starting nor one working prints a traceback of its own.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any

from pamer.errors import PamerError

__all__ = ["WorkerError", "WorkerPool", "exit_with_parent"]


class WorkerError(PamerError):
    """A worker process that ended without answering (killed, out of memory, crashed)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its `__cause__` in the parent."""

    def __str__(self) -> str:
        return f"\n\n{self.args[0]}"


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


def _serve(conn: Connection, parent: int, setup: bytes) -> None:
    """A worker: ignore Ctrl-C (the parent stops the pool), exit with the parent, run the initializer pickled in
    `setup` with its arguments, then answer tasks `(fn, args)` until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)
    failed = None
    try:
        initializer, initargs = pickle.loads(setup)
        initializer(*initargs)
    except Exception as error:  # every task then answers with it, so the parent raises it by name
        failed = (error, traceback.format_exc())
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        fn, args = task
        if failed is not None:
            conn.send(("error", *failed))
            continue
        try:
            answer = ("ok", fn(*args), "")
        except Exception as error:
            answer = ("error", error, traceback.format_exc())
        try:
            conn.send(answer)
        except Exception:  # the result or the exception does not pickle: its text still does
            conn.send(("error", RuntimeError(f"a worker's answer could not be sent back: {answer[1]!r}"), answer[2]))


class WorkerPool:
    """`workers` spawned processes (spawn: a forked torch or OpenMP with live threads can deadlock), each
    initialised by `initializer(*initargs)`, running tasks sent over its own pipe.

    Use as a context manager: leaving it stops idle workers and terminates busy ones (an error or a closed
    generator does not wait for the other tasks to finish).
    """

    def __init__(self, workers: int, initializer: Callable[..., None], initargs: tuple = ()) -> None:
        self.workers = max(1, workers)
        self.initializer = initializer
        self.initargs = initargs
        self.processes: list[Any] = []
        self.conns: list[Connection] = []

    def __enter__(self) -> WorkerPool:
        context = multiprocessing.get_context("spawn")
        # pickled here, loaded by `_serve`: the modules they import load after the worker ignores Ctrl-C
        setup = bytes(ForkingPickler.dumps((self.initializer, self.initargs)))
        for _ in range(self.workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, os.getpid(), setup), daemon=True)
            process.start()
            theirs.close()  # the worker holds the only other end: its death reads as end-of-file here
            self.processes.append(process)
            self.conns.append(mine)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """`fn(*args)` for each `args` of `tasks` on the workers; yields the results as they end, in any order.

        Raises:
            Exception: the first exception a task raised (the worker's traceback as its `__cause__`).
            WorkerError: a worker ended without answering (killed, out of memory, crashed).
            After either, other workers may still be busy: the pool is then only good for closing.
        """
        todo = list(tasks)[::-1]
        idle = list(self.conns)
        busy: set[Connection] = set()
        while todo or busy:
            while todo and idle:
                conn = idle.pop()
                conn.send((fn, todo.pop()))
                busy.add(conn)
            for conn in wait(list(busy)):
                try:
                    status, value, text = conn.recv()
                except (EOFError, OSError):
                    process = self.processes[self.conns.index(conn)]
                    process.join(5)
                    raise WorkerError(
                        f"worker process {process.pid} ended without a result (exit code {process.exitcode}; "
                        "a negative code is the signal that ended it, e.g. -9: killed, often for lack of memory)"
                    ) from None
                busy.discard(conn)
                idle.append(conn)
                if status == "error":
                    raise value from RemoteTraceback(text)
                yield value

    def close(self) -> None:
        """Stop the workers: idle ones are told to, any still working is terminated; all are joined."""
        for conn in self.conns:
            with suppress(OSError):  # that worker is gone already
                conn.send(None)
        deadline = time.monotonic() + 1
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():  # busy with a task nobody waits for any more
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self.conns:
            conn.close()
        self.processes, self.conns = [], []
