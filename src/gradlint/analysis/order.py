"""Statement order inside one block, for the rules about the order of events in an iteration.

A block (a loop body, a function body, one branch of an if/else) is read as a straight line of
small statements: `with` bodies and the bodies of an `if` without `else` are spliced in, marked
with the `with`/`if` they sit under. Anything else (inner loops, `try`, if/else) is one opaque
step: the rules cannot order what happens inside it, so they stay silent when it matters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.syntax import argument, assigned_targets, children, dotted, last_name, walk
from gradlint.analysis.torch_api import Imports, disables_grad

# torch.nn.utils.clip_grad_norm_, nn.utils..., utils.clip_grad.clip_grad_value_, ...
_CLIP_PATH = re.compile(
    r"^(?:torch\.)?(?:nn\.)?utils(?:\.clip_grad)?\.clip_grad_(?:norm_?|value_)$"
)
_SCALER_CLASSES = frozenset({"GradScaler", "ShardedGradScaler"})


@dataclass(frozen=True)
class Step:
    """One small statement of a block in execution order (or an opaque compound statement)."""

    node: cst.CSTNode  # a small statement (Expr, Assign, ...) or an opaque compound statement
    line: cst.BaseStatement  # the statement line it sits on, or the compound statement itself
    conditions: tuple[cst.If, ...] = ()  # the ifs (without else) it runs under, outermost first
    contexts: tuple[cst.With, ...] = ()  # the withs it runs under, outermost first
    opaque: bool = False

    def calls(self) -> Iterator[cst.Call]:
        """The calls the step makes, outermost first."""
        for sub in walk(self.node):
            if isinstance(sub, cst.Call):
                yield sub

    def under_no_grad(self) -> bool:
        return any(disables_grad(w) for w in self.contexts)


def sequences(module: cst.Module) -> Iterator[list[Step]]:
    """Every block of the module as a straight line of steps."""
    pending: list[list[cst.BaseStatement]] = [list(module.body)]
    while pending:
        block = pending.pop()
        yield list(_flatten(block, (), ()))
        pending.extend(_inner_blocks(block))


def _inner_blocks(block: list[cst.BaseStatement]) -> Iterator[list[cst.BaseStatement]]:
    """The blocks that are read on their own: bodies of statements that are not spliced in."""
    for statement in block:
        if isinstance(statement, cst.With) or (
            isinstance(statement, cst.If) and statement.orelse is None
        ):
            yield from _inner_blocks(_block(statement.body))
        elif isinstance(statement, cst.If):
            yield from _branches(statement)
        elif isinstance(statement, (cst.For, cst.While, cst.FunctionDef, cst.ClassDef)):
            yield _block(statement.body)
            orelse = getattr(statement, "orelse", None)
            if isinstance(orelse, cst.Else):
                yield _block(orelse.body)
        elif isinstance(statement, cst.Try):
            yield _block(statement.body)
            for handler in statement.handlers:
                yield _block(handler.body)
            for extra in (statement.orelse, statement.finalbody):
                if extra is not None:
                    yield _block(extra.body)


def _branches(statement: cst.If) -> Iterator[list[cst.BaseStatement]]:
    yield _block(statement.body)
    orelse = statement.orelse
    if isinstance(orelse, cst.If):
        yield from _branches(orelse)
    elif isinstance(orelse, cst.Else):
        yield _block(orelse.body)


def _block(body: cst.BaseSuite) -> list[cst.BaseStatement]:
    return list(body.body) if isinstance(body, cst.IndentedBlock) else []


def _flatten(
    body: list[cst.BaseStatement], conditions: tuple[cst.If, ...], contexts: tuple[cst.With, ...]
) -> Iterator[Step]:
    for statement in body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                yield Step(small, statement, conditions, contexts)
        elif isinstance(statement, cst.With):
            yield from _flatten(_block(statement.body), conditions, (*contexts, statement))
        elif isinstance(statement, cst.If) and statement.orelse is None:
            yield from _flatten(_block(statement.body), (*conditions, statement), contexts)
        elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            continue  # a definition runs nothing
        else:
            yield Step(statement, statement, conditions, contexts, opaque=True)


def scalers(module: cst.Module) -> set[str]:
    """Names assigned from `GradScaler(...)` (torch.amp, torch.cuda.amp, torch.GradScaler)."""
    found: set[str] = set()
    for node in walk(module):
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            if last_name(node.value.func) in _SCALER_CLASSES:
                for target in node.targets:
                    name = dotted(target.target)
                    if name is not None:
                        found.add(name)
    return found


def is_clip(call: cst.Call, imports: Imports) -> bool:
    """A call of torch.nn.utils' clip_grad_norm_ / clip_grad_value_, under any import spelling
    (`nn.utils.clip_grad_norm_` is taken for torch's even where `nn` is not seen imported).

    `accelerator.clip_grad_norm_(...)` is not one: Accelerate unscales before clipping.
    """
    name = dotted(call.func)
    if name is None:
        return False
    qualified = imports.qualified(name)
    return bool(_CLIP_PATH.match(name) or (qualified and _CLIP_PATH.match(qualified)))


def clipped_parameters(call: cst.Call) -> cst.BaseExpression | None:
    return argument(call, 0, "parameters")


class _Replace(cst.CSTTransformer):
    """Replace one statement of a block (by identity) with a list of statements."""

    def __init__(self, old: cst.BaseStatement, new: list[cst.BaseStatement]):
        self.old = old
        self.new = new

    def _body(self, original: cst.CSTNode, updated: cst.CSTNode) -> list | None:
        originals = list(getattr(original, "body", ()))
        if not any(s is self.old for s in originals):
            return None
        out: list[cst.BaseStatement] = []
        for old, new in zip(originals, list(getattr(updated, "body", ()))):
            out.extend(self.new if old is self.old else [new])
        return out

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body = self._body(original, updated)
        return updated if body is None else updated.with_changes(body=body)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        body = self._body(original, updated)
        return updated if body is None else updated.with_changes(body=body)


def replace_statement(
    module: cst.Module, old: cst.BaseStatement, new: list[cst.BaseStatement]
) -> cst.Module | None:
    """The module with `old` replaced by `new` in its block (None if `old` is not found)."""
    transformer = _Replace(old, new)
    result = module.visit(transformer)
    return result if isinstance(result, cst.Module) and result is not module else None


def remove_statement(module: cst.Module, old: cst.BaseStatement) -> cst.Module:
    """The module without `old`; a block left empty gets `pass`."""
    return module.visit(_Remove(old))  # type: ignore[return-value]


class _Remove(cst.CSTTransformer):
    def __init__(self, old: cst.BaseStatement):
        self.old = old

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        originals = list(original.body)
        if not any(s is self.old for s in originals):
            return updated
        kept = [new for old, new in zip(originals, updated.body) if old is not self.old]
        return updated.with_changes(body=kept or [cst.SimpleStatementLine([cst.Pass()])])


# What a tensor's graph holds: the forward calls (by node id) that built it, and their models.
Graph = frozenset[tuple[int, str]]
UNKNOWN: Graph = frozenset({(0, "?")})  # built by code gradlint cannot read
# what goes through these carries no graph: a value read through them reaches no model
GRAPH_CUTS = frozenset({"detach", "item", "tolist", "numpy", "data"})


# keywords that say where or how a tensor is made, never what it is computed from
_PLACEMENT = frozenset({"device", "dtype", "generator", "layout", "memory_format"})
# methods whose arguments say where or in which type a tensor goes, not what it is computed from
_MOVES = frozenset({"to", "cuda", "cpu", "type", "half", "float", "double", "long", "int", "bool"})


class Graphs:
    """Which forward calls each local name's graph goes through, read along one block."""

    def __init__(self, is_forward: Callable[[str], str | None]):
        self.is_forward = is_forward  # callee -> model name, or None if not a forward
        self.names: dict[str, Graph] = {}

    def of(self, node: cst.CSTNode) -> Graph:
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in GRAPH_CUTS:
                return frozenset()
            found: set[tuple[int, str]] = set()
            callee = dotted(func)
            model = self.is_forward(callee) if callee is not None else None
            if model is not None:
                found.add((id(node), model))
            elif isinstance(func, cst.Attribute):
                found |= self.of(func.value)
                if func.attr.value in _MOVES:  # `x.to(device)`: the device joins no graph
                    return frozenset(found)
            for arg in node.args:
                if arg.keyword is None or arg.keyword.value not in _PLACEMENT:
                    found |= self.of(arg.value)
            return frozenset(found)
        if isinstance(node, cst.Name):
            return self.names.get(node.value, frozenset())
        if isinstance(node, cst.Attribute):
            if node.attr.value in GRAPH_CUTS:
                return frozenset()
            name = dotted(node)
            return self.names[name] if name in self.names else self.of(node.value)
        if isinstance(node, (cst.Lambda, cst.BaseComp)):
            return UNKNOWN
        found = set()
        for child in children(node):
            found |= self.of(child)
        return frozenset(found)

    def read(self, step: Step) -> None:
        """Update the names the step binds."""
        if step.opaque:
            for name in assigned_targets(step.node):
                self.names[name] = UNKNOWN
            return
        node = step.node
        if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)) and node.value is not None:
            graph = frozenset() if step.under_no_grad() else self.of(node.value)
            targets = (
                [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            )
            for target in targets:
                for name in _bound(target):
                    if isinstance(node, cst.AugAssign):
                        self.names[name] = self.names.get(name, frozenset()) | graph
                    else:
                        self.names[name] = graph
        else:
            for name in assigned_targets(node):  # walrus and the like
                self.names[name] = UNKNOWN


def _bound(target: cst.CSTNode) -> list[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _bound(e.value)]
    if isinstance(target, cst.StarredElement):
        return _bound(target.value)
    name = dotted(target)
    return [name] if name is not None else []


def compatible(first: Step, second: Step) -> bool:
    """Both steps run on the same pass: the conditions of one include the other's."""
    a, b = first.conditions, second.conditions
    return a == b[: len(a)] or b == a[: len(b)]
