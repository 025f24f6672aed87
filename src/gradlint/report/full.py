"""Each finding with a code frame, the path of events that proves it, and its fix as a diff."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from gradlint.diagnostics import Diagnostic
from gradlint.report.edits import cell_source
from gradlint.report.options import ReportOptions
from gradlint.source import lines_with_endings


def render(
    diagnostics: Iterable[Diagnostic], sources: dict[str, str], options: ReportOptions | None = None
) -> str:
    parts = []
    for d in diagnostics:
        lines = [f"{d.location}: {d.code} {d.message}"]
        text = sources.get(d.path, "")
        # in a notebook, `line` counts in the cell: frame the cell's source
        lines.extend(_frame(cell_source(text, d.cell) if d.cell else text, d.line, d.col))
        if d.trail:
            lines.append("  path: " + " → ".join(d.trail))
        if d.fix is not None:
            lines.append(f"  fix ({d.fix.applicability}): {d.fix.description}")
            lines.extend(
                "    " + line for line in diff(d.path, text, d.fix.fixed_source).splitlines()
            )
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _frame(text: str, line: int, col: int) -> list[str]:
    # lines as Python counts them: str.splitlines also breaks at form feeds and U+2028
    source_lines = [line.rstrip("\r\n") for line in lines_with_endings(text)]
    if not 0 < line <= len(source_lines):
        return []
    out = []
    width = len(str(min(line + 1, len(source_lines))))
    for number in range(max(1, line - 2), min(len(source_lines), line + 1) + 1):
        marker = ">" if number == line else " "
        out.append(f"  {marker} {number:>{width}} | {source_lines[number - 1]}")
        if number == line:
            out.append(f"    {' ' * width} | {' ' * (col - 1)}^")
    return out


def diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        lines_with_endings(before),
        lines_with_endings(after),
        fromfile=f"a/{path.lstrip('/')}",
        tofile=f"b/{path.lstrip('/')}",
    )
    # as `diff -u` does, say so where a file does not end with a newline
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
