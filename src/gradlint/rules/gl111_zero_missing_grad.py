"""GL111 zero-missing-grad: `x.grad.zero_()` before any backward has given `x` a gradient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.events import Backward, Reset, Site
from gradlint.analysis.index import REACHES_BACKWARD
from gradlint.analysis.syntax import dotted, last_name, walk
from gradlint.analysis.torch_api import from_torch, makes_leaf
from gradlint.analysis.tracking import At, Opaque, PathEvent, Report, Tracker, common
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL111"
DOCS = """## What it does
Finds `x.grad.zero_()` (also `x.grad.data.zero_()`) that runs, on some path, before any
`backward()` has populated `x.grad`, where `x` was made on that path as a leaf that requires
grad (`torch.randn(..., requires_grad=True)`, `nn.Parameter(...)`, `Variable(...,
requires_grad=True)`), or stands for the parameters of a model constructed there (`for p in
model.parameters()`, a list `[w, b]` handed to a helper that loops over it). Typically the
reset stands at the top of the training loop, at the start of an accumulation window, or in
a `zero_grads(params)` helper called before the iteration's `loss.backward()`.

Paths are those of the path analysis: helpers of the module are followed with their
parameters bound, and a reset under a condition (`if step % k == 0:`) counts on the paths
where it runs. Not reported: a reset under a condition that reads `.grad` (`if x.grad is not
None:`), after any `backward()` on the path (it may reach the tensor), after an assignment to
`x.grad`, or after a call gradlint cannot see into that receives the tensor or the model.

## Why is this bad?
A tensor's `.grad` is None until the first `backward()` reaches it, so the first reset raises
"AttributeError: 'NoneType' object has no attribute 'zero_'". Code that survives because the
reset sits behind some other condition breaks as soon as that condition changes.

## Example
```python
import torch

w = torch.randn(3, requires_grad=True)
for step in range(10):
    w.grad.zero_()
    loss = (w**2).sum()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
```

## Use instead
```python
import torch

w = torch.randn(3, requires_grad=True)
for step in range(10):
    w.grad = None
    loss = (w**2).sum()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
```

## Fix safety
The fix replaces the statement with `x.grad = None`. The next `backward()` then stores a
fresh gradient, which equals zero plus the gradient, so updates are unchanged, and a None
`.grad` never fails. It is safe when nothing between the reset and the next `backward()`
reads `x.grad` or steps an optimizer (which skips a parameter whose `.grad` is None, where a
zero gradient still moves it with momentum or weight decay); otherwise it is unsafe.
`if x.grad is not None: x.grad.zero_()` is an equally correct hand-written alternative.
"""


@dataclass(frozen=True)
class _Missing:
    """A tensor (or a model's parameters) whose `.grad` is surely None on the path."""

    owner: str
    made: Site  # where it was made


class _ZeroMissing(Tracker):
    code = CODE

    def __init__(self, context: Context):
        self.context = context

    def start(self) -> frozenset[_Missing]:
        return frozenset()

    def assign(
        self, value: frozenset[_Missing], statement: cst.CSTNode, targets: set[str], at: At
    ) -> frozenset[_Missing]:
        kept = frozenset(m for m in value if m.owner not in targets)
        made = getattr(statement, "value", None)
        if not isinstance(statement, cst.Assign) or made is None:
            return kept
        if not (_fresh_leaf(made) or _is_construction(made)):
            return kept
        site = self.context.recognizer.site(at.names, statement)
        return kept | {_Missing(t, site) for t in targets if "[" not in t}

    def event(self, value: frozenset[_Missing], event: PathEvent, at: At) -> frozenset[_Missing]:
        if not value:
            return value
        if isinstance(event, Backward):
            return frozenset()  # it may reach any of them
        if isinstance(event, Opaque):
            return frozenset(m for m in value if m.owner not in event.received)
        if not isinstance(event, Reset):
            return value
        owners = set(event.tensors) | set(event.models)
        if event.writes:
            return frozenset(m for m in value if m.owner not in owners)
        if not _reads_grad(event.site.node) or any(".grad" in text for text, _ in at.guards):
            return value  # `p.grad = None`, or under `if p.grad is not None:`
        for missing in value:
            if missing.owner in owners:
                key = (id(event.site.node),)
                at.report(Report(self.code, key, (missing, event.site), (missing.made.seq,)))
        return value

    def join(self, values: list[frozenset[_Missing]]) -> frozenset[_Missing]:
        return common(values)

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in reports:
            missing, reset = report.data
            if isinstance(reset.node, cst.Call):
                yield _violation(self.context, reset.node, missing)


def _reads_grad(node: cst.CSTNode | None) -> bool:
    """`x.grad.zero_()` / `x.grad.data.zero_()`: a reset that needs `.grad` to exist."""
    if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Attribute):
        return False
    chain = dotted(node.func.value) or ""
    return (
        node.func.attr.value == "zero_"
        and not node.args
        and (chain.endswith(".grad") or chain.endswith(".grad.data"))
    )


def _violation(context: Context, call: cst.Call, missing: _Missing) -> Violation:
    statement = context.tree.parent.get(id(call))
    assert isinstance(call.func, cst.Attribute)
    chain = dotted(call.func.value) or ""
    tensor = chain[: chain.index(".grad")]
    at = context.positions.of(call)
    message = (
        f"`{chain}.zero_()` runs before any backward has given `{tensor}` a gradient: "
        f"`{tensor}.grad` is None here and the call raises AttributeError; "
        f"write `{tensor}.grad = None` or guard it with `if {tensor}.grad is not None:`"
    )
    trail = [
        f"`{missing.owner}` created at line {missing.made.line}",
        f"`{chain}.zero_()` at line {at[0]}",
    ]
    scope = context.tree.function(call) or context.module
    later_backward = _next_backward(context, scope, at)
    if later_backward is not None:
        trail.append(f"first backward at line {context.positions.of(later_backward)[0]}")
    if not isinstance(statement, cst.Expr):
        return Violation(CODE, call, message, tuple(trail))
    safe = later_backward is not None and not _reads_between(
        context, scope, at, context.positions.of(later_backward), tensor, call
    )
    replacement = cst.Assign(
        targets=[
            cst.AssignTarget(target=cst.Attribute(value=_name_of(tensor), attr=cst.Name("grad")))
        ],
        value=cst.Name("None"),
    )

    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(statement, replacement)
        return result if isinstance(result, cst.Module) else None

    fix = Rewrite(f"Replace with `{tensor}.grad = None`", apply, "safe" if safe else "unsafe")
    return Violation(CODE, call, message, tuple(trail), fix)


def _name_of(dotted_name: str) -> cst.BaseExpression:
    head, *rest = dotted_name.split(".")
    node: cst.BaseExpression = cst.Name(head)
    for part in rest:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _fresh_leaf(value: cst.BaseExpression) -> bool:
    """A tensor torch makes anew that requires grad: its `.grad` is None until a backward."""
    return makes_leaf(value) and from_torch(value)


def _is_construction(value: cst.BaseExpression) -> bool:
    """`Net()`, `nn.Linear(3, 1)`, `nn.Sequential(...)`, possibly followed by `.to(device)`."""
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in ("to", "cuda", "double", "float")
    ):
        value = value.func.value
    if not isinstance(value, cst.Call):
        return False
    name = last_name(value.func) or ""
    return name[:1].isupper()


def _next_backward(context: Context, scope: cst.CSTNode, at: tuple[int, int]) -> cst.Call | None:
    for node in walk(scope):
        if (
            isinstance(node, cst.Call)
            and last_name(node.func) == "backward"
            and context.positions.of(node) > at
        ):
            return node
    return None


def _reads_between(
    context: Context,
    scope: cst.CSTNode,
    start: tuple[int, int],
    end: tuple[int, int],
    tensor: str,
    reset: cst.Call,
) -> bool:
    """Whether `tensor.grad` is read, or an optimizer steps, between the reset and the backward."""
    for node in walk(scope):
        if not start < context.positions.of(node) < end or node is reset:
            continue
        if isinstance(node, cst.Call) and last_name(node.func) == "step":
            return True
        if isinstance(node, (cst.Attribute, cst.Name)) and dotted(node) == f"{tensor}.grad":
            return True
    return False


RULE = Rule(
    code=CODE,
    name="zero-missing-grad",
    summary="`x.grad.zero_()` before any backward has populated `x.grad`: AttributeError on None",
    fixable=True,
    triggers=((REACHES_BACKWARD, ("grad.zero_(", "grad.data.zero_(")),),
    docs=DOCS,
    tracker=_ZeroMissing,
)
