"""SARIF 2.1.0, the format GitHub code scanning and other result viewers read.

Paths are given relative to the working directory (`%SRCROOT%`, the repository root in CI).
Each result carries a fingerprint that does not contain its line number, so an alert keeps its
identity when lines are added above it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from gradlint import REPOSITORY, __version__
from gradlint.diagnostics import Diagnostic
from gradlint.report.edits import end_position, fix_edits, source_line
from gradlint.report.options import ReportOptions
from gradlint.rules.base import Rule
from gradlint.rules.registry import RULES

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI = REPOSITORY
FINGERPRINT_KEY = "gradlint/v1"  # GitHub computes its own `primaryLocationLineHash` beside it


def render(
    diagnostics: Iterable[Diagnostic], sources: dict[str, str], options: ReportOptions | None = None
) -> str:
    options = options or ReportOptions()
    rules = list(RULES.values())
    index = {rule.code: i for i, rule in enumerate(rules)}
    seen: Counter[tuple[str, str, str]] = Counter()
    results = []
    for d in diagnostics:
        key = (d.code, artifact_location(d.path)["uri"], _line_key(d, sources))
        results.append(_result(d, sources, index, fingerprint(*key, seen[key])))
        seen[key] += 1
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gradlint",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(rule, options) for rule in rules],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def level(code: str) -> str:
    """Input problems (GL9xx) mean a file went unchecked; the other rules find real bugs."""
    return "warning" if code.startswith("GL9") else "error"


def fingerprint(code: str, uri: str, line_text: str, occurrence: int) -> str:
    """Stable across edits elsewhere in the file: the rule, the file, what the line says, and
    which of the identical lines it is; not where the line is."""
    data = "\0".join((code, uri, line_text, str(occurrence)))
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _line_key(d: Diagnostic, sources: dict[str, str]) -> str:
    text = source_line(d, sources).strip()
    return f"cell {d.cell}: {text}" if d.cell is not None else text


def _rule(rule: Rule, options: ReportOptions) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": f"{rule.summary}."},
        "fullDescription": {"text": _section(rule.docs, "What it does") or f"{rule.summary}."},
        "help": {"text": rule.docs, "markdown": rule.docs},
        "helpUri": options.rule_url(rule.code),
        "defaultConfiguration": {"level": level(rule.code)},
        "properties": {"fixable": rule.fixable},
    }


def _section(docs: str, title: str) -> str:
    """The body of one `## title` section of a rule's docs."""
    for section in ("\n" + docs).split("\n## ")[1:]:
        heading, _, body = section.partition("\n")
        if heading.strip() == title:
            return body.strip()
    return ""


def _result(
    d: Diagnostic, sources: dict[str, str], index: dict[str, int], fingerprint_value: str
) -> dict[str, Any]:
    artifact = artifact_location(d.path)
    result: dict[str, Any] = {"ruleId": d.code}
    if d.code in index:
        result["ruleIndex"] = index[d.code]
    result["level"] = level(d.code)
    physical: dict[str, Any] = {"artifactLocation": artifact}
    message = d.message
    if d.cell is None:
        end_line, end_col = end_position(d, sources)
        physical["region"] = {
            "startLine": d.line,
            "startColumn": d.col,
            "endLine": end_line,
            "endColumn": end_col,
        }
    else:
        # lines of a cell are not lines of the notebook file: the result is on the file, and
        # the message says where
        message = f"cell {d.cell}, line {d.line}: {message}"
    result["message"] = {"text": message}
    result["locations"] = [{"physicalLocation": physical}]
    result["partialFingerprints"] = {FINGERPRINT_KEY: fingerprint_value}
    fixes = _fixes(d, sources, artifact)
    if fixes:
        result["fixes"] = fixes
    properties: dict[str, Any] = {}
    if d.trail:
        properties["trail"] = list(d.trail)
    if d.cell is not None:
        properties.update(cell=d.cell, line=d.line, column=d.col)
    if properties:
        result["properties"] = properties
    return result


def _fixes(d: Diagnostic, sources: dict[str, str], artifact: dict[str, str]) -> list[Any]:
    if d.fix is None:
        return []
    # replacements count in the file as stored: for a notebook, its JSON text, not the cell
    edits = fix_edits(sources.get(d.path, ""), d.fix.fixed_source)
    if not edits:
        return []
    replacements = []
    for edit in edits:
        (line, col), (end_line, end_col) = edit.start, edit.end
        replacement: dict[str, Any] = {
            "deletedRegion": {
                "startLine": line,
                "startColumn": col + 1,
                "endLine": end_line,
                "endColumn": end_col + 1,
            }
        }
        if edit.content:
            replacement["insertedContent"] = {"text": edit.content}
        replacements.append(replacement)
    return [
        {
            "description": {"text": f"{d.fix.description} ({d.fix.applicability} fix)"},
            "artifactChanges": [{"artifactLocation": artifact, "replacements": replacements}],
            "properties": {"applicability": d.fix.applicability},
        }
    ]


def artifact_location(path: str) -> dict[str, str]:
    """A relative URI under `%SRCROOT%` (the working directory), POSIX separators, escaped;
    a file outside the working directory gets an absolute `file:` URI."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            relative = os.path.relpath(candidate, Path.cwd())
        except ValueError:  # another drive on Windows
            return {"uri": candidate.as_uri()}
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            return {"uri": candidate.as_uri()}
        path = relative
    posix = PurePath(os.path.normpath(path)).as_posix()
    # a name that is not UTF-8 holds surrogate escapes: its own bytes are what to percent-encode
    return {"uri": quote(os.fsencode(posix), safe="/"), "uriBaseId": "%SRCROOT%"}
