"""One file in, diagnostics (and fixed text) out: parse, analyse, apply the rules, check fixes."""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

import libcst as cst

from gradlint import fixes, noqa
from gradlint.analysis.fix_safety import GradReads
from gradlint.analysis.flow import Flow
from gradlint.analysis.state import Finding
from gradlint.analysis.unit_window import unit_windows
from gradlint.config import Settings
from gradlint.diagnostics import Diagnostic, FileResult, Fix, input_problem
from gradlint.parsing import NotAnalysed, parse_if, split_lines
from gradlint.reparse import WHOLE_TEXT, Parser
from gradlint.rules.base import Context, Gradients, Rule, Violation
from gradlint.rules.registry import RULES
from gradlint.source import UnreadableSource, decode, encode, keep_untouched
from gradlint.tree import Tree
from gradlint.triggers import code_words, matches

# most time that formats showing fixes spend on each finding's own fix, after the combined check
FIX_CHECK_SECONDS = 5.0
FIX_CHECK_MIN_SECONDS = 0.5
# the rules that report the path analysis's gradient findings, by the kind they report
_GRADIENT_RULES = {r.gradients.finding: r for r in RULES.values() if r.gradients is not None}
UNUSED_NOQA = "GL800"  # judged from the suppressions above, after the rules


@dataclass
class Analysis:
    """A parsed module, what the flow analysis proved about it and what the checks found."""

    module: cst.Module
    findings: list[Finding]
    violations: list[Violation] = field(default_factory=list)
    context: Context | None = None
    _reads: GradReads | None = field(default=None, repr=False)
    seconds: float = 0.0  # how long the analysis took
    # (line, col, message) of code the path analysis gave up on (GL902)
    unanalysed: list[tuple[int, int, str]] = field(default_factory=list)

    def get_tree(self) -> Tree:
        return self.context.tree if self.context is not None else Tree(self.module)

    def grad_reads(self) -> GradReads:
        """Where `.grad` is read, for fix safety (asked only of a parsed module's findings)."""
        assert self.context is not None
        if self._reads is None:
            context = self.context
            self._reads = GradReads(context.tree, context.knowledge, context.listed)
        return self._reads


# Frameworks whose backward() does not accumulate into torch's .grad (MXNet overwrites by default;
# NVIDIA Warp's `tape.backward` has its own `tape.zero()`)
# or whose resets gradlint does not know (paddle's clear_grad()): their modules are not analysed
# unless they also import torch.
_OTHER_FRAMEWORK = re.compile(
    r"^\s*(?:import|from)\s+(?:mxnet|tensorflow|jax|paddle|mindspore|warp)\b", re.MULTILINE
)
_TORCH = re.compile(r"^\s*(?:import|from)\s+torch\b", re.MULTILINE)


def _parsed_for(rule: Rule) -> bool:
    """The rule needs the module's tree (GL800 reads comments, GL9xx come from elsewhere)."""
    return rule.gradients is not None or rule.check is not None or rule.tracker is not None


def _triggered(rule: Rule, text: str) -> bool:
    return matches(text, rule.triggers)


@functools.cache
def _enabled(settings: Settings) -> tuple[Rule, ...]:
    return tuple(RULES[code] for code in settings.codes if code in RULES)


def analyse(
    text: str,
    settings: Settings | None = None,
    parser: Parser = WHOLE_TEXT,
) -> Analysis:
    """Parse and analyse; raises libcst.ParserSyntaxError for invalid source.

    A file is parsed only when an enabled rule's trigger words occur in it; `parser` makes
    libcst's tree (an editor's `reparse.Reparser` reuses the tree of the previous text).
    """
    settings = settings or Settings()
    enabled = _enabled(settings)
    candidates = [r for r in enabled if _parsed_for(r) and _triggered(r, text)]
    if not candidates or (_OTHER_FRAMEWORK.search(text) and not _TORCH.search(text)):
        return Analysis(cst.Module(body=[]), [])
    # the rules whose words occur in the code itself, not only in its strings and comments
    chosen: list[Rule] = []

    def wanted(tree: ast.AST) -> bool:
        words = code_words(tree)
        chosen.extend(
            r
            for r in candidates
            if words.matches(r.triggers) and (r.precheck is None or r.precheck(tree))
        )
        return bool(chosen)

    module = parse_if(text, wanted, parser.parse)
    if module is None:
        return Analysis(cst.Module(body=[]), [])
    if not chosen:  # no CPython tree (a newer grammar): the text test decides
        chosen = candidates
    gradients = [r.gradients for r in chosen if r.gradients is not None]
    followers = [r for r in chosen if r.tracker is not None]
    checks = [r for r in chosen if r.check is not None]
    context = Context(module, text, parser.statement_lines(module))
    findings: list[Finding] = []
    unanalysed: list[tuple[int, int, str]] = []
    with context.listed.active():
        violations: list[Violation] = []
        if gradients or followers:
            recognizer = context.recognizer
            trackers = tuple(r.tracker(context) for r in followers if r.tracker)
            flow_analysis = Flow(
                module,
                context.knowledge,
                recognizer,
                context.listed,
                trackers,
                context.training_calls.events if trackers else None,
                context.callers,
            )
            found = flow_analysis.run()
            if gradients:
                findings = [*found, *unit_windows(context.listed, context.tree, recognizer)]
            unanalysed = _unanalysed(flow_analysis, context)
            for tracker in trackers:
                reports = [r for r in flow_analysis.reports if r.code == tracker.code]
                violations.extend(tracker.finish(reports))
        violations += [v for rule in checks if rule.check for v in rule.check(context)]
        for kind in gradients:
            if kind.kept is not None:
                theirs = [f for f in findings if isinstance(f, kind.finding)]
                others = [f for f in findings if not isinstance(f, kind.finding)]
                findings = others + kind.kept(theirs, context, violations)
    return Analysis(module, findings, violations, context, unanalysed=unanalysed)


def _unanalysed(flow: Flow, context: Context) -> list[tuple[int, int, str]]:
    """(line, col, message) of each scope the path analysis gave up on."""
    functions = context.functions
    out = []
    for scope, why in flow.abandoned:
        node = functions.get(scope)
        line, col = context.positions.of(node) if node is not None else (1, 0)
        where = f"function `{node.name.value}`" if node is not None else "module's top level"
        out.append(
            (line, col + 1, f"not analysed: the {where} is beyond the path analysis ({why})")
        )
    return out


def code_of_finding(finding: Finding) -> str:
    return _GRADIENT_RULES[type(finding)].code


# A reported thing: a flow finding or a check's violation, keyed by (code, line, col).
Reported = Union[Finding, Violation]


def diagnose(path: str, text: str, analysis: Analysis, settings: Settings) -> list[Diagnostic]:
    """One diagnostic per reported construct; several owners at one site share it."""
    lines = split_lines(text)
    out: list[Diagnostic] = []
    used: set[tuple[int, str]] = set()  # (line, code) a noqa comment suppressed, for GL800
    for (code, line, col), group in _by_site(analysis, settings).items():
        if noqa.is_suppressed(_line(lines, line), code):
            used.add((line, code))
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
    if settings.enabled("GL902"):
        out.extend(Diagnostic("GL902", path, *where) for where in analysis.unanalysed)
    if settings.enabled(UNUSED_NOQA) and not analysis.unanalysed:
        judged = [c for c in settings.codes if not c.startswith(("GL8", "GL9"))]
        out.extend(Diagnostic(UNUSED_NOQA, path, *u) for u in noqa.unused(text, used, judged))
    return sorted(out, key=lambda d: d.sort_key)


def _flow_wording(finding: Finding) -> tuple[str, tuple[str, ...]]:
    kind = _gradients(finding)
    return kind.message(finding), kind.trail(finding)


def _gradients(finding: Finding) -> Gradients:
    found = _GRADIENT_RULES[type(finding)].gradients
    assert found is not None
    return found


def lint_text(
    path: str,
    text: str,
    settings: Settings,
    with_fixes: bool = False,
    parser: Parser = WHOLE_TEXT,
) -> list[Diagnostic]:
    started = time.monotonic()
    analysis = analyse(text, settings, parser)
    analysis.seconds = time.monotonic() - started
    diagnostics = diagnose(path, text, analysis, settings)
    return with_their_fixes(text, analysis, diagnostics, settings) if with_fixes else diagnostics


def with_offered_fixes(
    analysis: Analysis, diagnostics: list[Diagnostic], settings: Settings
) -> list[Diagnostic]:
    """Each diagnostic with the applicability of the fix it is offered, not made or checked
    (its `fixed_source` is empty): enough for the `[*]` mark and the summary's count, at the
    cost of listing candidates, where making and checking them can cost several analyses."""
    by_site = _by_site(analysis, settings)
    out = []
    for d in diagnostics:
        group = by_site.get((d.code, d.line, d.col))
        offered = _candidates(analysis, group[0])[:1] if group else []
        fix = Fix(offered[0].description, offered[0].applicability, "") if offered else None
        out.append(dataclasses.replace(d, fix=fix))
    return out


def with_their_fixes(
    text: str, analysis: Analysis, diagnostics: list[Diagnostic], settings: Settings
) -> list[Diagnostic]:
    """The diagnostics of `text`, each with its fix, if it has one that checks out."""
    if not diagnostics:
        return diagnostics
    by_site = _by_site(analysis, settings)
    reported = [by_site.get((d.code, d.line, d.col), [None])[0] for d in diagnostics]
    fixes = _verified_fixes(text, analysis, reported, settings)
    return [Diagnostic(**{**d.__dict__, "fix": fix}) for d, fix in zip(diagnostics, fixes)]


def fix_text(
    text: str, settings: Settings, accept: Callable[[str, str], bool] | None = None
) -> tuple[str, int]:
    """Apply every applicable fix; returns the text and the count. Unsafe fixes only when the
    settings allow them (`--unsafe-fixes`), as ruff does.

    `accept(before, after)` can refuse a fix (a notebook refuses one that spans cells).
    """
    fixed, count, _ = _fix(text, analyse(text, settings), settings, accept)
    # lines no fix touched as the user wrote them (libcst's print can differ: CR, form feeds)
    return (keep_untouched(text, fixed) if count else fixed), count


def _fix(
    text: str,
    analysis: Analysis,
    settings: Settings,
    accept: Callable[[str, str], bool] | None = None,
) -> tuple[str, int, Analysis]:
    """Each round takes the best candidate of every finding, makes them all at once and checks
    the result with one re-lint, which is also the next round's analysis; only when that fails
    are fixes tried one at a time. Every applied fix removes a finding and adds none, so the
    rounds end. Returns the text, the count and the text's analysis."""
    applied = 0
    while True:
        chosen = [
            (reported, candidate)
            for reported in _pending(text, analysis, settings)
            for candidate in _candidates(analysis, reported)[:1]
            if _applicable(candidate.applicability, settings)
        ]
        if not chosen:
            return text, applied, analysis
        merged, targets = _combined(text, analysis, chosen)
        after = _recheck(analysis, targets, merged, settings)
        if after is not None and (accept is None or accept(text, merged)):
            text, analysis, applied = merged, after, applied + len(targets)
            continue
        for reported, _ in chosen:  # one at a time, each verified on its own
            verified = _verified_fix(text, analysis, reported, settings)
            if verified is not None and (accept is None or accept(text, verified[0].fixed_source)):
                text, analysis, applied = verified[0].fixed_source, verified[1], applied + 1
                break
        else:
            return text, applied, analysis


def _pending(text: str, analysis: Analysis, settings: Settings) -> list[Reported]:
    """What is reported and not suppressed, in file order."""
    lines = split_lines(text)
    return [
        reported
        for (code, line, _), group in sorted(_by_site(analysis, settings).items())
        if not noqa.is_suppressed(_line(lines, line), code)
        for reported in group
    ]


def _applicable(fix_applicability: str, settings: Settings) -> bool:
    return fix_applicability == "safe" or settings.unsafe_fixes


def _combined(
    text: str, analysis: Analysis, chosen: list[tuple[Reported, _FixOption]]
) -> tuple[str, list[Reported]]:
    """The text with every chosen fix made, and the findings whose fix it holds. Edits of the
    path rules are made in one pass over the tree; each other rewrite is made on its own and
    kept where its lines touch no change taken before."""
    edits: list[fixes.TreeEdit] = []
    edited: list[Reported] = []
    moved: set[int] = set()
    texts: list[str] = []
    owners: list[list[Reported]] = []
    for reported, candidate in chosen:
        if candidate.edit is None:
            module = candidate.make()
            if module is not None:
                texts.append(module.code)
                owners.append([reported])
            continue
        if candidate.edit in edits:  # one fix for several owners at one site
            edited.append(reported)
            continue
        statement = getattr(candidate.edit, "statement", None)
        if statement is not None and id(statement) in moved:
            continue  # one statement moved twice: the next round sees what is left
        moved |= {id(statement)} if statement is not None else set()
        edits.append(candidate.edit)
        edited.append(reported)
    if edits:
        module = fixes.apply_all(analysis.module, edits)
        if module is not None:
            texts.insert(0, module.code)
            owners.insert(0, edited)
    merged, included = fixes.merge(text, texts)
    return merged, [r for index in included for r in owners[index]]


def _verified_fixes(
    text: str, analysis: Analysis, reported: list[Reported | None], settings: Settings
) -> list[Fix | None]:
    """A fix for each finding, for formats that show fixes. The best candidates are checked
    together with one re-lint; each finding's own fixed text is then made (and, where the
    combined check failed, checked) while time is left, so a format never changes which
    findings a file gets, only how many fixes it can show in the time."""
    started = time.monotonic()
    every = dataclasses.replace(settings, unsafe_fixes=True)
    best = [_candidates(analysis, r)[:1] if r is not None else [] for r in reported]
    chosen = [(r, c[0]) for r, c in zip(reported, best) if r is not None and c]
    merged, targets = _combined(text, analysis, chosen)
    together = _recheck(analysis, targets, merged, settings) is not None
    verified = {id(r) for r in targets} if together else set()
    # a share of the time the checks took so far: showing fixes never costs a file its verdict
    spent = time.monotonic() - started + analysis.seconds
    deadline = time.monotonic() + min(FIX_CHECK_SECONDS, max(FIX_CHECK_MIN_SECONDS, spent))
    out: list[Fix | None] = []
    for r, candidates in zip(reported, best):
        fix = None
        if r is not None and candidates and time.monotonic() < deadline:
            if id(r) in verified:
                module = candidates[0].make()
                if module is not None:
                    fix = Fix(candidates[0].description, candidates[0].applicability, module.code)
            else:
                checked = _verified_fix(text, analysis, r, every)
                fix = checked[0] if checked is not None else None
        out.append(fix)
    return out


def _line(lines: list[str], number: int) -> str:
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _by_site(analysis: Analysis, settings: Settings) -> dict[tuple[str, int, int], list[Reported]]:
    out: dict[tuple[str, int, int], list[Reported]] = {}
    for finding in analysis.findings:
        code = code_of_finding(finding)
        if not settings.enabled(code):
            continue
        site = _gradients(finding).site(finding)
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


@dataclass(frozen=True)
class _FixOption:
    """A way to fix one finding, as the engine makes it: a rule's candidate edit (made alone or
    with others in one pass) or a check's rewrite."""

    description: str
    applicability: str
    make: Callable[[], cst.Module | None]
    edit: fixes.TreeEdit | None = None  # a path rule's edit, which can be made with others at once


def _candidates(analysis: Analysis, reported: Reported) -> list[_FixOption]:
    """The ways to fix one finding, best first, safe ones before unsafe ones."""
    module = analysis.module
    if isinstance(reported, Violation):
        fix = reported.fix
        if fix is None:
            return []
        return [_FixOption(fix.description, fix.applicability, lambda: fix.apply(module))]
    tree = analysis.get_tree()
    reads = analysis.grad_reads()
    found = _gradients(reported).fixes(reported, tree, reads)
    ordered = sorted(found, key=lambda c: c.applicability != "safe")
    return [
        _FixOption(
            c.description, c.applicability, functools.partial(fixes.apply, module, c.edit), c.edit
        )
        for c in ordered
    ]


def _verified_fix(
    text: str, analysis: Analysis, reported: Reported, settings: Settings
) -> tuple[Fix, Analysis] | None:
    """The first candidate that applies under the settings, parses, removes this finding and
    adds none, with the analysis of the fixed text."""
    for candidate in _candidates(analysis, reported):
        if not _applicable(candidate.applicability, settings):
            continue
        edited = candidate.make()
        if edited is None or edited.code == text:
            continue
        after = _recheck(analysis, [reported], edited.code, settings)
        if after is not None:
            return Fix(candidate.description, candidate.applicability, edited.code), after
    return None


def _recheck(
    analysis: Analysis, targets: list[Reported], new_text: str, settings: Settings
) -> Analysis | None:
    """The analysis of `new_text` when it parses (and compiles, if the analysed text did),
    lacks each target finding and has no finding the analysed text did not have; else None."""
    original = analysis.context.text if analysis.context is not None else None
    if not targets or not fixes.parses(new_text, original):
        return None
    try:
        after = analyse(new_text, settings)
    except (cst.ParserSyntaxError, NotAnalysed, RecursionError):
        return None
    expected = _tally(analysis)
    expected.subtract(Counter((_code(r), _identity(r)) for r in targets))
    found = _tally(after)
    return after if all(found[key] <= max(expected[key], 0) for key in found) else None


def _tally(analysis: Analysis) -> Counter[tuple[str, str]]:
    return Counter((_code(r), _identity(r)) for r in (*analysis.findings, *analysis.violations))


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
            before = analyse(text, settings)
            found = Counter(d.code for d in diagnose(path, text, before, settings))
            fixed, count, analysis = _fix(text, before, settings)
            diagnostics = diagnose(path, fixed, analysis, settings)
            # what is left, with the fixes `--fix` did not apply (unsafe ones)
            if with_fixes:
                diagnostics = with_their_fixes(fixed, analysis, diagnostics, settings)
            else:
                diagnostics = with_offered_fixes(analysis, diagnostics, settings)
            if fixed == text:
                return FileResult(path, diagnostics, text)
            # each fix removes its finding and adds none: the difference is what was fixed
            found.subtract(d.code for d in diagnostics)
            by_code = {code: n for code, n in sorted(found.items()) if n > 0}
            return FileResult(
                path, diagnostics, text, fixed, encode(source, fixed), count, fixed_codes=by_code
            )
        if with_fixes:
            return FileResult(path, lint_text(path, text, settings, with_fixes), text)
        analysis = analyse(text, settings)
        diagnostics = diagnose(path, text, analysis, settings)
        return FileResult(path, with_offered_fixes(analysis, diagnostics, settings), text)
    except cst.ParserSyntaxError as error:
        message = f"cannot parse: {error.message}"
        return FileResult(
            path,
            [input_problem("GL900", path, error.raw_line, error.raw_column + 1, message)],
            text,
        )
    except NotAnalysed as error:
        problem = input_problem("GL902", path, error.line, error.col, str(error))
        return FileResult(path, [problem], text)
    except RecursionError:  # CPython parsed it: the analysis went deeper than its stack
        message = "not analysed: nesting too deep for the analysis"
        return FileResult(path, [input_problem("GL902", path, 1, 1, message)], text)
    except Exception as error:  # noqa: BLE001 -- one file's failure must not end the run
        message = f"internal error ({type(error).__name__}: {error}); please report this file"
        return FileResult(
            path, [input_problem("GL999", path, 1, 1, message)], text, internal_error=True
        )
