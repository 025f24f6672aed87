"""Which forward computations each tensor's autograd graph goes through, along one path.

A graph is a set of `Element`s: a forward call (by node), the model it runs, and its age (0:
the call's latest run on this path, 1: an earlier run, so a tensor carried over from the last
iteration is told from the one just computed). A graph lists what a tensor surely goes
through; what gradlint cannot read (a helper's result, a comprehension) adds nothing, so a
rule that finds a freed or changed computation in a graph is right whatever else it holds. The values are hashable and small, so that the
rules that need them (GL105, GL106) keep them in their path state (see analysis.tracking).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import libcst as cst

from gradlint.analysis.calls import parameter_names
from gradlint.analysis.events import Site
from gradlint.analysis.syntax import Listing, bound_here, children, dotted, last_name, names_in
from gradlint.analysis.torch_api import backward_loss
from gradlint.analysis.tracking import At, Guard, Tracker, common

Element = tuple[int, str, int]  # (forward call node id, model, age)
Graph = frozenset[Element]
EMPTY: Graph = frozenset()
# what goes through these carries no graph: a value read through them reaches no model
GRAPH_CUTS = frozenset({"detach", "item", "tolist", "numpy", "data"})
# no graph either: sizes, types and places of a tensor, integer results, new tensors made from
# another's shape (`torch.rand_like(out)`, `out.new_zeros(n)`)
_NO_GRAPH = frozenset(
    {"shape", "size", "dtype", "device", "dim", "ndim", "numel", "argmax", "argmin"}
)
_FACTORIES = frozenset(
    {"zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange"}
)
# keywords that say where or how a tensor is made, never what it is computed from
_PLACEMENT = frozenset({"device", "dtype", "generator", "layout", "memory_format"})
# methods whose arguments say where or in which type a tensor goes, not what it is computed from
_MOVES = frozenset({"to", "cuda", "cpu", "type", "half", "float", "double", "long", "int", "bool"})

Names = tuple[tuple[str, Graph], ...]  # sorted (name, graph), names with no graph left out

if TYPE_CHECKING:
    from gradlint.rules.base import Context


@dataclass(frozen=True)
class Evaluation:
    graph: Graph
    ran: frozenset[int]  # the forward calls the expression runs (their earlier graphs age)


class GraphReader:
    """Evaluates expressions to graphs for one module and one notion of "forward call"."""

    def __init__(
        self,
        is_forward: Callable[[str], str | None],
        opaque: Callable[[str], bool],
        relevant: frozenset[str],
        is_model: Callable[[str], bool] = lambda callee: False,
    ):
        self.is_forward = is_forward  # callee -> model name, or None if not a forward
        self.opaque = opaque  # a callee whose result gradlint cannot read (a module's function)
        self.is_model = is_model  # a callee known as a model of the module (it has parameters)
        self.relevant = relevant  # the names worth following (see `relevant_names`)
        self._forwards: dict[int, frozenset[int]] = {}
        self.calls: dict[int, cst.Call] = {}  # the forward calls met, by id

    def evaluate(
        self, node: cst.CSTNode, names: dict[str, Graph], resolve: Callable[[str], str]
    ) -> Graph:
        """The graph of `node` after the forward calls in it ran (theirs at age 0)."""
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in GRAPH_CUTS | _NO_GRAPH:
                return EMPTY
            callee = dotted(func)
            if callee is not None and _makes_new(callee.rsplit(".", 1)[-1]):
                return EMPTY
            model = self.is_forward(callee) if callee is not None else None
            found: set[Element] = set()
            if model is not None:
                found.add((id(node), model, 0))
            elif callee is not None and self.opaque(callee):
                return EMPTY
            elif isinstance(func, cst.Attribute):
                found |= self.evaluate(func.value, names, resolve)
                if func.attr.value in _MOVES:  # `x.to(device)`: the device joins no graph
                    return frozenset(found)
            for arg in node.args:
                if arg.keyword is None or arg.keyword.value not in _PLACEMENT:
                    found |= self.evaluate(arg.value, names, resolve)
            return frozenset(found)
        if isinstance(node, cst.Name):
            return names.get(resolve(node.value), EMPTY)
        if isinstance(node, cst.Attribute):
            if node.attr.value in GRAPH_CUTS | _NO_GRAPH:
                return EMPTY
            name = dotted(node)
            if name is not None and resolve(name) in names:
                return names[resolve(name)]
            return self.evaluate(node.value, names, resolve)
        if isinstance(node, (cst.Lambda, cst.BaseComp)):
            return EMPTY
        found = set()
        for child in children(node):
            found |= self.evaluate(child, names, resolve)
        return frozenset(found)

    def forward_calls(self, node: cst.CSTNode) -> frozenset[int]:
        """The forward calls an expression runs (not entering lambdas and comprehensions)."""
        known = self._forwards.get(id(node))
        if known is not None:
            return known
        found: set[int] = set()
        pending = [node]
        while pending:
            current = pending.pop()
            if isinstance(current, (cst.Lambda, cst.BaseComp)):
                continue
            if isinstance(current, cst.Call):
                callee = dotted(current.func)
                if callee is not None and self.is_forward(callee) is not None:
                    found.add(id(current))
                    self.calls[id(current)] = current
            pending.extend(children(current))
        result = self._forwards[id(node)] = frozenset(found)
        return result


def _makes_new(name: str) -> bool:
    """`zeros_like`, `rand_like`, `new_zeros`, `torch.zeros`: a new tensor, with no graph."""
    return name.endswith("_like") or name.startswith("new_") or name in _FACTORIES


def aged(graph: Graph, calls: frozenset[int]) -> Graph:
    """`graph` after `calls` ran again: what it holds of their last run is now an earlier one."""
    if not calls or not any(e[0] in calls and e[2] == 0 for e in graph):
        return graph
    return frozenset((e[0], e[1], 1) if e[0] in calls else e for e in graph)


def aged_names(names: Names, calls: frozenset[int]) -> Names:
    if not calls:
        return names
    return tuple((name, aged(graph, calls)) for name, graph in names)


def bound(names: Names, targets: Iterable[str], graph: Graph) -> Names:
    """`names` with each of `targets` now holding `graph` (no entry for an empty graph)."""
    targets = set(targets)
    kept = {name: g for name, g in names if name not in targets}
    if graph:
        kept.update((name, graph) for name in targets)
    return tuple(sorted(kept.items()))


def joined(every: list[Names]) -> Names:
    """Names on merged paths: what each surely holds on all of them."""
    maps = [dict(names) for names in every]
    out = []
    for name in set.intersection(*(set(m) for m in maps)):
        graph = frozenset.intersection(*(m[name] for m in maps))
        if graph:
            out.append((name, graph))
    return tuple(sorted(out))


def dropped(names: Names, gone: set[str]) -> Names:
    kept = tuple((name, graph) for name, graph in names if name not in gone)
    return kept if len(kept) != len(names) else names


def after_binding(
    reader: GraphReader,
    names: Names,
    statement: cst.CSTNode,
    targets: set[str],
    resolve: Callable[[str], str],
    grad_off: bool,
) -> tuple[Names, frozenset[int]]:
    """`names` after `statement` bound `targets` (resolved), and the forward calls it ran.

    An assignment binds its value's graph (none under no_grad); `x += y` adds `y`'s graph to
    `x`'s; a loop variable or a `with ... as` name holds none (data from a loader)."""
    value = getattr(statement, "value", None)
    if not isinstance(statement, (cst.Assign, cst.AnnAssign, cst.AugAssign)) or value is None:
        return dropped(names, targets), frozenset()
    ran = reader.forward_calls(value)
    names = aged_names(names, ran)
    written = [resolve(t) for t in bound_here(statement) if t in reader.relevant]
    if not written:
        return dropped(names, targets), ran
    graph = EMPTY if grad_off else reader.evaluate(value, dict(names), resolve)
    if _unpacked(statement) and not _runs_a_model(reader, value):
        graph = EMPTY  # `a, b = loss_module(x)`: which part goes through what is not known
    if isinstance(statement, cst.AugAssign):
        before = dict(names)
        for target in written:
            names = bound(names, [target], before.get(target, EMPTY) | graph)
        return names, ran
    return bound(dropped(names, targets), written, graph), ran


def _unpacked(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.Assign) and any(
        isinstance(t.target, (cst.Tuple, cst.List)) for t in statement.targets
    )


def _runs_a_model(reader: GraphReader, value: cst.BaseExpression) -> bool:
    """`out, state = model(x, state)` of a model of the module: both go through it."""
    callee = dotted(value.func) if isinstance(value, cst.Call) else None
    return callee is not None and reader.is_model(callee)


def relevant_names(listed: Listing) -> frozenset[str]:
    """The names whose graphs can reach a backward: those a backward's loss reads, those read
    by assignments to them, and those passed to a function of the module whose parameters are
    among them (names only, across scopes: a superset). Only these are followed on paths."""
    wanted: set[str] = set()
    for call in listed.of_type(cst.Call):
        assert isinstance(call, cst.Call)
        loss = backward_loss(call)
        if loss is not None:
            wanted |= names_in(loss)
    assignments = [
        (bound_here(node), value)
        for node in listed.of_type(cst.Assign, cst.AugAssign, cst.AnnAssign)
        if (value := getattr(node, "value", None)) is not None
    ]
    functions: dict[str, set[str]] = {}
    for node in listed.of_type(cst.FunctionDef):
        assert isinstance(node, cst.FunctionDef)
        functions.setdefault(node.name.value, set()).update(parameter_names(node))
    calls = [
        (parameters, call)
        for call in listed.of_type(cst.Call)
        if isinstance(call, cst.Call)
        and (parameters := functions.get(last_name(call.func) or "")) is not None
    ]
    while True:
        before = len(wanted)
        for targets, value in assignments:
            if targets & wanted:
                wanted |= names_in(value)
        for parameters, call in calls:
            if parameters & wanted:
                for arg in call.args:
                    wanted |= names_in(arg.value)
        if len(wanted) == before:
            return frozenset(wanted)


@dataclass(frozen=True)
class Mark:
    """A forward computation an event made unusable for a later backward (a backward freed
    what it saved; a step changed the weights it saved)."""

    element: Element
    site: Site  # the event
    guards: tuple[Guard, ...]


@dataclass(frozen=True)
class Followed:
    """A graph rule's value on one path."""

    names: Names = ()
    marks: frozenset[Mark] = frozenset()
    models: frozenset[str] = frozenset()  # models a backward gave gradients to

    def after(self, ran: frozenset[int]) -> Followed:
        """The value once the forward calls `ran` ran again: what the names and marks held of
        their last run is now an earlier run (marks of even earlier runs merge into it: gone)."""
        if not ran:
            return self
        kept = {m for m in self.marks if not (m.element[0] in ran and m.element[2] == 1)}
        marks = frozenset(
            replace(m, element=(m.element[0], m.element[1], 1)) if m.element[0] in ran else m
            for m in kept
        )
        return Followed(aged_names(self.names, ran), marks, self.models)

    def collected(self) -> Followed:
        """Without the marks of computations no name holds any more (nothing can reach them),
        and with one mark per computation: paths then differ only in what can matter."""
        if not self.marks:
            return self
        held = {element for _, graph in self.names for element in graph}
        kept: dict[Element, Mark] = {}
        for mark in sorted(self.marks, key=lambda m: m.site.seq):
            if mark.element in held and mark.element not in kept:
                kept[mark.element] = mark
        marks = frozenset(kept.values())
        return self if marks == self.marks else replace(self, marks=marks)


class GraphTracker(Tracker):
    """What the rules about graphs share: the names' graphs followed along paths."""

    joins_where_paths_meet = True

    def __init__(self, context: Context, is_forward: Callable[[str], str | None]):
        functions = context.function_names

        def unreadable(callee: str) -> bool:  # a helper of this module: its result is not read
            return callee.rsplit(".", 1)[-1] in functions

        knowledge = context.knowledge

        def is_model(callee: str) -> bool:
            return knowledge.model(callee) in knowledge.models

        self.context = context
        self.reader = GraphReader(is_forward, unreadable, context.graph_names, is_model)

    def start(self) -> Followed:
        return Followed()

    def assign(
        self, value: Followed, statement: cst.CSTNode, targets: set[str], at: At
    ) -> Followed:
        names, ran = after_binding(
            self.reader, value.names, statement, targets, at.names.resolve, at.grad_off
        )
        return replace(value.after(ran), names=names).collected()

    def join(self, values: list[Followed]) -> Followed:
        return Followed(
            joined([v.names for v in values]),
            common(v.marks for v in values),
            common(v.models for v in values),
        )

    def forget(self, value: Followed, names: set[str]) -> Followed:
        kept = dropped(value.names, names)
        return value if kept is value.names else replace(value, names=kept).collected()

    def backward_graph(
        self, value: Followed, call: cst.CSTNode | None, at: At
    ) -> tuple[Followed, Graph | None]:
        """The value once the backward `call` evaluated its loss, and the loss's graph (None:
        no loss, none known to go through a model, or computed with gradient recording off)."""
        loss = backward_loss(call) if isinstance(call, cst.Call) else None
        if loss is None:
            return value, None
        value = value.after(self.reader.forward_calls(loss))
        graph = self.reader.evaluate(loss, dict(value.names), at.names.resolve)
        if at.grad_off or not graph:
            return value, None
        return value, graph
