"""GitHub Actions workflow commands: each finding becomes an annotation on the pull request."""

from __future__ import annotations

from collections.abc import Iterable

from gradlint.diagnostics import Diagnostic
from gradlint.report.edits import end_position
from gradlint.report.options import ReportOptions


def render(
    diagnostics: Iterable[Diagnostic], sources: dict[str, str], options: ReportOptions | None = None
) -> str:
    lines = []
    for d in diagnostics:
        properties: dict[str, object] = {"file": d.path}
        message = d.message
        if d.cell is None:
            end_line, end_col = end_position(d, sources)
            properties.update(line=d.line, col=d.col, endLine=end_line, endColumn=end_col)
        else:
            # lines in a cell are not lines of the notebook file: annotate the file, say where
            message = f"cell {d.cell}, line {d.line}: {message}"
        properties["title"] = f"gradlint ({d.code})"
        joined = ",".join(
            f"{key}={escape_property(str(value))}" for key, value in properties.items()
        )
        lines.append(f"::error {joined}::{escape_data(message)}\n")
    return "".join(lines)


def escape_data(text: str) -> str:
    """The message part: the runner would read a raw newline as the end of the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A `key=value` property: `:` ends the property list and `,` separates properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
