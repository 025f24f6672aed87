"""pylint's `parseable` lines, `path:line: [CODE(rule-name), ] message`, for tools built on pylint."""

from __future__ import annotations

from collections.abc import Iterable

from gradlint.diagnostics import Diagnostic
from gradlint.report.options import ReportOptions
from gradlint.rules.catalogue import CATALOGUE


def render(
    diagnostics: Iterable[Diagnostic], sources: dict[str, str], options: ReportOptions | None = None
) -> str:
    lines = []
    for d in diagnostics:
        rule = CATALOGUE.get(d.code)
        symbol = rule.name if rule is not None else d.code
        line, message = d.line, d.message
        if d.cell is not None:
            # lines in a cell are not lines of the notebook file: point at the file, say where
            line, message = 1, f"cell {d.cell}, line {d.line}: {message}"
        # `{obj}` (the enclosing function or class in pylint) stays empty, as pylint leaves it
        # for module-level messages
        lines.append(f"{d.path}:{line}: [{d.code}({symbol}), ] {message}\n")
    return "".join(lines)
