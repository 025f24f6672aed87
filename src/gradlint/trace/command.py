"""`gradlint trace script.py ARGS`: run a training script under the tracer, report what happened.

The findings print in the same formats as `gradlint check` (one `path:line:col: CODE message`
line each in the concise format). Exit code: 1 when there are findings, otherwise the script's
own exit code; 2 when torch is not installed.
"""

from __future__ import annotations

import linecache
import os
import sys
from collections.abc import Iterable

import click

from gradlint.diagnostics import Diagnostic
from gradlint.report import format_option, render
from gradlint.report.streams import write_out
from gradlint.trace.recorder import TraceFinding

EXIT_FINDINGS, EXIT_ERROR = 1, 2
# the distribution is torch-gradlint: `gradlint` on the package index is another project
INSTALL_HINT = "pip install 'torch-gradlint[trace]'"


def torch_problem() -> str | None:
    """Why torch cannot be used for a trace, or None when it can."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        return f"gradlint trace needs PyTorch, which is not installed ({e}); run: {INSTALL_HINT}"
    except Exception as e:  # a broken install (missing shared libraries and the like)
        return f"gradlint trace could not import PyTorch: {type(e).__name__}: {e}"
    return None


def to_diagnostics(findings: Iterable[TraceFinding], start: str | None = None) -> list[Diagnostic]:
    """One diagnostic per (path, line, code), with the path relative to ``start`` (by default
    the current directory)."""
    seen: dict[tuple[str, int, str], Diagnostic] = {}
    for f in findings:
        path = _relative(f.path, start or os.getcwd())
        key = (path, f.line, f.code)
        if key in seen:
            continue
        steps = f"{f.steps} step{'s' if f.steps != 1 else ''}"
        message = f"{f.message} (seen in {steps})"
        seen[key] = Diagnostic(f.code, path, f.line, _statement_column(f.path, f.line), message)
    return sorted(seen.values(), key=lambda d: d.sort_key)


def _statement_column(path: str, line: int) -> int:
    """Where the statement on `line` starts, as `gradlint check` reports it (1-based)."""
    try:
        text = linecache.getline(path, line)
    except (OSError, UnicodeDecodeError):
        return 1
    return len(text) - len(text.lstrip()) + 1 if text.strip() else 1


def _relative(path: str, start: str) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # another drive on Windows
        return path


def _sources(diagnostics: Iterable[Diagnostic], start: str) -> dict[str, str]:
    sources: dict[str, str] = {}
    for d in diagnostics:
        if d.path not in sources:
            try:
                with open(
                    os.path.join(start, d.path), encoding="utf-8", errors="replace"
                ) as handle:
                    sources[d.path] = handle.read()
            except OSError:
                sources[d.path] = ""
    return sources


@click.command(
    "trace",
    context_settings={
        "ignore_unknown_options": True,
        # everything after the script belongs to the script, options included
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    },
)
@format_option
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Stop the script after this many optimizer updates.",
)
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def trace(output_format: str, max_steps: int | None, script: str, args: tuple[str, ...]) -> None:
    """Run SCRIPT with ARGS (as `python SCRIPT ARGS`) and report the stale (GL001) and
    discarded (GL002) gradients that autograd saw.

    Exits 1 when there are findings, otherwise with the script's own exit code.
    """
    problem = torch_problem()
    if problem is not None:
        click.echo(problem, err=True)
        sys.exit(EXIT_ERROR)

    from gradlint.trace.runner import run_script

    cwd = os.getcwd()  # the script may change directory
    result = run_script(script, args, max_steps)
    diagnostics = to_diagnostics(result.findings, cwd)
    write_out(render(output_format, diagnostics, _sources(diagnostics, cwd)))
    if result.stopped:
        updates = "update" if max_steps == 1 else "updates"
        click.echo(f"gradlint trace: stopped the script after {max_steps} {updates}.", err=True)
    if result.traceback is not None:
        sys.stderr.flush()
        click.echo(result.traceback, err=True, nl=False)
    sys.exit(EXIT_FINDINGS if diagnostics else result.exit_code)
