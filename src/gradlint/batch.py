"""Many files in, one result per file out, in the order given.

Each file is read once. A file in which no enabled rule's trigger occurs is done after a text
scan; the findings of a file linted before with the same bytes and settings come from the cache;
the rest are linted in worker processes, each under a time limit, so one pathological file
cannot hang the run and one crash cannot end it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.context import BaseContext

from gradlint import fixes
from gradlint.cache import Cache
from gradlint.config import Settings
from gradlint.engine import FileResult, input_problem, lint_source, triggered
from gradlint.source import UnreadableSource, decode, too_deeply_nested

MAX_BYTES = 10 * 1024 * 1024  # larger files are reported (GL902), not analysed
DEFAULT_TIMEOUT = 30.0


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


def lint_path(
    path: str, settings: Settings, fix: bool = False, with_fixes: bool = False, write: bool = True
) -> FileResult:
    """One file, in this process: `fix` computes fixes, written to the file unless not `write`."""
    options = Options(fix=fix, with_fixes=with_fixes, write=write)
    return lint_files([Task(path, settings)], options)[0]


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def lint_files(tasks: Sequence[Task], options: Options) -> list[FileResult]:
    results: list[FileResult | None] = [None] * len(tasks)
    pending: list[tuple[int, Task, bytes, str | None]] = []
    for index, task in enumerate(tasks):
        done, data = _without_analysis(task, options)
        if done is not None:
            results[index] = done
            continue
        key = None
        if options.cache is not None and not options.fix:
            mode = "with-fixes" if options.with_fixes else "findings"
            key = options.cache.key(task.path, data, task.settings, mode)
            cached = options.cache.get(key)
            if cached is not None:
                results[index] = _kept(FileResult(task.path, cached, _text(task.path, data)))
                continue
        pending.append((index, task, data, key))
    for (index, _task, _, key), result in zip(pending, _run(pending, options)):
        results[index] = _kept(result)
        if key is not None and options.cache is not None and _cacheable(result):
            options.cache.put(key, result.diagnostics)
    return [r for r in results if r is not None]


def _without_analysis(task: Task, options: Options) -> tuple[FileResult | None, bytes]:
    """The result of a file that needs no analysis (unreadable, too large, no trigger)."""
    path = task.path
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
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
    if not triggered(text, task.settings):
        return FileResult(path, []), data
    position = too_deeply_nested(text)
    if position is not None:
        message = "cannot parse: nesting too deep for the parser"
        return FileResult(path, [input_problem("GL900", path, *position, message)], text), data
    return None, data


def _run(
    pending: list[tuple[int, Task, bytes, str | None]], options: Options
) -> Iterator[FileResult]:
    work = [(task.path, data, task.settings, options) for _, task, data, _ in pending]
    if options.jobs <= 1 or len(work) <= 1:
        yield from (_lint_one(*item) for item in work)
        return
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    with ProcessPoolExecutor(min(options.jobs, len(work)), mp_context=context) as pool:
        futures: list[Future[FileResult]] = [pool.submit(_lint_one, *item) for item in work]
        for item, future in zip(work, futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                # a worker died (killed, out of memory, a crash in native code) and the pool's
                # unfinished files with it: lint each of those alone, so only the culprit is lost
                yield _alone(item, context)


def _alone(item: tuple[str, bytes, Settings, Options], context: BaseContext | None) -> FileResult:
    path = item[0]
    try:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            return pool.submit(_lint_one, *item).result()
    except BrokenProcessPool:
        message = (
            "internal error (the worker process linting this file died); please report this file"
        )
        return FileResult(path, [input_problem("GL999", path, 1, 1, message)], internal_error=True)


class _TimeLimit(BaseException):
    """Raised in the middle of the analysis when the file's time is up (a BaseException so
    that the engine's own `except Exception` does not turn it into an internal error)."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds or 0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _lint_one(path: str, data: bytes, settings: Settings, options: Options) -> FileResult:
    try:
        with _time_limit(options.timeout):
            result = lint_source(
                path, data, settings, fix=options.fix, with_fixes=options.with_fixes
            )
    except _TimeLimit:
        message = f"not analysed: took longer than the {options.timeout:g} s time limit (--timeout)"
        return FileResult(path, [input_problem("GL902", path, 1, 1, message)])
    if options.write and result.fixed_data is not None and result.fixed_text is not None:
        result.written = fixes.parses(result.fixed_text) and fixes.write_atomically(
            path, data, result.fixed_data
        )
        if not result.written:
            # the file changed since it was read, cannot be written or the fix went wrong:
            # report the file as it is
            unfixed = replace(options, fix=False, write=False)
            return _lint_one(path, data, settings, unfixed)
    return result


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
