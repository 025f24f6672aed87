"""One file in, diagnostics (and fixed text) out: parse, analyse, apply the rules, check fixes."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import libcst as cst

from gradlint import fixes, noqa
from gradlint.analysis.events import Positions, Recognizer
from gradlint.analysis.flow import Flow
from gradlint.analysis.owners import scan_module
from gradlint.analysis.state import DiscardedGradient, Finding, StaleGradient
from gradlint.diagnostics import Diagnostic, Fix
from gradlint.rules import gl001_stale_gradients as gl001
from gradlint.rules import gl002_discarded_gradients as gl002
from gradlint.rules import select as select_codes
from gradlint.source import UnreadableSource, decode, encode
from gradlint.tree import Tree

MAX_FIX_ROUNDS = 20


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ("GL",)
    ignore: tuple[str, ...] = ()

    def enabled(self, code: str) -> bool:
        return bool(select_codes([code], self.select, self.ignore))


@dataclass
class Analysis:
    """A parsed module and what the flow analysis proved about it."""

    module: cst.Module
    findings: list[Finding]
    tree: Tree | None = field(default=None)

    def get_tree(self) -> Tree:
        if self.tree is None:
            self.tree = Tree(self.module)
        return self.tree


# Every GL001/GL002 finding needs a backward call; files without the word are never parsed.
TRIGGERS = ("backward",)
# Frameworks whose backward() does not accumulate into torch's .grad (MXNet overwrites by default)
# or whose resets gradlint does not know (paddle's clear_grad()): their modules are not analysed
# unless they also import torch.
_OTHER_FRAMEWORK = re.compile(
    r"^\s*(?:import|from)\s+(?:mxnet|tensorflow|jax|paddle|mindspore)\b", re.MULTILINE
)
_TORCH = re.compile(r"^\s*(?:import|from)\s+torch\b", re.MULTILINE)


def analyse(text: str) -> Analysis:
    """Parse and analyse; raises libcst.ParserSyntaxError for invalid source."""
    if not any(trigger in text for trigger in TRIGGERS) or (
        _OTHER_FRAMEWORK.search(text) and not _TORCH.search(text)
    ):
        return Analysis(cst.Module(body=[]), [])
    module = cst.parse_module(text)
    knowledge = scan_module(module)
    flow = Flow(module, knowledge, Recognizer(knowledge, Positions(module)))
    return Analysis(module, flow.run())


def code_of_finding(finding: Finding) -> str:
    return "GL001" if isinstance(finding, StaleGradient) else "GL002"


def diagnose(path: str, text: str, analysis: Analysis, settings: Settings) -> list[Diagnostic]:
    """One diagnostic per reported construct; several owners at one site share it."""
    lines = text.splitlines()
    out: list[Diagnostic] = []
    for (code, line, col), group in _findings_by_site(analysis, settings).items():
        if noqa.is_suppressed(_line(lines, line), code):
            continue
        finding = group[0]
        if isinstance(finding, StaleGradient):
            message, trail = gl001.message(finding), gl001.trail(finding)
        else:
            message, trail = gl002.message(finding), gl002.trail(finding)
        others = [f"`{f.owner}`" for f in group[1:]]
        if others:
            message += f" (the same holds for {', '.join(others)})"
        out.append(Diagnostic(code, path, line, col, message, trail))
    return sorted(out, key=lambda d: d.sort_key)


def lint_text(
    path: str, text: str, settings: Settings, with_fixes: bool = False
) -> list[Diagnostic]:
    analysis = analyse(text)
    diagnostics = diagnose(path, text, analysis, settings)
    if not with_fixes:
        return diagnostics
    by_site = _findings_by_site(analysis, settings)
    result = []
    for diagnostic in diagnostics:
        group = by_site.get((diagnostic.code, diagnostic.line, diagnostic.col))
        fix = _verified_fix(text, analysis, group[0], settings) if group else None
        result.append(Diagnostic(**{**diagnostic.__dict__, "fix": fix}))
    return result


def fix_text(text: str, settings: Settings) -> tuple[str, int]:
    """Apply verified fixes one at a time until none is left; returns the text and the count."""
    applied = 0
    failed: set[tuple[str, int, int, str]] = set()
    for _ in range(MAX_FIX_ROUNDS):
        analysis = analyse(text)
        lines = text.splitlines()
        progress = False
        candidates = [
            (site, finding)
            for site, group in sorted(_findings_by_site(analysis, settings).items())
            for finding in group
        ]
        for (code, line, col), finding in candidates:
            key = (code, line, col, finding.owner)
            if key in failed or noqa.is_suppressed(_line(lines, line), code):
                continue
            fix = _verified_fix(text, analysis, finding, settings)
            if fix is None:
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


def _findings_by_site(
    analysis: Analysis, settings: Settings
) -> dict[tuple[str, int, int], list[Finding]]:
    out: dict[tuple[str, int, int], list[Finding]] = {}
    for finding in analysis.findings:
        code = code_of_finding(finding)
        if not settings.enabled(code):
            continue
        site = finding.backward if isinstance(finding, StaleGradient) else finding.reset
        out.setdefault((code, site.line, site.col + 1), []).append(finding)
    return out


def _verified_fix(
    text: str, analysis: Analysis, finding: Finding, settings: Settings
) -> Fix | None:
    tree = analysis.get_tree()
    if isinstance(finding, StaleGradient):
        description, candidates = gl001.fix_candidates(finding, tree)
    elif isinstance(finding, DiscardedGradient):
        description, candidates = gl002.fix_candidates(finding, tree)
    else:
        return None
    before = _tally(analysis.findings)
    target = (code_of_finding(finding), finding.owner)
    for edit in candidates:
        edited = fixes.apply(analysis.module, edit)
        if edited is None:
            continue
        new_text = edited.code
        try:
            after = _tally(analyse(new_text).findings)
        except cst.ParserSyntaxError:
            continue
        if after[target] < before[target] and all(after[k] <= before[k] for k in after):
            return Fix(description, "safe", new_text)
    return None


def _tally(findings: list[Finding]) -> Counter[tuple[str, str]]:
    return Counter((code_of_finding(f), f.owner) for f in findings)


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
    try:
        source = decode(path, data)
    except UnreadableSource as error:
        return FileResult(path, [_input_problem("GL901", path, 1, 1, str(error))])
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
            [_input_problem("GL900", path, error.raw_line, error.raw_column + 1, message)],
            text,
        )
    except RecursionError:
        message = "cannot parse: nesting too deep for the parser"
        return FileResult(path, [_input_problem("GL900", path, 1, 1, message)], text)
    except Exception as error:  # noqa: BLE001 -- one file's failure must not end the run
        message = f"internal error ({type(error).__name__}: {error}); please report this file"
        return FileResult(
            path, [_input_problem("GL999", path, 1, 1, message)], text, internal_error=True
        )


def lint_path(
    path: str, settings: Settings, fix: bool = False, with_fixes: bool = False, write: bool = True
) -> FileResult:
    """`fix` computes the fixes; they are written to the file unless `write` is False."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        reason = error.strerror or str(error)
        return FileResult(
            path, [_input_problem("GL901", path, 1, 1, f"cannot read file: {reason}")]
        )
    result = lint_source(path, data, settings, fix=fix, with_fixes=with_fixes)
    if write and result.fixed_data is not None:
        result.written = fixes.write_atomically(path, data, result.fixed_data)
    return result


def _input_problem(code: str, path: str, line: int, col: int, message: str) -> Diagnostic:
    return Diagnostic(code, path, max(line, 1), max(col, 1), message)
