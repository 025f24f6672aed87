"""What one file's analysis may cost: stack, time and size.

libcst's native parser and gradlint's analysis recurse once per level of nesting. On the
interpreter's own stack (8 MB) a few thousand levels overflow it, which is a segmentation fault,
not an exception. So each analysis runs on a thread of its own with a large stack (reserved, not
used until needed), under a recursion limit that stops Python well before that stack runs out,
and under a time limit.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
ANALYSIS_THREAD = "gradlint-analysis"

STACK_BYTES = 512 * 1024 * 1024
# Python frames are small next to STACK_BYTES; the limit keeps deep recursion a RecursionError
RECURSION_LIMIT = 10_000
# after its time is up, the analysis gets this long to notice before it is given up on
GRACE_SECONDS = 1.0
# `--timeout` above this (11 days) means no limit: poll() and threads cannot wait much longer
MAX_TIMEOUT = 1e6


class TimeLimit(BaseException):
    """Raised inside the analysis when its time is up (a BaseException so that the engine's own
    `except Exception` does not turn it into an internal error)."""


class Expired(Exception):
    """The analysis took longer than its time limit. `abandoned`: its thread did not stop (stuck
    in native code) and still runs; a worker process should end rather than go on."""

    def __init__(self, abandoned: bool):
        super().__init__("time limit")
        self.abandoned = abandoned


class Cancelled(Exception):
    """The analysis was cancelled before it ended: nobody wants its result any more."""


class Cancel:
    """Called from any thread, ends the `run_bounded` analysis it was given to: the analysis is
    interrupted as at its time limit and `run_bounded` raises Cancelled at once (an editor's
    newer text makes the running lint of the older one useless)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: tuple[threading.Thread, threading.Event] | None = None
        self.requested = False

    def __call__(self) -> None:
        with self._lock:
            self.requested = True
            if self._running is not None:
                _stop(*self._running)

    def _attach(self, thread: threading.Thread, finished: threading.Event) -> None:
        with self._lock:
            self._running = (thread, finished)
            if self.requested:
                _stop(thread, finished)


def _stop(thread: threading.Thread, finished: threading.Event) -> None:
    if not finished.is_set():
        _interrupt(thread)
        finished.set()  # wakes run_bounded, which sees the request


def run_bounded(
    function: Callable[[], T], timeout: float | None, cancel: Cancel | None = None
) -> T:
    """`function()` on a thread with a large stack; raises Expired after `timeout` seconds, and
    Cancelled as soon as `cancel` is called."""
    outcome: list[tuple[bool, object]] = []
    finished = threading.Event()

    def target() -> None:
        try:
            outcome.append((True, function()))
        except BaseException as error:  # handed to the caller's thread
            outcome.append((False, error))
        finally:
            finished.set()

    if cancel is not None and cancel.requested:
        raise Cancelled
    if sys.getrecursionlimit() < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
    thread = _start(target)
    if cancel is not None:
        cancel._attach(thread, finished)
    if not finished.wait(timeout if timeout is None else min(timeout, MAX_TIMEOUT)):
        _interrupt(thread)
        thread.join(GRACE_SECONDS)
        raise Expired(abandoned=thread.is_alive())
    if cancel is not None and cancel.requested:
        raise Cancelled
    thread.join()  # it is past its function: no analysis thread outlives a finished analysis
    done, value = outcome[0]
    if not done:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def _start(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=ANALYSIS_THREAD, daemon=True)
    try:
        previous = threading.stack_size(STACK_BYTES)
    except (ValueError, RuntimeError):  # a platform without settable stacks
        thread.start()
        return thread
    try:
        thread.start()
    except RuntimeError:  # no room for the stack: the default one, with its lower limit
        threading.stack_size(previous)
        thread = threading.Thread(target=target, name=ANALYSIS_THREAD, daemon=True)
        sys.setrecursionlimit(1000)
        thread.start()
    finally:
        threading.stack_size(previous)
    return thread


def _interrupt(thread: threading.Thread) -> None:
    """Raise TimeLimit in `thread` at its next Python instruction."""
    set_async_exc = getattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc", None)
    if set_async_exc is not None and thread.ident is not None:
        set_async_exc(ctypes.c_ulong(thread.ident), ctypes.py_object(TimeLimit))


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def read_regular(path: str, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a regular file. Anything else (a FIFO, a device, a socket)
    raises OSError without being read: a FIFO would block and /dev/zero never ends."""
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _NOCTTY)
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise OSError(f"{kind}, not a regular file")
        return handle.read(limit + 1)
