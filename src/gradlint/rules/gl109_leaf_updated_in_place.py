"""GL109 leaf-updated-in-place: an in-place update of a leaf that requires grad, with grad on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from gradlint.analysis.index import REACHES_BACKWARD
from gradlint.analysis.syntax import Listing, dotted, names_in
from gradlint.analysis.torch_api import makes_leaf, torch_no_grad_spelling
from gradlint.analysis.tracking import At, InPlace, PathEvent, Report, Tracker
from gradlint.fixes import wrap_in_with
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.tree import Tree

DOCS = """## What it does
Finds in-place updates of a leaf tensor that requires grad while gradient recording is on:
`w -= lr * w.grad`, `w.sub_(...)`, `w.add_(...)`, `w.zero_()`, `w[0] = 1.0`, where `w` is
created in the module with `requires_grad=True` (or `.requires_grad_()`, or as an
`nn.Parameter`), or is the variable of a loop over `model.parameters()`, over an
optimizer's `param_groups`, or over a list of such leaves, whose update reads its `.grad`.
The rule follows the paths of the training code: an update in a helper is reported where the
helper's loop runs over what its caller gave it (`sgd_step([w, b], lr)`,
`apply_gradients(model.parameters())`) and recording is on at that call.

Updates inside `with torch.no_grad():`, `torch.inference_mode()`,
`torch.set_grad_enabled(False)` or a function decorated with `@torch.no_grad()` are fine, and
so are updates in a helper every call of which runs under one of those. Recording is taken to
be on in module code and in a function that calls `backward()` (the backward of a loss it
computes would raise otherwise); an update in a function that neither calls backward nor is
called on a training path is not judged. A name that is also assigned something else
(`w = w - lr * w.grad` makes `w` a non-leaf) is not reported.

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


class _InPlaceLeafUpdate(Tracker):
    """Reports an in-place write into a leaf that requires grad met with recording on; the
    value is unused: the path analysis knows the grad mode and what a loop variable or a
    helper's parameter stands for."""

    code = "GL109"

    def __init__(self, context: Context):
        self.context = context
        self.leaves = _leaves(context.listed)

    def event(self, value: None, event: PathEvent, at: At) -> None:
        if isinstance(event, InPlace) and not at.grad_off and not event.through_data:
            leaf = self._leaf(event, at)
            if leaf is not None and event.site.node is not None:
                at.report(Report(self.code, (id(event.site.node),), (event.site.node, leaf)))
        return value

    def _leaf(self, event: InPlace, at: At) -> str | None:
        """The leaf that requires grad the write goes into, as the user wrote it."""
        group = at.names.params.get(event.tensor)
        if group is not None:  # a loop variable, read as a hand-written optimizer step
            if not event.reads_grad:
                return None
            if group.models or group.optimizer or all(t in self.leaves for t in group.tensors):
                return event.tensor
            return None
        head = event.tensor.split(".", 1)[0]
        if head in at.names.aliases and not self.context.handed_over(at, event.tensor):
            return None  # a helper's parameter bound anew (`t = t.detach().clone()`)
        resolved = at.names.resolve(event.tensor)
        if resolved not in self.leaves:
            return None
        node = event.site.node
        if resolved == event.tensor and node is not None:
            if self.context.tree.shadowed(node, event.tensor):
                return None
        return event.tensor

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        if "set_grad_enabled(False)" in self.context.text.replace(" ", ""):
            return  # gradient recording may be off for the whole script
        tree = self.context.tree
        found = []
        for report in reports:
            node, tensor = report.data
            line = tree.statement(node)
            if isinstance(line, cst.SimpleStatementLine):
                found.append((node, tensor, line))
        flagged = {id(line) for _, _, line in found}
        spelling = torch_no_grad_spelling(self.context.module)
        for node, tensor, line in sorted(found, key=lambda f: self.context.positions.of(f[0])):
            run = _run(tree, line, flagged)
            fix = None
            if run and spelling is not None:
                fix = Rewrite(f"Wrap the update in `with {spelling}:`", _wrapper(run, spelling))
            yield Violation(
                RULE.code,
                node,
                f"`{_source(node)}` updates `{tensor}`, a leaf tensor that requires grad, in "
                'place while gradient recording is on: autograd raises "a leaf Variable that '
                'requires grad is being used in an in-place operation"; wrap it in `with '
                "torch.no_grad():`",
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
    # a backward, and a leaf: made to require grad, a parameter, or of a parameter group
    triggers=(
        (
            REACHES_BACKWARD,
            ("requires_grad", "Parameter", "Variable", "parameters(", "param_groups"),
        ),
    ),
    docs=DOCS,
    tracker=_InPlaceLeafUpdate,
)
