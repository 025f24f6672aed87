"""GL115 unscaled-accumulation: gradient accumulated over k micro-batches, loss not divided by k."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.counters import residue_test
from gradlint.analysis.syntax import code_of, dotted, last_name, names_in, walk, written
from gradlint.analysis.torch_api import backward_loss
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL115"
DOCS = """## What it does
Finds a deliberate gradient-accumulation loop (the optimizer's `step()` and `zero_grad()` run
together only when `(i + 1) % k == 0`, with `i` the loop's counter and `k` a name or a number)
whose `backward()` takes a loss that is not divided by `k`: neither the loss (`loss / k`,
`loss /= k`, `loss * (1 / k)`) nor the gradients before the step (`p.grad /= k`,
`p.grad.div_(k)`) are scaled. The message says what `k` is.

Not reported: a loss computed by a function of the module or by a call that is given `k` (it
may divide inside, as Hugging Face's `training_step` does), a window whose body hands the
model or its parameters to another call (`scale_grads(model, world_size / num_tokens)`
normalizes by the token count instead), a loop that also steps on every pass (a delayed
update of another network, as in TD3, is not accumulation), Accelerate's `accumulate()` and
DeepSpeed engines (they scale for the user: they have no explicit window), and windows whose
`k` is not a name or a number.

## Why is this bad?
`backward()` adds each micro-batch's gradient into `.grad`. Without the division, the step
sees the sum of k gradients: k times the gradient of the same batch trained at once, so the
effective learning rate is k times larger than the one configured, and changing k changes the
training. Training goes on without an error, often unstable or diverging.

## Example
```python
import torch

model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
accumulation_steps = 4
for i, (x, y) in enumerate(loader):
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    if (i + 1) % accumulation_steps == 0:
        optimizer.step()
        optimizer.zero_grad()
```

## Use instead
```python
import torch

model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
accumulation_steps = 4
for i, (x, y) in enumerate(loader):
    loss = torch.nn.functional.mse_loss(model(x), y)
    (loss / accumulation_steps).backward()
    if (i + 1) % accumulation_steps == 0:
        optimizer.step()
        optimizer.zero_grad()
```

## Fix safety
The fix divides the loss by `k` in the `backward()` call: `(loss / k).backward()`. It is
unsafe: it changes the effective learning rate (by design, back to the configured one), so a
learning rate tuned with the bug must be tuned again.
"""


def check(context: Context) -> Iterator[Violation]:
    functions = context.function_names
    for loop in context.listed.of_type(cst.For, cst.While):
        assert isinstance(loop, (cst.For, cst.While))
        k = _window(loop, context.knowledge.models)
        if k is None:
            continue
        for statement in loop.body.body:  # backwards on every pass, at the body's top level
            for call in _backwards(statement):
                loss = backward_loss(call)
                if loss is None or _scaled(loop, loss, k, functions):
                    continue
                yield _violation(call, loss, k)


def _window(loop: cst.For | cst.While, models: set[str]) -> str | None:
    """`k` of `if (i + 1) % k == 0: optimizer.step(); optimizer.zero_grad()` in the loop's body,
    the window an accumulation loop steps in; None if there is none."""
    for statement in loop.body.body:
        if not isinstance(statement, cst.If) or statement.orelse is not None:
            continue
        window = residue_test(statement.test)
        if window is None or not window.equal:
            continue
        k = window.modulus
        if not (k.isidentifier() or k.replace(".", "").isidentifier() or k.isdigit()):
            continue
        if k.isdigit() and int(k) < 2:
            continue
        calls = [n for n in walk(statement.body) if isinstance(n, cst.Call)]
        if not {"step", "zero_grad"} <= {last_name(c.func) for c in calls}:
            continue
        outside = [
            n
            for other in loop.body.body
            if other is not statement
            for n in walk(other)
            if isinstance(n, cst.Call) and last_name(n.func) == "step"
        ]
        if outside:
            return None  # something steps on every pass: not an accumulation window
        if any(_may_rescale(c, models) for c in calls):
            return None  # `scale_grads(model, world_size / num_tokens)`: scaled another way
        return k
    return None


_WINDOW_CALLS = frozenset({"step", "zero_grad", "update", "unscale_"})


def _may_rescale(call: cst.Call, models: set[str]) -> bool:
    """A call in the window, other than the step, the reset and clipping, that is given the
    model or its parameters: it may rescale the gradients (by k, or by a token count)."""
    name = last_name(call.func) or ""
    if name in _WINDOW_CALLS or name.startswith("clip_grad"):
        return False
    return any(
        n in models or n.removesuffix(".parameters") in models
        for arg in call.args
        for n in names_in(arg.value)
    )


def _backwards(statement: cst.CSTNode) -> list[cst.Call]:
    if not isinstance(statement, cst.SimpleStatementLine):
        return []
    return [n for n in walk(statement) if isinstance(n, cst.Call) and backward_loss(n) is not None]


def _scaled(
    loop: cst.For | cst.While, loss: cst.BaseExpression, k: str, functions: frozenset[str]
) -> bool:
    """Whether the loss (or the gradient before the step) is divided by `k`, or may be."""
    if _divides(loss, k):
        return True
    name = dotted(loss)
    sources = {name} if name is not None else set()
    sources |= names_in(loss)
    for node in walk(loop.body):
        if isinstance(node, cst.Call) and last_name(node.func) in ("div_", "mul_"):
            if ".grad" in code_of(node.func) and _mentions(node, k):
                return True  # `p.grad.div_(k)` before the step
        if isinstance(node, cst.AugAssign) and ".grad" in code_of(node.target):
            if _mentions(node.value, k):
                return True  # `p.grad /= k`
        if isinstance(node, (cst.Assign, cst.AugAssign)):
            targets = (
                {dotted(t.target) for t in node.targets}
                if isinstance(node, cst.Assign)
                else {dotted(node.target)}
            )
            if not (targets & sources):
                continue
            if isinstance(node, cst.AugAssign) and isinstance(
                node.operator, (cst.DivideAssign, cst.MultiplyAssign)
            ):
                if k in names_in(node.value) or code_of(node.value) == k:
                    return True
            if _divides(node.value, k) or _may_divide(node.value, k, functions):
                return True
    return False


def _divides(value: cst.BaseExpression, k: str) -> bool:
    """`... / k`, `... * (1 / k)`, `... * 1.0 / k` somewhere in the expression."""
    for node in walk(value):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
            if code_of(node.right) == k or k in names_in(node.right):
                return True
    return False


def _may_divide(value: cst.BaseExpression, k: str, functions: frozenset[str]) -> bool:
    """A call of a function of the module, or one given `k`: it may divide inside."""
    for node in walk(value):
        if isinstance(node, cst.Call):
            if last_name(node.func) in functions or _mentions(node, k):
                return True
    return False


def _mentions(node: cst.CSTNode, k: str) -> bool:
    return k in names_in(node) or any(code_of(n) == k for n in walk(node))


def _violation(call: cst.Call, loss: cst.BaseExpression, k: str) -> Violation:
    loss_text = code_of(loss)
    message = (
        f"`{written(call)}` accumulates the full loss over `{k}` micro-batches before each step: "
        f"the update is `{k}` times the gradient of the same batch trained at once; divide the "
        f"loss by `{k}` before backward"
    )
    scaled = f"({loss_text}) / {k}" if not isinstance(loss, cst.Name) else f"{loss_text} / {k}"
    if isinstance(call.func, cst.Attribute) and call.func.value is loss:
        scaled = f"({scaled})"  # the receiver of `.backward()`

    def apply(module: cst.Module) -> cst.Module | None:
        new = cst.parse_expression(scaled)
        result = module.deep_replace(loss, new)
        return result if isinstance(result, cst.Module) else None

    return Violation(
        CODE,
        call,
        message,
        (f"window of `{k}` micro-batches", f"{written(call)} without `/ {k}`"),
        Rewrite(f"Divide the loss by `{k}` before backward", apply, "unsafe"),
    )


RULE = Rule(
    code=CODE,
    name="unscaled-accumulation",
    summary="Gradient accumulated over k micro-batches with the loss not divided by k",
    fixable=True,
    triggers=(("backward(", "zero_grad("),),
    docs=DOCS,
    check=check,
)
