"""Many files in, one result per file out, in the order given.

Each file is read once. A file in which no enabled rule's trigger occurs is done after a text
scan; the findings of a file linted before with the same bytes and settings come from the cache;
the rest are linted in worker processes, each under a time limit, so one pathological file
cannot hang the run and one crash cannot end it.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from gradlint.cache import Cache
from gradlint.config import Settings
from gradlint.diagnostics import FileResult, input_problem
from gradlint.limits import ANALYSIS_THREAD, Expired, read_regular, run_bounded
from gradlint.source import UnreadableSource, decode
from gradlint.triggers import triggered

MAX_BYTES = 10 * 1024 * 1024  # larger files are reported (GL902), not analysed
DEFAULT_TIMEOUT = 30.0
# a file without any rule's trigger word (`backward(`, ...) is read but never parsed
WITHOUT_TRAINING_CODE = "without training code"


@dataclass(frozen=True)
class Task:
    path: str
    settings: Settings


@dataclass(frozen=True)
class Options:
    fix: bool = False  # compute fixes
    with_fixes: bool = False  # attach each finding's fix (for full, json and sarif output)
    write: bool = True  # write computed fixes to the files
    jobs: int = 1  # worker processes; 1 lints in this process
    timeout: float | None = DEFAULT_TIMEOUT  # seconds per file; None for no limit
    cache: Cache | None = None


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# more workers than this many per core only add memory and start-up time
MAX_JOBS_PER_CORE = 4


def max_jobs() -> int:
    return MAX_JOBS_PER_CORE * default_jobs()


def lint_files(
    tasks: Sequence[Task], options: Options, done: Callable[[], None] | None = None
) -> list[FileResult]:
    """One result per task, in order; `done()` is called as each file is finished (for a
    progress indicator).

    The files are read largest first, and each that needs analysis goes to a worker as soon as
    it is read: the workers start on the largest files while the rest are still being read (a
    large file started last would leave the other workers idle while it alone runs)."""
    done = done or _nothing
    results: list[FileResult | None] = [None] * len(tasks)
    waiting: dict[int, tuple[bytes, str | None]] = {}  # index -> the bytes analysed, cache key

    def finished(index: int, result: FileResult) -> None:
        data, key = waiting.pop(index)
        task = tasks[index]
        result = _written(result, data, task.settings, options)
        results[index] = _kept(result)
        if key is not None and options.cache is not None and _cacheable(result):
            options.cache.put(key, result.diagnostics)
        done()

    with _Analyses(options, finished) as analyses:
        for index in sorted(range(len(tasks)), key=lambda i: _size(tasks[i].path), reverse=True):
            task = tasks[index]
            result, data = _without_analysis(task, options)
            key = None
            if result is None and options.cache is not None and not options.fix:
                mode = "with-fixes" if options.with_fixes else "findings"
                key = options.cache.key(task.path, data, task.settings, mode)
                cached = options.cache.get(key, task.path)
                if cached is not None:
                    result = _kept(FileResult(task.path, cached, _text(task.path, data)))
            if result is not None:
                results[index] = result
                done()
                analyses.poll()
                continue
            waiting[index] = (data, key)
            analyses.submit(index, (task.path, data, task.settings, options))
        analyses.wait()
    return [r for r in results if r is not None]


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # reported when it is read
        return 0


def _without_analysis(task: Task, options: Options) -> tuple[FileResult | None, bytes]:
    """The result of a file that needs no analysis (unreadable, too large, no trigger)."""
    path = task.path
    try:
        data = read_regular(path, MAX_BYTES)
    except OSError as error:
        reason = error.strerror or str(error)
        return FileResult(
            path, [input_problem("GL901", path, 1, 1, f"cannot read file: {reason}")]
        ), b""
    if len(data) > MAX_BYTES:
        message = f"not analysed: larger than the {MAX_BYTES // (1024 * 1024)} MB gradlint analyses"
        return FileResult(path, [input_problem("GL902", path, 1, 1, message)]), data
    if path.endswith(".ipynb"):
        return None, data  # the notebook reader reports broken JSON; the engine skips the rest
    try:
        text = decode(path, data).text
    except UnreadableSource as error:
        problem = input_problem("GL901", path, error.line, error.col, str(error))
        return FileResult(path, [problem]), data
    if not triggered(text, task.settings.codes):
        return FileResult(path, [], skipped=WITHOUT_TRAINING_CODE), data
    return None, data


def _nothing() -> None:
    pass


def lint_data(path: str, data: bytes, settings: Settings, options: Options) -> FileResult:
    """One source that is not a file (standard input), under the same limits as files."""
    found: list[FileResult] = []
    with _Analyses(options, lambda _, result: found.append(result)) as analyses:
        analyses.submit(0, (path, data, settings, options))
        analyses.wait()
    return found[0]


Work = tuple[str, bytes, Settings, Options]
# after the time limit, a worker gets this long to report GL902 itself before it is killed
# (the limit is checked between Python instructions: libcst's native parser cannot see it)
GRACE_SECONDS = 5.0
# how long a worker asked to stop gets to end by itself
STOP_SECONDS = 0.5


class _Analyses:
    """The files submitted, each analysed in a worker process as soon as one is free (in this
    process with one job and no time limit); `finished(index, result)` is called for each,
    here, in the order they end. Workers start with the first file that needs one: a run
    whose files are all cached or free of training code never loads libcst and the analysis.

    A worker lints one file at a time, so that a file whose worker dies or hangs costs only
    that file: a worker past its time limit is killed and replaced. Used as a context: its
    workers end with it, however it is left (Ctrl-C included)."""

    def __init__(self, options: Options, finished: Callable[[int, FileResult], None]):
        self.finished = finished
        self.in_process = options.jobs <= 1 and options.timeout is None
        self.count = max(1, options.jobs)
        self.deadline = None if options.timeout is None else options.timeout + GRACE_SECONDS
        self.todo: deque[tuple[int, Work]] = deque()
        self.idle: list[_Worker] = []
        self.busy: dict[Connection, tuple[_Worker, int, Work, float]] = {}
        self.context: Any = None

    def submit(self, index: int, work: Work) -> None:
        if self.in_process:
            self.finished(index, _lint_one(*work))
            return
        self.todo.append((index, work))
        self.poll()

    def poll(self) -> None:
        """Hand out work and take the results that are in, without waiting (called between
        the files read, so no worker idles while files without training code are read)."""
        if self.todo or self.busy:
            self._collect(block=False)

    def wait(self) -> None:
        """Until every file submitted is finished."""
        while self.todo or self.busy:
            self._collect(block=True)

    def __enter__(self) -> _Analyses:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker at once: a busy one is killed (its result is not wanted any
        more), an idle one asked to end, all of them within one grace period."""
        busy = [w for w, _, _, _ in self.busy.values()]
        for worker in busy:
            worker.kill()
        for worker in self.idle:
            worker.ask_to_stop()
        ending = time.monotonic() + STOP_SECONDS
        for worker in busy + self.idle:
            worker.reap(max(0.0, ending - time.monotonic()))
        self.idle, self.busy = [], {}

    def _collect(self, block: bool) -> None:
        """Start what can start, then take the results that are in (with `block`, waiting for
        at least one, or for the first time limit to pass). Results are taken before any
        time limit is judged, and handled after: writing a fix may take long, and a worker
        that answered meanwhile is not past its limit."""
        taken: list[tuple[int, FileResult]] = []
        while self.todo and len(self.busy) < self.count:
            index, work = self.todo.popleft()
            worker = self._handed(work)
            if worker is None:
                taken.append((index, _died(work[0])))
            else:
                self.busy[worker.conn] = (worker, index, work, time.monotonic())
        ready_ones = (
            wait(list(self.busy), timeout=self._wait_time() if block else 0) if self.busy else []
        )
        for ready in ready_ones:
            conn = cast(Connection, ready)
            worker, index, work, _ = self.busy.pop(conn)
            try:
                result, retiring = conn.recv()
                if retiring:  # its analysis thread is stuck in native code
                    worker.stop()
                else:
                    self.idle.append(worker)
            except (EOFError, OSError):
                worker.stop()
                result = _died(work[0])
            taken.append((index, result))
        for conn, (worker, index, work, started) in list(self.busy.items()):
            late = self.deadline is not None and time.monotonic() - started > self.deadline
            if late and not conn.poll():
                del self.busy[conn]
                worker.stop()
                taken.append((index, _timed_out(work[0], work[3].timeout)))
        for index, result in taken:
            self.finished(index, result)

    def _handed(self, work: Work) -> _Worker | None:
        """A worker that took `work`: an idle one, or a new one when the idle ones are gone (a
        worker can die while it waits, killed for memory); None if a new one died too."""
        while True:
            new = not self.idle
            worker = self._new_worker() if new else self.idle.pop()
            try:
                worker.conn.send(work)
                return worker
            except OSError:
                worker.stop()
                if new:
                    return None

    def _new_worker(self) -> _Worker:
        if self.context is None:
            # imported before the first worker is forked, so that workers start with it
            import gradlint.engine  # noqa: F401

            self.context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
        others = [w.conn for w in self.idle] + [w.conn for w, _, _, _ in self.busy.values()]
        return _Worker(self.context, others)

    def _wait_time(self) -> float | None:
        if self.deadline is None:
            return None
        first = min(started for _, _, _, started in self.busy.values())
        return max(0.0, first + self.deadline - time.monotonic()) + 0.01


class _Worker:
    def __init__(self, context: Any, others: list[Connection]):  # a multiprocessing context
        self.conn, child = context.Pipe()
        # a forked worker inherits the other workers' pipe ends: it closes them, or a worker
        # would never see its pipe close when the main process dies
        inherited = [c.fileno() for c in others]
        self.process = context.Process(
            target=_serve, args=(child, os.getpid(), inherited), daemon=True
        )
        self.process.start()
        child.close()

    def stop(self) -> None:
        self.ask_to_stop()
        self.reap(STOP_SECONDS)

    def ask_to_stop(self) -> None:
        with suppress(OSError, ValueError):
            self.conn.send(None)

    def kill(self) -> None:
        with suppress(OSError):
            self.process.kill()

    def reap(self, grace: float) -> None:
        """Wait up to `grace` seconds for the process to end, then kill it."""
        self.process.join(timeout=grace)
        if self.process.is_alive():
            self.kill()
            self.process.join()
        self.conn.close()


def _serve(conn: Connection, parent: int, inherited: list[int]) -> None:
    """A worker's life: lint what arrives until told to stop. Ctrl-C is the main process's to
    handle: it stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent, inherited)
    _collect_rarely()
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        result = _lint_one(*item)
        # an analysis stopped at its time limit whose thread still runs (stuck in native
        # code): answer, then end the process, which the main process replaces
        retiring = any(t.name == ANALYSIS_THREAD for t in threading.enumerate())
        conn.send((result, retiring))
        if retiring:
            os._exit(0)


# an analysis makes many short-lived objects and few reference cycles: a worker collects
# rarely and never scans what it inherited (a tenth less time, the same peak memory)
COLLECTION_THRESHOLDS = (100_000, 50, 100)


def _collect_rarely() -> None:
    gc.freeze()
    gc.set_threshold(*COLLECTION_THRESHOLDS)


def _die_with(parent: int, inherited: list[int]) -> None:
    """End this worker when the main process ends, however it ends (killed, cancelled CI):
    nothing inherited keeps a pipe open (`gradlint check . | cat` must see its end)."""
    for fd in inherited:
        with suppress(OSError):
            os.close(fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # workers report through their pipe only
        with suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)
    if sys.platform == "linux":
        with suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:  # elsewhere, and if the parent died before prctl
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="gradlint-parent-watch", daemon=True).start()


def _died(path: str) -> FileResult:
    # killed, out of memory, a crash in native code: say which file was not analysed
    message = "internal error (the worker process linting this file died); please report this file"
    return FileResult(path, [input_problem("GL999", path, 1, 1, message)], internal_error=True)


def _timed_out(path: str, timeout: float | None) -> FileResult:
    message = f"not analysed: took longer than the {timeout or 0:g} s time limit (--timeout)"
    return FileResult(path, [input_problem("GL902", path, 1, 1, message)])


def _lint_one(path: str, data: bytes, settings: Settings, options: Options) -> FileResult:
    """What gradlint says about one file's bytes; writes nothing (workers never touch files)."""
    from gradlint.engine import lint_source

    try:
        return run_bounded(
            lambda: lint_source(
                path, data, settings, fix=options.fix, with_fixes=options.with_fixes
            ),
            options.timeout,
        )
    except Expired:
        return _timed_out(path, options.timeout)


def _written(result: FileResult, data: bytes, settings: Settings, options: Options) -> FileResult:
    """Write the file's fixes (here, in the main process, so that Ctrl-C or a killed worker
    can never leave a file half written)."""
    if not options.write or result.fixed_data is None or result.fixed_text is None:
        return result
    from gradlint import fixes

    # a fix that does not parse or compile is dropped (its finding is still reported); a write
    # that fails says why
    if fixes.parses(result.fixed_text, result.text, result.path):
        result.not_written = fixes.write_in_place(result.path, data, result.fixed_data)
        result.written = result.not_written is None
        if result.written:
            return result
    # report the file as it is
    unfixed = _lint_one(result.path, data, settings, replace(options, fix=False, write=False))
    unfixed.not_written = result.not_written
    return unfixed


def _cacheable(result: FileResult) -> bool:
    return not result.internal_error and not any(d.code == "GL902" for d in result.diagnostics)


def _kept(result: FileResult) -> FileResult:
    """Drop the source text of files with nothing to show, so memory does not grow with the
    number of files linted."""
    if not result.diagnostics and result.fixed_text is None:
        result.text = ""
    return result


def _text(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8") if path.endswith(".ipynb") else decode(path, data).text
    except (UnreadableSource, UnicodeDecodeError):
        return ""
