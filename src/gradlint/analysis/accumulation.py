"""Recognise values kept beyond the statement that computes them: a running sum
(`total += v`, `total = total + v`), a list that collects (`xs.append(v)`), and a method of a
class of the module that adds one of its arguments into an attribute (`meter.update(v, n)` of an
`AverageMeter` whose `update` does `self.sum += val * n`).

Recognition is syntactic; the path analysis meets the statements and calls on its paths, with
the names bound there (see `training_calls.TrainingCalls`).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.calls import parameter_names
from gradlint.analysis.syntax import Listing, argument, code_of, dotted, last_name, names_in, walk

# calls and attributes that give a value without its autograd graph
_DETACHING = frozenset({"item", "detach", "float", "int", "tolist", "numpy", "data"})


@dataclass(frozen=True)
class Kept:
    """`target` keeps `value` (kind "add": `+=`, "self": `t = t + v`, "append", "keep": a
    keeping method, whose `keeper` is named)."""

    target: str
    value: cst.BaseExpression
    kind: str
    keeper: Keeper | None = None


@dataclass(frozen=True)
class Keeper:
    """A method of a class of the module that adds one of its parameters into an attribute
    (`AverageMeter.update(self, val, n=1)` with `self.sum += val * n`)."""

    method: cst.FunctionDef
    kept: tuple[tuple[int, str], ...]  # (position among the call's arguments, name) of each
    attribute: str  # `self.sum`


def detaches(value: cst.BaseExpression) -> bool:
    """`loss.item()`, `float(loss)`, `loss.detach()`, `loss.data`: no graph comes along."""
    for node in walk(value):
        if isinstance(node, cst.Call) and last_name(node.func) in _DETACHING:
            return True
        if isinstance(node, cst.Attribute) and node.attr.value == "data":
            return True
    return False


_KEEPING = frozenset({cst.AugAssign, cst.Assign, cst.Call})


def kept_by(node: cst.CSTNode) -> Kept | None:
    """`acc += v`, `acc = acc + v` (or `v + acc`), `acc.append(v)`; `acc` may be an attribute
    or an entry (`stats["loss"]`)."""
    if type(node) not in _KEEPING:  # asked of every node of some scans: no ABC checks first
        return None
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
        target = _target(node.target)
        return Kept(target, node.value, "add") if target is not None else None
    if (
        isinstance(node, cst.Assign)
        and len(node.targets) == 1
        and isinstance(node.value, cst.BinaryOperation)
        and isinstance(node.value.operator, cst.Add)
    ):
        target = dotted(node.targets[0].target)
        left, right = node.value.left, node.value.right
        if target is not None and dotted(left) == target:
            return Kept(target, right, "self")
        if target is not None and dotted(right) == target:
            return Kept(target, left, "self")
        return None
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "append"
        and len(node.args) == 1
    ):
        target = dotted(node.func.value)
        return Kept(target, node.args[0].value, "append") if target is not None else None
    return None


def base(target: str) -> str:
    """`stats` of `stats["loss"]`."""
    return target.split("[", 1)[0]


def _target(node: cst.BaseExpression) -> str | None:
    """`total`, `self.total`, or `stats["loss"]` (an entry of a dict or list named so)."""
    if isinstance(node, cst.Subscript) and dotted(node.value) is not None:
        return code_of(node)
    return dotted(node)


class Keepers:
    """The keeping methods of the module's classes, by the instances the module makes."""

    def __init__(self, listed: Listing):
        self._listed = listed
        self._found: dict[tuple[str, str], Keeper] | None = None

    def kept(self, call: cst.Call, receiver: str) -> Kept | None:
        """`meter.update(loss, n)` of a keeper: what it keeps (the first argument given for a
        kept parameter), into `receiver.attribute`."""
        if self._found is None:
            self._found = _keeping_methods(self._listed)
        if not self._found or not isinstance(call.func, cst.Attribute):
            return None
        keeper = self._found.get((receiver, call.func.attr.value))
        if keeper is None:
            return None
        attribute = keeper.attribute.removeprefix("self.")
        for position, parameter in keeper.kept:
            given = argument(call, position, parameter)
            if given is not None:
                return Kept(f"{receiver}.{attribute}", given, "keep", keeper)
        return None


def _keeping_methods(listed: Listing) -> dict[tuple[str, str], Keeper]:
    """(instance name, method) -> what the method keeps, for the instances of the module's
    classes (`meter = AverageMeter()`, `self.losses = AverageMeter()`)."""
    classes: dict[str, dict[str, Keeper]] = {}
    for node in listed.of_type(cst.ClassDef):
        assert isinstance(node, cst.ClassDef)
        for statement in node.body.body:
            if isinstance(statement, cst.FunctionDef):
                keeper = _keeper(statement)
                if keeper is not None:
                    classes.setdefault(node.name.value, {})[statement.name.value] = keeper
    found: dict[tuple[str, str], Keeper] = {}
    if not classes:
        return found
    for node in listed.of_type(cst.Assign):
        assert isinstance(node, cst.Assign)
        made = last_name(node.value.func) if isinstance(node.value, cst.Call) else None
        for target in node.targets:
            name = dotted(target.target)
            if name is not None and made in classes:
                for method, keeper in classes[made].items():
                    found[(name, method)] = keeper
    return found


def _keeper(method: cst.FunctionDef) -> Keeper | None:
    names = parameter_names(method)
    if not names or names[0] != "self":
        return None
    parameters = {n: i for i, n in enumerate(names[1:])}
    for node in walk(method.body):
        found = kept_by(node)
        if found is None or not found.target.startswith("self.") or detaches(found.value):
            continue
        kept = tuple(sorted((parameters[n], n) for n in names_in(found.value) if n in parameters))
        if kept:
            return Keeper(method, kept, found.target)
    return None
