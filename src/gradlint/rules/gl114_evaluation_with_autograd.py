"""GL114 evaluation-with-autograd: an evaluation loop over a trained model with autograd on."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.syntax import (
    assigned_targets,
    bound_here,
    dotted,
    last_name,
    names_in,
    walk,
)
from gradlint.analysis.torch_api import (
    BACKWARD_FUNCTIONS,
    backward_loss,
    grad_enabled,
    torch_no_grad_spelling,
)
from gradlint.fixes import wrap_in_with
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL114"
DOCS = """## What it does
Finds a loop that runs the forward of a model the module trains (a model an optimizer of the
module is built on) and neither backpropagates nor updates anything, with gradient recording
surely on at that forward: not under `torch.no_grad()` / `torch.inference_mode()` /
`torch.set_grad_enabled(False)`, not in a `@torch.no_grad()` function, and not in a function
that every caller in view calls under one of them. Typically a validation or test loop that
computes outputs and metrics.

Not reported: loops that touch gradients (`backward`, `.step()`, `zero_grad`, `.grad`,
`requires_grad`, `torch.autograd.grad`: saliency maps and adversarial examples need input
gradients), loops whose results a backward later reads (losses summed over a loop and
backpropagated once, or returned to a caller that backpropagates them: a differentiable
rollout), loops that call a function of the module (it may train), and functions
no code in view calls (how they are called is not known).

## Why is this bad?
With autograd on, every forward records a graph and keeps the activations its backward would
need. An evaluation loop never calls backward, so that memory and time buy nothing: evaluation
runs slower and can run out of memory on batch sizes that training handles; and metrics that
keep the outputs (`outputs.append(logits)`) keep every batch's graph alive.

## Example
```python
import torch

model = torch.nn.Linear(8, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in train_loader:
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
correct = 0
for x, y in test_loader:
    correct += (model(x).argmax(1) == y).sum().item()
```

## Use instead
```python
import torch

model = torch.nn.Linear(8, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in train_loader:
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
correct = 0
with torch.no_grad():
    for x, y in test_loader:
        correct += (model(x).argmax(1) == y).sum().item()
```

## Fix safety
The fix wraps the loop in `with torch.no_grad():`. It is safe: the loop reads no gradient and
nothing backpropagates through what it computes (both are conditions of the rule); the outputs
it keeps no longer carry a graph, which is the point.
"""

_COLLECTING = frozenset({"append", "extend", "add", "update"})
# calls and attributes that mean the loop works with gradients
_GRADIENT_WORDS = frozenset(
    {
        *BACKWARD_FUNCTIONS,
        "step",
        "zero_grad",
        "grad",
        "requires_grad",
        "requires_grad_",
        "retain_grad",
        "register_hook",
        "enable_grad",
    }
)


def check(context: Context) -> Iterator[Violation]:
    knowledge = context.knowledge
    trained = {m for link in knowledge.links.values() if link for m in link.models}
    if not trained:
        return
    functions = context.function_names
    reported: list[cst.CSTNode] = []
    for loop in context.listed.of_type(cst.For, cst.While):
        assert isinstance(loop, (cst.For, cst.While))
        if any(_inside(context, loop, outer) for outer in reported):
            continue
        model = _evaluates(context, loop, trained, functions)
        if model is None:
            continue
        reported.append(loop)
        yield _violation(context, loop, model)


def _evaluates(
    context: Context, loop: cst.For | cst.While, trained: set[str], functions: frozenset[str]
) -> str | None:
    """The trained model whose forward the loop runs, if the loop is an evaluation loop."""
    knowledge = context.knowledge
    model = None
    for node in walk(loop):
        if isinstance(node, cst.Attribute) and node.attr.value in _GRADIENT_WORDS:
            return None
        if isinstance(node, cst.Arg) and node.keyword and node.keyword.value in _GRADIENT_WORDS:
            return None  # `torch.zeros(n, requires_grad=True)`
        if isinstance(node, cst.Name) and node.value in ("grad", "enable_grad"):
            return None
        if not isinstance(node, cst.Call):
            continue
        callee = dotted(node.func)
        if callee is None:
            continue
        if last_name(node.func) in functions:
            return None  # a function of the module: it may train
        if model is None and knowledge.model(callee) in trained:
            if grad_enabled(node, context.tree, context.callers, certainly=True):
                model = knowledge.model(callee)  # a forward that records a graph
    if model is None or _feeds_a_later_backward(context, loop):
        return None
    return model


def _feeds_a_later_backward(context: Context, loop: cst.For | cst.While) -> bool:
    """Whether a backward after the loop, in the same function, reads what the loop computed
    (`total = total + model(x).sum()` in the loop, `total.backward()` after it)."""
    produced = set(assigned_targets(loop.body))
    for node in walk(loop.body):
        if isinstance(node, cst.Call) and last_name(node.func) in _COLLECTING:
            receiver = node.func.value if isinstance(node.func, cst.Attribute) else None
            name = dotted(receiver) if receiver is not None else None
            if name is not None:
                produced.add(name)
    scope = context.tree.function(loop) or context.module
    end = context.positions.of(loop.body)  # the loop's own statements start here
    after = [
        node
        for node in walk(scope)
        if isinstance(node, (cst.Call, cst.Assign, cst.AugAssign))
        and context.positions.of(node) > end
        and not any(a is loop for a in context.tree.ancestors(node))
    ]
    read: set[str] = set()
    for node in after:
        if isinstance(node, cst.Call):
            loss = backward_loss(node)
            if loss is not None:
                read |= names_in(loss)
    changed = True
    while changed:  # through the assignments after the loop: `loss = sum(losses)`
        changed = False
        for node in after:
            if isinstance(node, (cst.Assign, cst.AugAssign)) and bound_here(node) & read:
                new = names_in(node.value) - read
                if new:
                    read |= new
                    changed = True
    if produced & read:
        return True
    function = context.tree.function(loop)
    if function is None or not any(
        isinstance(node, cst.Return) and node.value is not None and names_in(node.value) & produced
        for node in walk(function.body)
    ):
        return False
    # returned: a caller may backpropagate through it (`loss = env.rollout(policy).mean()`)
    for call in context.callers.get(function.name.value, ()):
        statement = context.tree.statement(call)
        if statement is not None and assigned_targets(statement) & context.graph_names:
            return True
        if any(
            isinstance(a, cst.Call) and backward_loss(a) is not None
            for a in context.tree.ancestors(call)
        ):
            return True
    return False


def _inside(context: Context, node: cst.CSTNode, outer: cst.CSTNode) -> bool:
    return any(a is outer for a in context.tree.ancestors(node))


def _violation(context: Context, loop: cst.For | cst.While, model: str) -> Violation:
    line = context.positions.of(loop)[0]
    message = (
        f"this loop runs `{model}` with gradient recording on and never calls backward: every "
        f"batch builds a graph and keeps its activations for nothing; run it under "
        f"`with torch.no_grad():` (or `torch.inference_mode()`)"
    )
    spelling = torch_no_grad_spelling(context.module)
    fix = None
    if spelling is not None:
        fix = Rewrite(
            f"Wrap the loop at line {line} in `with {spelling}:`",
            lambda module: wrap_in_with(module, [loop], spelling),
        )
    return Violation(CODE, loop, message, (f"`{model}` forward in the loop at line {line}",), fix)


RULE = Rule(
    code=CODE,
    name="evaluation-with-autograd",
    summary="An evaluation loop over a trained model runs with autograd on: graphs for nothing",
    fixable=True,
    triggers=("backward(",),  # the model is trained in the same module
    docs=DOCS,
    check=check,
)
