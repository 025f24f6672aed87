"""What machine-readable reporters need beyond a diagnostic: its end position and its fix as edits.

A Fix carries the whole fixed file; editors and code scanning want the few spans that change,
so both are derived here once, for the json and sarif reporters alike.
"""

from __future__ import annotations

import difflib
import io
import json

from gradlint.diagnostics import Diagnostic, Edit


def fix_edits(before: str, after: str) -> list[Edit]:
    """The line hunks that turn `before` into `after`, in file order.

    Each edit replaces whole lines: from column 0 of its first line to column 0 of the line
    after it, so an insertion is an empty span and applying the edits back to front is exact.
    """
    old, new = lines_of(before), lines_of(after)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    edits = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(
            Edit(
                start=_line_start(old, i1),
                end=_line_start(old, i2),
                content="".join(new[j1:j2]),
            )
        )
    return edits


def lines_of(text: str) -> list[str]:
    """Lines with their endings, split where Python counts lines (\\n, \\r\\n, \\r) only."""
    return io.StringIO(text, newline="").readlines()


def _line_start(lines: list[str], index: int) -> tuple[int, int]:
    """(1-based line, 0-based col) of the start of line `index`; past the end, the end of file."""
    if index < len(lines) or not lines or lines[-1].endswith(("\n", "\r")):
        return (index + 1, 0)
    # the last line has no newline: the end of file is the end of that line, not a new line
    return (len(lines), len(lines[-1]))


def end_position(diagnostic: Diagnostic, sources: dict[str, str]) -> tuple[int, int]:
    """(1-based line, 1-based exclusive column) where the reported span ends.

    gradlint reports a statement by its start, so the span runs to the end of the reported
    line (trailing whitespace left out); in a notebook, the line of the cell. Where the line
    cannot be looked up (an unreadable file) the span is empty and ends where it starts.
    """
    line = _source_line(diagnostic, sources)
    if line is None:
        return (diagnostic.line, diagnostic.col)
    return (diagnostic.line, max(diagnostic.col, len(line.rstrip()) + 1))


def _source_line(diagnostic: Diagnostic, sources: dict[str, str]) -> str | None:
    text = sources.get(diagnostic.path, "")
    if diagnostic.cell is not None:
        text = cell_source(text, diagnostic.cell)  # `line` counts in the cell
    lines = lines_of(text)
    if not 0 < diagnostic.line <= len(lines):
        return None
    return lines[diagnostic.line - 1].rstrip("\r\n")


def cell_source(notebook: str, cell: int) -> str:
    """The source of a notebook's cell (1-based among all cells), or "" if it has none."""
    if cell < 1:
        return ""
    try:
        source = json.loads(notebook)["cells"][cell - 1]["source"]
    except (ValueError, LookupError, TypeError):
        return ""
    if isinstance(source, list):
        source = "".join(line for line in source if isinstance(line, str))
    return source if isinstance(source, str) else ""


def source_line(diagnostic: Diagnostic, sources: dict[str, str]) -> str:
    """The text of the reported line, or "" where it cannot be looked up."""
    return _source_line(diagnostic, sources) or ""
