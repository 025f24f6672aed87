"""Runs many training scripts in one process, so torch is imported once, not once per script.

Reads a JSON list of jobs (`{"path": ..., "trace": bool}`) on stdin and writes a JSON list of
results in the same order to the file named by its argument: the exit code, the traceback, what the script printed, and with
`trace` the GL001/GL002 findings of gradlint's tracer. Each script runs as `python script.py`
would, in a fresh empty working folder, with the same seeds, and is stopped after
`SECONDS_PER_SCRIPT`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import runpy
import signal
import sys
import tempfile
import traceback
from typing import Any

SECONDS_PER_SCRIPT = 60


class ScriptTimeout(BaseException):
    """Not an Exception, so neither the script nor the tracer's runner can swallow it."""


def _seed() -> None:
    import torch

    random.seed(0)
    torch.manual_seed(0)
    with contextlib.suppress(ImportError):
        import numpy

        numpy.random.seed(0)


def _run_plain(path: str) -> dict[str, Any]:
    saved_argv, saved_path, saved_modules = sys.argv[:], sys.path[:], set(sys.modules)
    sys.argv, exit_code, text = [path], 0, None
    script_dir = os.path.dirname(path)
    sys.path.insert(0, script_dir)
    try:
        _seed()
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception as error:
        exit_code, text = 1, _format(error, path)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name in set(sys.modules) - saved_modules:
            if os.path.dirname(getattr(sys.modules[name], "__file__", None) or "") == script_dir:
                del sys.modules[name]
    return {"exit_code": exit_code, "traceback": text, "findings": []}


def _format(error: Exception, path: str) -> str:
    """The traceback from the script's own frame on, without this runner's frames."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename != path:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames or error.__traceback__))


def _run_traced(path: str) -> dict[str, Any]:
    from gradlint.trace import run_script

    result = run_script(path, paths=[path])
    findings = sorted([f.code, f.line] for f in result.findings)
    return {"exit_code": result.exit_code, "traceback": result.traceback, "findings": findings}


def _alarm(signum: int, frame: object) -> None:
    raise ScriptTimeout


def run(job: dict[str, Any]) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(SECONDS_PER_SCRIPT)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                result = (_run_traced if job["trace"] else _run_plain)(job["path"])
        except ScriptTimeout:
            result = {"exit_code": None, "traceback": "timed out", "findings": []}
        finally:
            signal.alarm(0)
            os.chdir(home)
    return {**result, "stdout": out.getvalue()}


if __name__ == "__main__":
    results = [run(job) for job in json.load(sys.stdin)]
    with open(sys.argv[1], "w", encoding="utf-8") as file:
        json.dump(results, file)
