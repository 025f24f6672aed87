"""What every rule declares (code, docs, trigger words, check) and what a check receives."""

from __future__ import annotations

import ast
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import libcst as cst

from gradlint.analysis.calls import rebound_parameters
from gradlint.analysis.events import Recognizer, Site
from gradlint.analysis.fix_safety import GradReads
from gradlint.analysis.graphs import relevant_names
from gradlint.analysis.knowledge import Knowledge, scan_module
from gradlint.analysis.positions import Positions
from gradlint.analysis.syntax import Listing, listing
from gradlint.analysis.torch_api import Imports, callers_by_name, imports_of
from gradlint.analysis.tracking import At, Tracker
from gradlint.analysis.training_calls import TrainingCalls
from gradlint.fixes import Candidate
from gradlint.tree import Tree
from gradlint.triggers import Trigger


class Context:
    """One parsed file as the checks see it; the costly parts are computed on first use only."""

    def __init__(self, module: cst.Module, text: str, lines: Sequence[int] | None = None):
        """`lines`: the line each top-level statement starts on, when the parser knows it."""
        self.module = module
        self.text = text
        self.lines = lines

    @cached_property
    def listed(self) -> Listing:
        return listing(self.module)

    @property
    def nodes(self) -> list[cst.CSTNode]:
        """Every node of the module in walk order (parents before children): iterate this
        rather than walking the module again."""
        return self.listed.nodes

    @cached_property
    def positions(self) -> Positions:
        if self.lines is None:
            return Positions(self.module)
        return Positions(self.module, self.lines, self._statement_of)

    def _statement_of(self, node: cst.CSTNode) -> int | None:
        """The index in `module.body` of the top-level statement that holds `node`."""
        listed = self.listed
        at = listed.index.get(id(node))
        if at is None:
            return None
        starts = self._statement_starts
        index = bisect_right(starts, at) - 1
        if index < 0 or at >= listed.ends[starts[index]]:
            return None
        return index

    @cached_property
    def _statement_starts(self) -> list[int]:
        """The listing index of each top-level statement, in order."""
        return [self.listed.index[id(statement)] for statement in self.module.body]

    @cached_property
    def knowledge(self) -> Knowledge:
        """Optimizers, models, tensors and schedulers the module creates (see analysis.knowledge)."""
        return scan_module(self.module, self.listed)

    @cached_property
    def imports(self) -> Imports:
        """What each imported name stands for (see analysis.torch_api)."""
        return imports_of(self.listed.of_type(cst.Import, cst.ImportFrom))

    @cached_property
    def recognizer(self) -> Recognizer:
        """Backward, update and reset events, with one site per node for every rule."""
        return Recognizer(self.knowledge, self.positions)

    @cached_property
    def function_names(self) -> frozenset[str]:
        """The names of the module's functions and methods."""
        return frozenset(
            node.name.value  # type: ignore[attr-defined]
            for node in self.listed.of_type(cst.FunctionDef)
        )

    @cached_property
    def callers(self) -> dict[str, list[cst.Call]]:
        """The calls of each function name (see analysis.torch_api.callers_by_name)."""
        return callers_by_name(self.listed.of_type(cst.Call))

    @cached_property
    def training_calls(self) -> TrainingCalls:
        """Clipping, loss scaling and scheduler steps (see analysis.training_calls)."""
        return TrainingCalls(self.knowledge, self.recognizer, self.listed, self.imports)

    @cached_property
    def graph_names(self) -> frozenset[str]:
        """The names whose autograd graphs can reach a backward (see analysis.graphs)."""
        return relevant_names(self.listed)

    @cached_property
    def tree(self) -> Tree:
        """Parents, enclosing statements and loops of every node."""
        return Tree(self.module, self.listed)

    @cached_property
    def functions(self) -> dict[int, cst.FunctionDef]:
        """The module's functions and methods, by id (the path analysis' `At.scope`)."""
        return {id(n): n for n in self.listed.of_type(cst.FunctionDef)}  # type: ignore[misc]

    def rebound(self, scope: int) -> frozenset[str]:
        """The parameters the function with this id binds anew (see
        analysis.calls.rebound_parameters): a path rule must not take them for the objects
        a caller handed over."""
        known = self._rebound.get(scope)
        if known is None:
            function = self.functions.get(scope)
            known = rebound_parameters(function) if function is not None else frozenset()
            self._rebound[scope] = known
        return known

    @cached_property
    def _rebound(self) -> dict[int, frozenset[str]]:
        return {}

    def handed_over(self, at: At, name: str) -> bool:
        """Whether `name`, as written where `at` is, is a parameter standing for the object a
        caller handed over (bound at the call, not bound anew in the function)."""
        head = name.split(".", 1)[0].split("[", 1)[0]
        return head in at.names.aliases and head not in self.rebound(at.scope)


@dataclass(frozen=True)
class Rewrite:
    """A fix as a change of the module; the engine keeps it only if the result parses and
    re-lints with this finding gone and nothing new."""

    description: str
    apply: Callable[[cst.Module], cst.Module | None]
    applicability: str = "safe"  # or "unsafe", as ruff uses the words


@dataclass(frozen=True)
class Violation:
    """One finding of a check, reported at the start of `node`."""

    code: str
    node: cst.CSTNode = field(compare=False, hash=False)
    message: str
    trail: tuple[str, ...] = ()  # the events that prove it, in order
    fix: Rewrite | None = field(default=None, compare=False, hash=False)


Check = Callable[[Context], Iterable[Violation]]


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    docs: str  # sections: What it does / Why is this bad? / Example / Use instead / Fix safety
    fixable: bool = False
    # what every finding needs in the source text (see gradlint.triggers); a file that matches
    # none is not parsed. The default: a call of backward. The rarest words first: every file's
    # text test stops at the first word it lacks.
    triggers: tuple[Trigger, ...] = ("backward(",)
    # a sharper necessary condition, asked of CPython's tree of a file whose words matched
    # (it costs a tenth of libcst's): False means no finding is possible, and no parse
    precheck: Callable[[ast.AST], bool] | None = None
    check: Check | None = None  # None: the rule's findings come from the path analysis (flow)
    # a rule that follows paths: its analysis, run on the flow's one exploration of the file
    tracker: Callable[[Context], Tracker] | None = None
    # a rule whose findings are the path analysis's own proofs about `.grad` (GL001, GL002)
    gradients: Gradients | None = None


@dataclass(frozen=True)
class Gradients:
    """How a rule reports one kind of the path analysis's gradient findings
    (`analysis.state.Finding`): where, in which words, how it is fixed, which it keeps."""

    finding: type
    site: Callable[[Any], Site]  # where a finding is reported
    message: Callable[[Any], str]
    trail: Callable[[Any], tuple[str, ...]]
    fixes: Callable[[Any, Tree, GradReads], list[Candidate]]  # best first
    # the findings worth reporting, given the module and the checks' violations
    kept: Callable[[list[Any], Context, list[Violation]], list[Any]] | None = None


def path_through(*sites: Site) -> tuple[str, ...]:
    """The events of a finding in path order; going back up the file means the next pass."""
    steps: list[str] = []
    for previous, site in zip((None, *sites), sites):
        if previous is not None and site.line <= previous.line:
            steps.append("next iteration")
        steps.append(f"{site.label} at line {site.line}")
    return tuple(steps)
