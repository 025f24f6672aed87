"""A JSON array of findings with positions, the path of events and fixes as edits, for tools.

The schema is documented in the README ("Output formats"); change it only by adding fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gradlint.diagnostics import Diagnostic, Edit
from gradlint.report.edits import end_position, fix_edits
from gradlint.report.options import ReportOptions
from gradlint.rules.catalogue import CATALOGUE


def render(
    diagnostics: Iterable[Diagnostic], sources: dict[str, str], options: ReportOptions | None = None
) -> str:
    options = options or ReportOptions()
    findings = [_finding(d, sources, options) for d in diagnostics]
    return json.dumps(findings, indent=2, ensure_ascii=False) + "\n"


def _finding(d: Diagnostic, sources: dict[str, str], options: ReportOptions) -> dict[str, Any]:
    end_row, end_column = end_position(d, sources)
    return {
        "code": d.code,
        "message": d.message,
        "path": d.path,
        "location": {"row": d.line, "column": d.col},
        "end_location": {"row": end_row, "column": end_column},
        "cell": d.cell,
        "trail": list(d.trail),
        "url": options.rule_url(d.code) if d.code in CATALOGUE else None,  # the rule's page
        "fix": _fix(d, sources),
    }


def _fix(d: Diagnostic, sources: dict[str, str]) -> dict[str, Any] | None:
    if d.fix is None:
        return None
    # positions in the file as stored: for a notebook, its JSON text, not the cell
    edits = fix_edits(sources.get(d.path, ""), d.fix.fixed_source)
    return {
        "applicability": d.fix.applicability,
        "message": d.fix.description,
        "edits": [_edit(e) for e in edits],
    }


def _edit(edit: Edit) -> dict[str, Any]:
    (row, col), (end_row, end_col) = edit.start, edit.end
    return {
        "content": edit.content,
        "location": {"row": row, "column": col + 1},
        "end_location": {"row": end_row, "column": end_col + 1},
    }
