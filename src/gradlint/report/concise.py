"""flake8-style lines, `path:line:col: CODE message`, that every editor can parse; `[*]` marks a
finding that `--fix` fixes, as ruff marks it."""

from __future__ import annotations

from collections.abc import Iterable

from gradlint.diagnostics import Diagnostic
from gradlint.report.options import ReportOptions


def render(
    diagnostics: Iterable[Diagnostic], sources: dict[str, str], options: ReportOptions | None = None
) -> str:
    options = options or ReportOptions()
    return "".join(f"{d.location}: {d.code} {_mark(d, options)}{d.message}\n" for d in diagnostics)


def _mark(d: Diagnostic, options: ReportOptions) -> str:
    return "[*] " if d.fix is not None and options.applies(d.fix.applicability) else ""
