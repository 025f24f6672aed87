"""GL101 accumulated-loss: a loss that requires grad summed or collected across iterations."""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.calls import parameter_names
from gradlint.analysis.syntax import argument, code_of, dotted, last_name, names_in, walk, written
from gradlint.analysis.torch_api import backward_loss, grad_enabled
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.tree import Tree

CODE = "GL101"
DOCS = """## What it does
Finds a loss tensor that requires grad accumulated inside a loop into something that
outlives the iteration: `total_loss += loss`, `running = running + loss`,
`losses.append(loss)`, an attribute (`self.total += loss`), a dict entry (`stats["loss"] +=
loss`), or a method of a class of the module that adds its argument into an attribute
(`meter.update(loss, n)` of an `AverageMeter` whose `update` does `self.sum += val * n`,
for `meter = AverageMeter()` in the module). A loss is the receiver of a `.backward()` in the
same loop, or a name assigned from a criterion or `F.*_loss` call that the backward's loss is
computed from. The accumulator must not be rebound inside the loop (a list or dict made fresh
each iteration and summed for one backward is fine).

Not reported: `loss.item()`, `float(loss)`, `loss.detach()`, `loss.cpu().item()`, `+=` under
`torch.no_grad()` (the sum then records no graph), and evaluation loops without a backward.
`losses.append(loss)` is reported even under `torch.no_grad()`: the list holds the loss
tensor, and the tensor holds its graph.

## Why is this bad?
A loss that requires grad references the whole graph that computed it, with the activations
saved for backward. Adding it to a running total builds one ever-longer graph across
iterations (and a list keeps every iteration's graph): memory grows every step until the run
ends with an out-of-memory error, and `backward()` on the total would walk all of them.

## Example
```python
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
total_loss = 0.0
for step in range(10):
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    total_loss += loss
```

## Use instead
```python
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
total_loss = 0.0
for step in range(10):
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    total_loss += loss.item()
```

## Fix safety
For `+=` and `acc = acc + loss` the fix reads the loss as `loss.item()`; the accumulator then
holds a Python float instead of a tensor. It is safe when the accumulator starts as a number
literal and no method or attribute of it is used; it is unsafe when it starts as something
else; there is no fix when the code uses it as a tensor (`total.item()`). For `append` the
fix stores `loss.detach()`, the same values without the graph; it is offered only when no
backward in the function reads the list. For a method that keeps its argument the fix passes
`loss.detach()`: the method still receives a tensor, without the graph (safe).
"""

_DETACHING = frozenset({"item", "detach", "float", "int", "tolist", "numpy", "data"})


def check(context: Context) -> Iterator[Violation]:
    tree = context.tree
    callers = context.callers
    keepers = _keeping_methods(context)
    for loop in context.listed.of_type(cst.For, cst.While):
        assert isinstance(loop, (cst.For, cst.While))
        yield from _check_loop(context, tree, loop, callers, keepers)


@dataclass(frozen=True)
class _Keeper:
    """A method of a class of the module that adds one of its parameters into an attribute
    (`AverageMeter.update(self, val, n=1)` with `self.sum += val * n`)."""

    method: cst.FunctionDef
    kept: tuple[tuple[int, str], ...]  # (position among the call's arguments, name) of each
    attribute: str  # `self.sum`


def _keeping_methods(context: Context) -> dict[tuple[str, str], _Keeper]:
    """(instance name, method) -> what the method keeps, for the instances of the module's
    classes (`meter = AverageMeter()`, `self.losses = AverageMeter()`)."""
    classes: dict[str, dict[str, _Keeper]] = {}
    for node in context.listed.of_type(cst.ClassDef):
        assert isinstance(node, cst.ClassDef)
        for statement in node.body.body:
            if isinstance(statement, cst.FunctionDef):
                keeper = _keeper(statement)
                if keeper is not None:
                    classes.setdefault(node.name.value, {})[statement.name.value] = keeper
    found: dict[tuple[str, str], _Keeper] = {}
    if not classes:
        return found
    for node in context.listed.of_type(cst.Assign):
        assert isinstance(node, cst.Assign)
        made = last_name(node.value.func) if isinstance(node.value, cst.Call) else None
        for target in node.targets:
            name = dotted(target.target)
            if name is not None and made in classes:
                for method, keeper in classes[made].items():
                    found[(name, method)] = keeper
    return found


def _keeper(method: cst.FunctionDef) -> _Keeper | None:
    names = parameter_names(method)
    if not names or names[0] != "self":
        return None
    parameters = {n: i for i, n in enumerate(names[1:])}
    for node in walk(method.body):
        found = _accumulation(node, parameters)
        if found is None or not found[0].startswith("self."):
            continue
        target, value, _ = found
        kept = tuple(sorted((parameters[n], n) for n in names_in(value) if n in parameters))
        if kept:
            return _Keeper(method, kept, target)
    return None


def _check_loop(
    context: Context,
    tree: Tree,
    loop: cst.For | cst.While,
    callers: dict[str, list[cst.Call]],
    keepers: dict[tuple[str, str], _Keeper],
) -> Iterator[Violation]:
    body = loop.body
    backwards = [n for n in walk(body) if isinstance(n, cst.Call) and backward_loss(n) is not None]
    if not backwards:
        return
    assigned = _assignments(body)
    losses: dict[str, cst.Call] = {}
    for backward in backwards:
        start = backward_loss(backward)
        receiver = dotted(start) if start is not None else None
        if receiver is None or receiver not in assigned:
            continue
        losses[receiver] = backward
        for source in _sources(receiver, assigned):
            if any(_is_criterion(v) for v in assigned.get(source, [])):
                losses.setdefault(source, backward)
    losses = {
        name: b for name, b in losses.items() if not any(_detaches(v) for v in assigned[name])
    }
    if not losses:
        return
    scope = _scope(tree, loop)
    for node in walk(body):
        enclosing = tree.loops(node)
        if not enclosing or enclosing[0] is not loop:
            continue  # an inner loop is checked on its own
        if isinstance(node, cst.Call) and keepers:
            kept = _kept_by_method(node, losses, keepers)
            if kept is not None:
                yield _kept_violation(context, node, losses, *kept)
                continue
        found = _accumulation(node, losses)
        if found is None:
            continue
        target, value, kind = found
        if any(target not in names_in(v) for v in assigned.get(target, [])):
            continue  # rebound every iteration: it does not outlive it
        if _base(target) != target and _base(target) in assigned:
            continue  # `stats["loss"]` of a dict made anew every iteration
        if kind != "append" and not grad_enabled(node, tree, callers, certainly=False):
            continue  # the sum records no graph
        loss = next(n for n in sorted(names_in(value)) if n in losses)
        yield _violation(context, scope, node, target, value, loss, losses[loss], kind)


def _kept_by_method(
    call: cst.Call, losses: dict[str, cst.Call], keepers: dict[tuple[str, str], _Keeper]
) -> tuple[_Keeper, cst.BaseExpression, str] | None:
    """`meter.update(loss, n)`: the keeper, the argument and the loss it passes."""
    if not isinstance(call.func, cst.Attribute):
        return None
    receiver = dotted(call.func.value)
    keeper = keepers.get((receiver or "", call.func.attr.value))
    if keeper is None:
        return None
    for position, parameter in keeper.kept:
        given = argument(call, position, parameter)
        if given is None or _detaches(given):
            continue
        loss = next((n for n in sorted(names_in(given)) if n in losses), None)
        if loss is not None:
            return keeper, given, loss
    return None


def _kept_violation(
    context: Context,
    call: cst.Call,
    losses: dict[str, cst.Call],
    keeper: _Keeper,
    given: cst.BaseExpression,
    loss: str,
) -> Violation:
    line = context.positions.of(losses[loss])[0]
    method = keeper.method.name.value
    where = context.positions.of(keeper.method)[0]
    message = (
        f"`{written(call)}` keeps `{loss}`, which requires grad (backward at line {line}): "
        f"`{method}` (line {where}) adds it into `{keeper.attribute}`, so "
        f"every iteration's graph stays alive and memory grows; pass `{loss}.item()`"
    )
    trail = (f"`{loss}.backward()` at line {line}", f"kept in `{keeper.attribute}` by `{method}`")
    new_value = _wrapped(given, loss, "detach")
    if new_value is None:
        return Violation(CODE, call, message, trail)

    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(given, new_value)
        return result if isinstance(result, cst.Module) else None

    # `.detach()` keeps the argument a tensor, so the method runs as before, without the graph
    return Violation(CODE, call, message, trail, Rewrite(f"Pass `{loss}.detach()`", apply))


def _base(target: str) -> str:
    """`stats` of `stats["loss"]`."""
    return target.split("[", 1)[0]


def _assignments(body: cst.CSTNode) -> dict[str, list[cst.BaseExpression]]:
    """name -> the values assigned to it in the body (plain `=` only)."""
    out: dict[str, list[cst.BaseExpression]] = {}
    for node in walk(body):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                name = dotted(target.target)
                if name is not None:
                    out.setdefault(name, []).append(node.value)
    return out


def _sources(name: str, assigned: dict[str, list[cst.BaseExpression]]) -> set[str]:
    """Names the loss is computed from, through the assignments of the loop body."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        for value in assigned.get(stack.pop(), []):
            for read in names_in(value):
                if read in assigned and read not in seen:
                    seen.add(read)
                    stack.append(read)
    return seen


def _is_criterion(value: cst.BaseExpression) -> bool:
    if not isinstance(value, cst.Call):
        return False
    name = (last_name(value.func) or "").lower()
    return name in ("criterion", "loss_fn", "loss_func") or name.endswith("_loss")


def _detaches(value: cst.BaseExpression) -> bool:
    for node in walk(value):
        if isinstance(node, cst.Call) and last_name(node.func) in _DETACHING:
            return True
        if isinstance(node, cst.Attribute) and node.attr.value == "data":
            return True
    return False


def _accumulation(
    node: cst.CSTNode, losses: Container[str]
) -> tuple[str, cst.BaseExpression, str] | None:
    """(accumulator, value added, kind) for `acc += v`, `acc = acc + v`, `acc.append(v)`."""
    target: str | None = None
    value: cst.BaseExpression | None = None
    kind = ""
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
        target, value, kind = _target(node.target), node.value, "add"
    elif (
        isinstance(node, cst.Assign)
        and len(node.targets) == 1
        and isinstance(node.value, cst.BinaryOperation)
        and isinstance(node.value.operator, cst.Add)
    ):
        target = dotted(node.targets[0].target)
        left, right = node.value.left, node.value.right
        if target is not None and dotted(left) == target:
            value, kind = right, "self"
        elif target is not None and dotted(right) == target:
            value, kind = left, "self"
    elif (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "append"
        and len(node.args) == 1
    ):
        target, value, kind = dotted(node.func.value), node.args[0].value, "append"
    if target is None or value is None or target in losses:
        return None
    if _detaches(value) or not any(n in losses for n in names_in(value)):
        return None
    return target, value, kind


def _target(node: cst.BaseExpression) -> str | None:
    """`total`, `self.total`, or `stats["loss"]` (an entry of a dict or list named so)."""
    if isinstance(node, cst.Subscript) and dotted(node.value) is not None:
        return code_of(node)
    return dotted(node)


def _scope(tree: Tree, loop: cst.CSTNode) -> cst.CSTNode:
    for ancestor in tree.ancestors(loop):
        if isinstance(ancestor, (cst.FunctionDef, cst.Module)):
            return ancestor
    return tree.module


def _violation(
    context: Context,
    scope: cst.CSTNode,
    node: cst.CSTNode,
    target: str,
    value: cst.BaseExpression,
    loss: str,
    backward: cst.Call,
    kind: str,
) -> Violation:
    line = context.positions.of(backward)[0]
    how = "collects" if kind == "append" else "adds up"
    message = (
        f"`{target}` {how} `{loss}`, which requires grad (backward at line {line}): every "
        f"iteration's graph stays alive and memory grows; use "
        f"`{loss}.{'detach()' if kind == 'append' else 'item()'}`"
    )
    trail = (f"`{loss}.backward()` at line {line}", f"accumulated into `{target}`")
    method = "detach" if kind == "append" else "item"
    if kind == "append" and _reaches_backward(scope, target):
        return Violation(CODE, node, message, trail)
    accumulator = "list" if kind == "append" else _accumulator_kind(scope, target)
    new_value = _wrapped(value, loss, method)
    if new_value is None or accumulator == "tensor":
        return Violation(CODE, node, message, trail)
    safe = accumulator in ("list", "number")

    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(value, new_value)
        return result if isinstance(result, cst.Module) else None

    fix = Rewrite(f"Accumulate `{loss}.{method}()`", apply, "safe" if safe else "unsafe")
    return Violation(CODE, node, message, trail, fix)


def _wrapped(value: cst.BaseExpression, loss: str, method: str) -> cst.BaseExpression | None:
    """`loss` -> `loss.item()` when the value is the loss or a sum/product with it as a term."""

    def call(name: cst.BaseExpression) -> cst.BaseExpression:
        return cst.Call(func=cst.Attribute(value=name, attr=cst.Name(method)))

    if isinstance(value, cst.Name) and value.value == loss:
        return call(value)
    if isinstance(value, cst.BinaryOperation):
        if isinstance(value.left, cst.Name) and value.left.value == loss:
            return value.with_changes(left=call(value.left))
        if isinstance(value.right, cst.Name) and value.right.value == loss:
            return value.with_changes(right=call(value.right))
    return None


def _reaches_backward(scope: cst.CSTNode, target: str) -> bool:
    for node in walk(scope):
        if isinstance(node, cst.Call) and last_name(node.func) == "backward":
            if any(n == target for n in names_in(node)):
                return True
    return False


def _accumulator_kind(scope: cst.CSTNode, target: str) -> str:
    """ "number" when it starts as a number literal, "tensor" when the code uses a method or
    attribute of it (`acc.item()`), else "unknown"."""
    starts = False
    for node in walk(scope):
        if isinstance(node, cst.Assign) and any(dotted(t.target) == target for t in node.targets):
            if isinstance(node.value, (cst.Integer, cst.Float)):
                starts = True
        if isinstance(node, cst.Attribute) and dotted(node.value) == target:
            return "tensor"
    return "number" if starts else "unknown"


RULE = Rule(
    code=CODE,
    name="accumulated-loss",
    summary="A loss that requires grad is accumulated across iterations: every graph stays alive",
    fixable=True,
    triggers=("backward(",),
    docs=DOCS,
    check=check,
)
