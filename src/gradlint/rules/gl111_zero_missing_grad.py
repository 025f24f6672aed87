"""GL111 zero-missing-grad: `x.grad.zero_()` before any backward has given `x` a gradient."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from gradlint.analysis.syntax import dotted, last_name, names_in, walk
from gradlint.analysis.torch_api import from_torch, makes_leaf
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL111"
DOCS = """## What it does
Finds `x.grad.zero_()` (also `x.grad.data.zero_()`) that runs before any `backward()` has
populated `x.grad`, where `x` is a tensor created in the same function (or module) with
`requires_grad=True`, or the loop variable of `for p in model.parameters()` for a model
constructed there. Typically the reset stands at the top of the training loop, before the
iteration's `loss.backward()`, or before the loop.

Not reported: a reset under any `if` (such as `if x.grad is not None:`), a reset after a
`backward()` (or an assignment to `x.grad`) between the tensor's creation and the reset, and
resets after a call of a function of the same module or a call that receives the tensor or
the model (it may run a backward).

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


def check(context: Context) -> Iterator[Violation]:
    resets = [n for n in walk(context.module) if isinstance(n, cst.Call) and _is_grad_zero(n)]
    if not resets:
        return
    local_functions = {n.name.value for n in walk(context.module) if isinstance(n, cst.FunctionDef)}
    for call in resets:
        violation = _check_reset(context, call, local_functions)
        if violation is not None:
            yield violation


def _is_grad_zero(node: cst.Call) -> bool:
    if not isinstance(node.func, cst.Attribute):
        return False
    chain = dotted(node.func.value) or ""
    return (
        node.func.attr.value == "zero_"
        and not node.args
        and (chain.endswith(".grad") or chain.endswith(".grad.data"))
        and chain.count(".") <= 2
    )


def _check_reset(context: Context, call: cst.Call, local_functions: set[str]) -> Violation | None:
    tree = context.tree
    statement = tree.parent.get(id(call))
    if not isinstance(statement, cst.Expr):
        return None
    assert isinstance(call.func, cst.Attribute)
    chain = dotted(call.func.value) or ""
    tensor = chain[: chain.index(".grad")]
    scope: cst.CSTNode = context.module
    for ancestor in tree.ancestors(call):
        if isinstance(ancestor, cst.If) and _is_main_guard(ancestor):
            continue
        if isinstance(ancestor, (cst.If, cst.Else, cst.Try, cst.Lambda, cst.ClassDef)):
            return None
        if isinstance(ancestor, cst.FunctionDef):
            scope = ancestor
            break
    created = _creation(context, scope, call, tensor)
    if created is None:
        return None
    creation, owner = created
    start = context.positions.of(creation)
    at = context.positions.of(call)
    between = [
        n
        for n in walk(scope)
        if start < context.positions.of(n) < at and isinstance(n, (cst.Call, cst.Assign))
    ]
    if any(_may_populate(n, tensor, owner, local_functions) for n in between):
        return None
    later_backward = _next_backward(context, scope, at)
    message = (
        f"`{chain}.zero_()` runs before any backward has given `{tensor}` a gradient: "
        f"`{tensor}.grad` is None here and the call raises AttributeError; "
        f"write `{tensor}.grad = None` or guard it with `if {tensor}.grad is not None:`"
    )
    trail = [f"`{owner}` created at line {start[0]}", f"`{chain}.zero_()` at line {at[0]}"]
    if later_backward is not None:
        trail.append(f"first backward at line {context.positions.of(later_backward)[0]}")
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


def _is_main_guard(node: cst.If) -> bool:
    return "__name__" in names_in(node.test)


def _creation(
    context: Context, scope: cst.CSTNode, call: cst.Call, tensor: str
) -> tuple[cst.CSTNode, str] | None:
    """The statement that made `tensor` a fresh leaf (or its model) in this scope, before `call`."""
    tree = context.tree
    for ancestor in tree.ancestors(call):
        if ancestor is scope:
            break
        if isinstance(ancestor, cst.For) and dotted(ancestor.target) == tensor:
            iterable = ancestor.iter
            if not (
                isinstance(iterable, cst.Call)
                and last_name(iterable.func) in ("parameters",)
                and isinstance(iterable.func, cst.Attribute)
            ):
                return None
            model = dotted(iterable.func.value)
            if model is None:
                return None
            made = _last_assignment(context, scope, model, call, _is_construction)
            return (made, model) if made is not None else None
    made = _last_assignment(context, scope, tensor, call, _fresh_leaf)
    return (made, tensor) if made is not None else None


def _name_of(dotted_name: str) -> cst.BaseExpression:
    head, *rest = dotted_name.split(".")
    node: cst.BaseExpression = cst.Name(head)
    for part in rest:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _last_assignment(
    context: Context,
    scope: cst.CSTNode,
    name: str,
    call: cst.Call,
    test: Callable[[cst.BaseExpression], bool],
) -> cst.CSTNode | None:
    at = context.positions.of(call)
    found = None
    for node in walk(scope):
        if isinstance(node, cst.Assign) and any(dotted(t.target) == name for t in node.targets):
            if context.positions.of(node) < at:
                found = node if test(node.value) else None
    return found


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


def _may_populate(node: cst.CSTNode, tensor: str, owner: str, local: set[str]) -> bool:
    """Whether a call or assignment between creation and reset may give the tensor a gradient."""
    if isinstance(node, cst.Assign):
        return any((dotted(t.target) or "").startswith(f"{tensor}.grad") for t in node.targets)
    assert isinstance(node, cst.Call)
    name = dotted(node.func) or ""
    if last_name(node.func) in ("backward", "manual_backward") or name in local:
        return True
    head = name.split(".")[0]
    if head in ("torch", "nn", "F", "np", "print", "range", "len", "enumerate"):
        return False
    return any(n in (tensor, owner) for a in node.args for n in names_in(a.value))


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
    triggers=("grad.zero_(", "grad.data.zero_("),
    docs=DOCS,
    check=check,
)
