"""Run a script like ``python script.py ARGS`` under :func:`watch` and collect its findings."""

from __future__ import annotations

import os
import random
import runpy
import sys
import traceback as tb_mod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gradlint.trace.recorder import PathLike, StopTrace, TraceFinding, watch


@dataclass(frozen=True)
class TraceResult:
    findings: list[TraceFinding]
    exit_code: int
    traceback: str | None  # formatted traceback of an exception that ended the script
    stopped: bool = False  # True when max_steps cut the run short


def run_script(
    path: PathLike,
    argv: Sequence[str] = (),
    max_steps: int | None = None,
    *,
    paths: Iterable[PathLike] | None = None,
    seed: int | None = 0,
) -> TraceResult:
    """Run ``path`` as ``__main__`` with ``sys.argv = [path, *argv]`` and its directory first on
    ``sys.path``; restore both afterwards. ``seed`` seeds ``random`` and torch first so runs
    are reproducible (None leaves the generators alone)."""
    script = os.path.abspath(os.fspath(path))
    script_dir = os.path.dirname(script)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_modules = set(sys.modules)
    exit_code, text, stopped = 0, None, False
    sys.argv = [script, *map(str, argv)]
    sys.path.insert(0, script_dir)
    rec = watch(paths, max_steps=max_steps)
    try:
        with rec:
            if seed is not None:
                _seed(seed)
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as e:
                exit_code = _exit_code(e.code)
            except StopTrace:
                stopped = True
            except Exception as e:
                exit_code = 1
                text = _format(e, script)
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        # Sibling modules the script imported must not leak into the next script's run.
        for name in sorted(set(sys.modules) - saved_modules):
            if _imported_from(sys.modules[name], name, script_dir):
                del sys.modules[name]
    return TraceResult(rec.findings, exit_code, text, stopped)


def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(seed)


def _imported_from(module: object, name: str, root: str) -> bool:
    """Whether ``module`` was found as ``name`` under the sys.path entry ``root``."""
    file = getattr(module, "__file__", None)
    if not file:
        return False
    rel = os.path.relpath(os.path.abspath(file), root)
    if rel.startswith(os.pardir):
        return False
    stem = os.path.splitext(rel)[0]
    if os.path.basename(stem) == "__init__":
        stem = os.path.dirname(stem)
    return stem.replace(os.sep, ".") == name


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return 1


def _format(exc: BaseException, script: str) -> str:
    """The traceback from the script's first frame on (the runner's and runpy's are noise)."""
    tb = exc.__traceback__
    cur = tb
    while cur is not None and os.path.abspath(cur.tb_frame.f_code.co_filename) != script:
        cur = cur.tb_next
    return "".join(tb_mod.format_exception(type(exc), exc, cur if cur is not None else tb))
