"""GL101 accumulated-loss: a loss that requires grad summed or collected across iterations."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.syntax import dotted, last_name, names_in, walk
from gradlint.analysis.torch_api import backward_loss, callers_by_name, grad_enabled
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.tree import Tree

CODE = "GL101"
DOCS = """## What it does
Finds a loss tensor that requires grad accumulated inside a loop into a name that outlives the
iteration: `total_loss += loss`, `running = running + loss`, `losses.append(loss)`. A loss is
the receiver of a `.backward()` in the same loop, or a name assigned from a criterion or
`F.*_loss` call that the backward's loss is computed from. The accumulator must not be
rebound inside the loop (a list made fresh each iteration and summed for one backward is
fine).

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
backward in the function reads the list.
"""

_DETACHING = frozenset({"item", "detach", "float", "int", "tolist", "numpy", "data"})


def check(context: Context) -> Iterator[Violation]:
    tree = context.tree
    callers = callers_by_name(context.listed.of_type(cst.Call))
    for loop in context.listed.of_type(cst.For, cst.While):
        assert isinstance(loop, (cst.For, cst.While))
        yield from _check_loop(context, tree, loop, callers)


def _check_loop(
    context: Context,
    tree: Tree,
    loop: cst.For | cst.While,
    callers: dict[str, list[cst.Call]],
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
        found = _accumulation(node, losses)
        if found is None:
            continue
        target, value, kind = found
        if any(target not in names_in(v) for v in assigned.get(target, [])):
            continue  # rebound every iteration: it does not outlive it
        if kind != "append" and not grad_enabled(node, tree, callers, certainly=False):
            continue  # the sum records no graph
        loss = next(n for n in sorted(names_in(value)) if n in losses)
        yield _violation(context, scope, node, target, value, loss, losses[loss], kind)


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
    node: cst.CSTNode, losses: dict[str, cst.Call]
) -> tuple[str, cst.BaseExpression, str] | None:
    """(accumulator, value added, kind) for `acc += v`, `acc = acc + v`, `acc.append(v)`."""
    target: str | None = None
    value: cst.BaseExpression | None = None
    kind = ""
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
        target, value, kind = dotted(node.target), node.value, "add"
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
