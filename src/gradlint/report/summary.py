"""The lines after the report, worded as ruff words them where ruff has the line: how many
findings in how many of the files checked, how many `--fix` would fix, which files were not
analysed and why; `--statistics` and `--show-fixes`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from gradlint.diagnostics import Diagnostic, FileResult
from gradlint.report.options import ReportOptions
from gradlint.rules.catalogue import CATALOGUE

NOT_ANALYSED = "GL9"  # the codes that say a file was not analysed


def plural(count: int, word: str, suffix: str = "s") -> str:
    return f"{count} {word}{'' if count == 1 else suffix}"


def summary(
    diagnostics: Sequence[Diagnostic], results: Sequence[FileResult], options: ReportOptions
) -> str:
    """`Found 3 findings (2 fixed, 1 remaining) in 2 of 629 files checked (571 without training
    code).` and ruff's fixable line; `All checks passed (...).` when there is nothing."""
    checked = plural(len(results), "file")
    skipped = _skipped(diagnostics, results)
    fixed = sum(r.fixes_applied for r in results)
    if not diagnostics and not fixed:
        return f"All checks passed ({checked} checked{', ' + skipped if skipped else ''}).\n"
    counts = f" ({fixed} fixed, {len(diagnostics)} remaining)" if fixed else ""
    touched = {d.path for d in diagnostics} | {r.path for r in results if r.fixes_applied}
    found = plural(len(diagnostics) + fixed, "finding")
    where = f"in {len(touched)} of {checked} checked{f' ({skipped})' if skipped else ''}"
    lines = [f"Found {found}{counts} {where}."]
    fixable = fixable_line(diagnostics, options)
    if fixable:
        lines.append(fixable)
    return "".join(line + "\n" for line in lines)


def _skipped(diagnostics: Sequence[Diagnostic], results: Sequence[FileResult]) -> str:
    """What was read but not analysed, and why."""
    parts = []
    without = sum(1 for r in results if r.skipped)
    if without:
        parts.append(f"{without} without training code")
    not_analysed = {d.path for d in diagnostics if d.code.startswith(NOT_ANALYSED)}
    if not_analysed:
        parts.append(f"{len(not_analysed)} not analysed")
    return ", ".join(parts)


def fixable_line(diagnostics: Sequence[Diagnostic], options: ReportOptions) -> str:
    """ruff's line: `[*] 2 fixable with `--fix` (1 unsafe fix available with `--fix
    --unsafe-fixes`).`, or only one of its halves; "" when no finding has a fix."""
    fixes = [d.fix for d in diagnostics if d.fix is not None]
    applicable = sum(1 for f in fixes if options.applies(f.applicability))
    hidden = len(fixes) - applicable
    unsafe = f"{plural(hidden, 'unsafe fix', 'es')} available with `--fix --unsafe-fixes`"
    if applicable and hidden:
        return f"[*] {applicable} fixable with `--fix` ({unsafe})."
    if applicable:
        return f"[*] {applicable} fixable with `--fix`."
    return f"{unsafe}." if hidden else ""


def statistics(diagnostics: Sequence[Diagnostic], options: ReportOptions, as_json: bool) -> str:
    """The number of findings of each rule, most frequent first, as ruff's `--statistics`."""
    counts = Counter(d.code for d in diagnostics)
    fixable = Counter(
        d.code for d in diagnostics if d.fix is not None and options.applies(d.fix.applicability)
    )
    ordered = sorted(counts, key=lambda code: (-counts[code], code))
    rows = [
        {
            "code": code,
            "name": CATALOGUE[code].name if code in CATALOGUE else code,
            "count": counts[code],
            "fixable": fixable[code] > 0,
            "fixable_count": fixable[code],
        }
        for code in ordered
    ]
    if as_json:
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return ""
    count_width = max(len(str(row["count"])) for row in rows)
    code_width = max(len(str(row["code"])) for row in rows)
    return "".join(
        f"{row['count']:>{count_width}}\t{row['code']:<{code_width}}\t"
        f"{'[*]' if row['fixable'] else '[ ]'} {row['name']}\n"
        for row in rows
    )


def fixes_applied(results: Sequence[FileResult]) -> str:
    """ruff's `--show-fixes` block: each fixed file and how many findings of each rule."""
    fixed = [r for r in results if r.fixes_applied]
    total = sum(r.fixes_applied for r in fixed)
    lines = ["", f"Fixed {plural(total, 'finding')}:"]
    for result in fixed:
        lines.append(f"- {result.path}:")
        by_code = result.fixed_codes or {"": result.fixes_applied}
        for code, count in by_code.items():
            name = f" ({CATALOGUE[code].name})" if code in CATALOGUE else ""
            lines.append(f"    {count} × {code or 'fixes'}{name}")
    return "\n".join(lines) + "\n\n"
