"""GL109 leaf-updated-in-place: an in-place update of a leaf that requires grad, with grad on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from gradlint.analysis.syntax import Listing, dotted, names_in, walk
from gradlint.analysis.torch_api import (
    grad_enabled,
    makes_leaf,
    torch_no_grad_spelling,
)
from gradlint.fixes import wrap_in_with
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.tree import Tree

DOCS = """## What it does
Finds in-place updates of a leaf tensor that requires grad while gradient recording is on:
`w -= lr * w.grad`, `w.sub_(...)`, `w.add_(...)`, `w.zero_()`, `w[0] = 1.0`, where `w` is
created in the module with `requires_grad=True` (or `.requires_grad_()`, or as an
`nn.Parameter`), or is the variable of a loop over `model.parameters()` (or a list of such
leaves) whose update reads its `.grad`. Updates inside `with torch.no_grad():`,
`torch.inference_mode()`, `torch.set_grad_enabled(False)` or a function decorated with
`@torch.no_grad()` are fine, and so are updates in a function gradlint cannot see called, or
called under `no_grad`. A name that is also assigned something else (`w = w - lr * w.grad`
makes `w` a non-leaf) is not reported.

`w.data -= ...` is not this rule's (see GL108), nor is `w = w - lr * w.grad`, which raises
nothing but replaces the leaf by a non-leaf whose `.grad` stays None.

## Why is this bad?
Autograd refuses it: RuntimeError "a leaf Variable that requires grad is being used in an
in-place operation". An update of a parameter is not part of the computation to
differentiate, so it must run with gradient recording off.

## Example
```python
w = torch.randn(3, requires_grad=True)
for x, y in data:
    loss = ((x @ w - y) ** 2).mean()
    loss.backward()
    w -= 0.1 * w.grad
    w.grad.zero_()
```

## Use instead
```python
w = torch.randn(3, requires_grad=True)
for x, y in data:
    loss = ((x @ w - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
    w.grad.zero_()
```

## Fix safety
The fix wraps the update statement in `with torch.no_grad():` (consecutive updates of such
leaves together). It is safe: the statement raises without it, and under `no_grad` it does
exactly the update it spells.
"""

_IN_PLACE = frozenset(
    {
        "sub_",
        "add_",
        "mul_",
        "div_",
        "addcmul_",
        "addcdiv_",
        "copy_",
        "zero_",
        "fill_",
        "clamp_",
        "clamp_min_",
        "clamp_max_",
        "clip_",
        "normal_",
        "uniform_",
        "lerp_",
        "neg_",
        "pow_",
        "sqrt_",
        "exp_",
        "masked_fill_",
        "index_add_",
        "scatter_",
        "scatter_add_",
        "fill_diagonal_",
    }
)


def check(context: Context) -> Iterator[Violation]:
    if "set_grad_enabled(False)" in context.text.replace(" ", ""):
        return  # gradient recording may be off for the whole script
    leaves = _leaves(context.listed)
    tree = context.tree
    callers = context.callers
    found: list[tuple[cst.BaseSmallStatement, str, cst.SimpleStatementLine]] = []
    for node in walk(context.module):
        if not isinstance(node, cst.SimpleStatementLine):
            continue
        for small in node.body:
            tensor = _updated_leaf(small, leaves, tree)
            if tensor is not None and grad_enabled(small, tree, callers, certainly=True):
                found.append((small, tensor, node))
    flagged = {id(line) for _, _, line in found}
    spelling = torch_no_grad_spelling(context.module)
    for small, tensor, line in found:
        run = _run(tree, line, flagged)
        fix = None
        if run and spelling is not None:
            fix = Rewrite(f"Wrap the update in `with {spelling}:`", _wrapper(run, spelling))
        yield Violation(
            RULE.code,
            small,
            f"`{_source(small)}` updates `{tensor}`, a leaf tensor that requires grad, in place "
            'while gradient recording is on: autograd raises "a leaf Variable that requires '
            'grad is being used in an in-place operation"; wrap it in `with torch.no_grad():`',
            trail=(f"in-place update of `{tensor}`",),
            fix=fix,
        )


def _wrapper(
    run: list[cst.BaseStatement], spelling: str
) -> Callable[[cst.Module], cst.Module | None]:
    return lambda module: wrap_in_with(module, run, spelling)


def _source(node: cst.CSTNode) -> str:
    text = cst.Module([]).code_for_node(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _leaves(listed: Listing) -> set[str]:
    """Names every assignment of which makes a leaf that requires grad."""
    made: set[str] = set()
    other: set[str] = set()
    binders = (cst.Assign, cst.AnnAssign, cst.For, cst.CompFor, cst.Param, cst.AsName)
    for node in listed.of_type(*binders):
        pairs: list[tuple[cst.BaseExpression, cst.BaseExpression | None]] = []
        if isinstance(node, cst.Assign):
            pairs = [(t.target, node.value) for t in node.targets]
        elif isinstance(node, cst.AnnAssign):
            pairs = [(node.target, node.value)]
        elif isinstance(node, (cst.For, cst.CompFor)):
            pairs = [(node.target, None)]
        elif isinstance(node, (cst.Param, cst.AsName)) and isinstance(node.name, cst.Name):
            other.add(node.name.value)
        for target, value in pairs:
            if isinstance(target, cst.Subscript):
                continue  # `w[0] = ...` writes into `w`, it does not rebind it
            name = dotted(target)
            if name is None:
                other.update(n for n in names_in(target) if "." not in n)
            elif value is not None and makes_leaf(value):
                made.add(name)
            else:
                other.add(name)
    return made - other


def _updated_leaf(small: cst.BaseSmallStatement, leaves: set[str], tree: Tree) -> str | None:
    """The leaf that the statement updates in place, if it updates one."""
    target: cst.BaseExpression | None = None
    reads: cst.CSTNode = small
    if isinstance(small, cst.AugAssign):
        target = small.target
    elif isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        if not isinstance(target, cst.Subscript):
            return None
    elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
        func = small.value.func
        if isinstance(func, cst.Attribute) and func.attr.value in _IN_PLACE:
            target = func.value
    if target is None:
        return None
    if isinstance(target, cst.Subscript):
        target = target.value
    name = dotted(target)
    if name is None:
        return None
    if name in leaves and not tree.shadowed(small, name):
        return name
    if f"{name}.grad" in names_in(reads) and _loops_over_leaves(small, name, leaves, tree):
        return name
    return None


def _loops_over_leaves(node: cst.CSTNode, name: str, leaves: set[str], tree: Tree) -> bool:
    """`for p in model.parameters():` / `for name, p in m.named_parameters():` / `for p in [w, b]`."""
    for ancestor in tree.ancestors(node):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
            return False
        if not isinstance(ancestor, cst.For):
            continue
        target: cst.BaseExpression = ancestor.target
        if isinstance(target, cst.Tuple) and target.elements:
            target = target.elements[-1].value
        if dotted(target) != name:
            continue
        source = ancestor.iter
        if isinstance(source, cst.Call) and isinstance(source.func, cst.Attribute):
            return source.func.attr.value in ("parameters", "named_parameters")
        if isinstance(source, (cst.List, cst.Tuple)):
            return all(dotted(e.value) in leaves for e in source.elements)
        return False
    return False


def _run(tree: Tree, line: cst.SimpleStatementLine, flagged: set[int]) -> list[cst.BaseStatement]:
    """The flagged statement lines next to `line` in its block, in order."""
    parent = tree.parent.get(id(line))
    if not isinstance(parent, (cst.IndentedBlock, cst.Module)):
        return []
    body = list(parent.body)
    index = next(i for i, s in enumerate(body) if s is line)
    start = index
    while start > 0 and id(body[start - 1]) in flagged:
        start -= 1
    end = index
    while end + 1 < len(body) and id(body[end + 1]) in flagged:
        end += 1
    return body[start : end + 1]


RULE = Rule(
    code="GL109",
    name="leaf-updated-in-place",
    summary="An in-place update of a leaf tensor that requires grad, outside `torch.no_grad()`",
    fixable=True,
    triggers=(("requires_grad", "backward("), ("Parameter", "backward("), ("parameters(", ".grad")),
    check=check,
    docs=DOCS,
)
