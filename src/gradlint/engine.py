"""One file in, diagnostics (and fixed text) out: parse, analyse, apply the rules, check fixes."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Union

import libcst as cst

from gradlint import fixes, noqa
from gradlint.analysis.events import Recognizer
from gradlint.analysis.flow import Flow
from gradlint.analysis.state import Finding, StaleGradient
from gradlint.config import Settings
from gradlint.diagnostics import Diagnostic, Fix
from gradlint.rules import RULES
from gradlint.rules import gl001_stale_gradients as gl001
from gradlint.rules import gl002_discarded_gradients as gl002
from gradlint.rules.base import Context, Rule, Violation
from gradlint.source import UnreadableSource, decode, encode, too_deeply_nested
from gradlint.tree import Tree
from gradlint.triggers import matches

MAX_FIX_ROUNDS = 20
# the rules whose findings come from the path analysis (flow) rather than from a check
FLOW_CODES = ("GL001", "GL002")


@dataclass
class Analysis:
    """A parsed module, what the flow analysis proved about it and what the checks found."""

    module: cst.Module
    findings: list[Finding]
    violations: list[Violation] = field(default_factory=list)
    context: Context | None = None

    def get_tree(self) -> Tree:
        return self.context.tree if self.context is not None else Tree(self.module)


# Frameworks whose backward() does not accumulate into torch's .grad (MXNet overwrites by default)
# or whose resets gradlint does not know (paddle's clear_grad()): their modules are not analysed
# unless they also import torch.
_OTHER_FRAMEWORK = re.compile(
    r"^\s*(?:import|from)\s+(?:mxnet|tensorflow|jax|paddle|mindspore)\b", re.MULTILINE
)
_TORCH = re.compile(r"^\s*(?:import|from)\s+torch\b", re.MULTILINE)


def _triggered(rule: Rule, text: str) -> bool:
    return matches(text, rule.triggers)


def triggered(text: str, settings: Settings) -> bool:
    """Whether any enabled rule may report something in this text (else it is not parsed)."""
    return any(_triggered(rule, text) for rule in _enabled(settings))


@functools.cache
def _enabled(settings: Settings) -> tuple[Rule, ...]:
    return tuple(RULES[code] for code in settings.codes if code in RULES)


def analyse(text: str, settings: Settings | None = None) -> Analysis:
    """Parse and analyse; raises libcst.ParserSyntaxError for invalid source.

    A file is parsed only when an enabled rule's trigger words occur in it.
    """
    settings = settings or Settings()
    enabled = _enabled(settings)
    flow = any(r.code in FLOW_CODES and _triggered(r, text) for r in enabled)
    checks = [r for r in enabled if r.check is not None and _triggered(r, text)]
    if not (flow or checks) or (_OTHER_FRAMEWORK.search(text) and not _TORCH.search(text)):
        return Analysis(cst.Module(body=[]), [])
    deep = too_deeply_nested(text)
    if deep is not None:  # libcst's native parser would crash the process on it
        raise cst.ParserSyntaxError(
            "nesting too deep for the parser",
            lines=text.splitlines(keepends=True),
            raw_line=deep[0],
            raw_column=deep[1] - 1,
        )
    module = cst.parse_module(text)
    context = Context(module, text)
    findings: list[Finding] = []
    with context.listed.active():
        if flow:
            recognizer = Recognizer(context.knowledge, context.positions)
            findings = Flow(module, context.knowledge, recognizer, context.listed).run()
        violations = [v for rule in checks if rule.check for v in rule.check(context)]
    return Analysis(module, findings, violations, context)


def code_of_finding(finding: Finding) -> str:
    return "GL001" if isinstance(finding, StaleGradient) else "GL002"


# A reported thing: a flow finding or a check's violation, keyed by (code, line, col).
Reported = Union[Finding, Violation]


def diagnose(path: str, text: str, analysis: Analysis, settings: Settings) -> list[Diagnostic]:
    """One diagnostic per reported construct; several owners at one site share it."""
    lines = text.splitlines()
    out: list[Diagnostic] = []
    for (code, line, col), group in _by_site(analysis, settings).items():
        if noqa.is_suppressed(_line(lines, line), code):
            continue
        first = group[0]
        if isinstance(first, Violation):
            message, trail = first.message, first.trail
        else:
            message, trail = _flow_wording(first)
            others = [f"`{f.owner}`" for f in group[1:] if not isinstance(f, Violation)]
            if others:
                message += f" (the same holds for {', '.join(others)})"
        out.append(Diagnostic(code, path, line, col, message, trail))
    return sorted(out, key=lambda d: d.sort_key)


def _flow_wording(finding: Finding) -> tuple[str, tuple[str, ...]]:
    if isinstance(finding, StaleGradient):
        return gl001.message(finding), gl001.trail(finding)
    return gl002.message(finding), gl002.trail(finding)


def lint_text(
    path: str, text: str, settings: Settings, with_fixes: bool = False
) -> list[Diagnostic]:
    analysis = analyse(text, settings)
    diagnostics = diagnose(path, text, analysis, settings)
    if not with_fixes:
        return diagnostics
    by_site = _by_site(analysis, settings)
    result = []
    for diagnostic in diagnostics:
        group = by_site.get((diagnostic.code, diagnostic.line, diagnostic.col))
        fix = _verified_fix(text, analysis, group[0], settings) if group else None
        result.append(Diagnostic(**{**diagnostic.__dict__, "fix": fix}))
    return result


def fix_text(
    text: str, settings: Settings, accept: Callable[[str, str], bool] | None = None
) -> tuple[str, int]:
    """Apply verified fixes one at a time until none is left; returns the text and the count.
    Unsafe fixes only when the settings allow them (`--unsafe-fixes`), as ruff does.

    `accept(before, after)` can refuse a verified fix (a notebook refuses one that spans cells).
    """
    applied = 0
    failed: set[tuple[str, int, int, str]] = set()
    for _ in range(MAX_FIX_ROUNDS):
        analysis = analyse(text, settings)
        lines = text.splitlines()
        progress = False
        candidates = [
            (site, reported)
            for site, group in sorted(_by_site(analysis, settings).items())
            for reported in group
        ]
        for (code, line, col), reported in candidates:
            key = (code, line, col, _identity(reported))
            if key in failed or noqa.is_suppressed(_line(lines, line), code):
                continue
            fix = _verified_fix(text, analysis, reported, settings)
            if (
                fix is None
                or (fix.applicability != "safe" and not settings.unsafe_fixes)
                or (accept is not None and not accept(text, fix.fixed_source))
            ):
                failed.add(key)
                continue
            text = fix.fixed_source
            applied += 1
            progress = True
            failed = set()
            break
        if not progress:
            break
    return text, applied


def _line(lines: list[str], number: int) -> str:
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _by_site(analysis: Analysis, settings: Settings) -> dict[tuple[str, int, int], list[Reported]]:
    out: dict[tuple[str, int, int], list[Reported]] = {}
    for finding in analysis.findings:
        code = code_of_finding(finding)
        if not settings.enabled(code):
            continue
        site = finding.backward if isinstance(finding, StaleGradient) else finding.reset
        out.setdefault((code, site.line, site.col + 1), []).append(finding)
    if analysis.context is not None:
        positions = analysis.context.positions
        for violation in analysis.violations:
            line, col = positions.of(violation.node)
            out.setdefault((violation.code, line, col + 1), []).append(violation)
    return out


def _identity(reported: Reported) -> str:
    return reported.message if isinstance(reported, Violation) else reported.owner


def _code(reported: Reported) -> str:
    return reported.code if isinstance(reported, Violation) else code_of_finding(reported)


def _verified_fix(
    text: str, analysis: Analysis, reported: Reported, settings: Settings
) -> Fix | None:
    """The first candidate edit that parses, removes this finding and adds none."""
    if isinstance(reported, Violation):
        if reported.fix is None:
            return None
        description, applicability = reported.fix.description, reported.fix.applicability
        edited_modules: Iterable[cst.Module | None] = [reported.fix.apply(analysis.module)]
    else:
        tree = analysis.get_tree()
        if isinstance(reported, StaleGradient):
            description, candidates = gl001.fix_candidates(reported, tree)
        else:
            description, candidates = gl002.fix_candidates(reported, tree)
        applicability = "safe"
        edited_modules = (fixes.apply(analysis.module, edit) for edit in candidates)
    before = _tally(analysis)
    target = (_code(reported), _identity(reported))
    for edited in edited_modules:
        if edited is None:
            continue
        new_text = edited.code
        try:
            reanalysed = analyse(new_text, settings)
            if reanalysed.context is None:  # not parsed: nothing left to analyse in it
                cst.parse_module(new_text)
            after = _tally(reanalysed)
        except (cst.ParserSyntaxError, RecursionError):
            continue
        if after[target] < before[target] and all(after[k] <= before[k] for k in after):
            return Fix(description, applicability, new_text)
    return None


def _tally(analysis: Analysis) -> Counter[tuple[str, str]]:
    return Counter((_code(r), _identity(r)) for r in (*analysis.findings, *analysis.violations))


@dataclass
class FileResult:
    path: str
    diagnostics: list[Diagnostic]
    text: str = ""  # the source as read, for code frames and diffs
    fixed_text: str | None = None  # set when fixes changed the text
    fixed_data: bytes | None = None  # fixed_text in the file's own encoding (and BOM)
    fixes_applied: int = 0
    written: bool = False
    internal_error: bool = False


def lint_source(
    path: str, data: bytes, settings: Settings, fix: bool = False, with_fixes: bool = False
) -> FileResult:
    """Everything gradlint says about one file's bytes; never raises for bad input."""
    if path.endswith(".ipynb"):
        from gradlint.notebook import lint_notebook  # it builds on this module

        return lint_notebook(path, data, settings, fix=fix, with_fixes=with_fixes)
    try:
        source = decode(path, data)
    except UnreadableSource as error:
        return FileResult(path, [input_problem("GL901", path, 1, 1, str(error))])
    text = source.text
    try:
        if fix:
            fixed, count = fix_text(text, settings)
            diagnostics = lint_text(path, fixed, settings)
            if fixed == text:
                return FileResult(path, diagnostics, text)
            return FileResult(path, diagnostics, text, fixed, encode(source, fixed), count)
        return FileResult(path, lint_text(path, text, settings, with_fixes), text)
    except cst.ParserSyntaxError as error:
        message = f"cannot parse: {error.message}"
        return FileResult(
            path,
            [input_problem("GL900", path, error.raw_line, error.raw_column + 1, message)],
            text,
        )
    except RecursionError:
        message = "cannot parse: nesting too deep for the parser"
        return FileResult(path, [input_problem("GL900", path, 1, 1, message)], text)
    except Exception as error:  # noqa: BLE001 -- one file's failure must not end the run
        message = f"internal error ({type(error).__name__}: {error}); please report this file"
        return FileResult(
            path, [input_problem("GL999", path, 1, 1, message)], text, internal_error=True
        )


def input_problem(code: str, path: str, line: int, col: int, message: str) -> Diagnostic:
    return Diagnostic(code, path, max(line, 1), max(col, 1), message)
