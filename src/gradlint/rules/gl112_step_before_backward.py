"""GL112 step-before-backward: the update of an iteration runs before its backward()."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.events import Backward, Names, Recognizer, Update
from gradlint.analysis.syntax import (
    assigned_targets,
    code_of,
    every_pass,
    last_name,
    names_in,
    walk,
    written,
)
from gradlint.analysis.torch_api import BACKWARD_FUNCTIONS
from gradlint.fixes import MoveBefore, apply
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL112"

DOCS = """## What it does
Finds a training loop whose body runs the optimizer's `step()` before the `backward()` of
the same pass, with no `backward()` before the step in that pass: `optimizer.zero_grad();
loss = criterion(model(x), y); optimizer.step(); loss.backward()`. Both calls must run on
every pass (not under an `if`), the loop must hold no other update after the backward, and
no call before the step may reach a `backward()` of this module (a helper that computes the
loss and its gradient). A step given a closure (`LBFGS`) computes its own gradient and is
not reported.

## Why is this bad?
The step reads `.grad` before this pass has put anything there: it applies the previous
pass's gradient (one batch late) or, with a reset at the top of the pass, nothing at all,
and the model never learns. Moving the reset after the step (what the gradient-discard
rule would suggest) does not help: the step then changes the parameters in place before the
`backward()` that needs them, and autograd raises "one of the variables needed for gradient
computation has been modified by an inplace operation". The reset is not the bug, so no
GL002 is reported on it.

## Example
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    optimizer.step()
    loss.backward()
```

## Use instead
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
```

## Fix safety
The fix moves the `backward()` line to right before the step. It is safe: the statements
between them do not bind a name the backward uses (else no fix is offered), and what they
read of `.grad` is the defect itself. The fix is kept only if the result parses and
re-linting shows no new finding.
"""

RULE = Rule(
    code=CODE,
    name="step-before-backward",
    summary="The optimizer steps before the backward() of the same iteration",
    fixable=True,
    docs=DOCS,
    triggers=(("backward(", "step("),),
    check=lambda context: check(context),
)


def check(context: Context) -> Iterator[Violation]:
    recognizer = context.recognizer
    helpers = _functions_with_backward(context)
    for loop in context.listed.of_type(cst.For, cst.While):
        assert isinstance(loop, (cst.For, cst.While))
        found = _step_then_backward(loop, recognizer, helpers)
        if found is None:
            continue
        step_line, step, backward_line, backward, movable = found
        at = context.positions.of(backward)[0]
        step_label, backward_label = written(step), written(backward)
        message = (
            f"`{step_label}` runs before `{backward_label}` (line {at}) of the same iteration: "
            f"the step applies the previous iteration's gradient, or none after a reset; call "
            f"`backward()` before `step()`"
        )
        trail = (
            f"{step_label} at line {context.positions.of(step)[0]}",
            f"{backward_label} at line {at}",
        )
        fix = _swap(backward_line, step_line) if movable else None
        yield Violation(CODE, step, message, trail, fix)


def _step_then_backward(
    loop: cst.For | cst.While, recognizer: Recognizer, helpers: set[str]
) -> tuple[cst.SimpleStatementLine, cst.Call, cst.SimpleStatementLine, cst.Call, bool] | None:
    """The first step of the pass and the backward after it, both on the loop's own lines."""
    if not isinstance(loop.body, cst.IndentedBlock):
        return None
    step: tuple[cst.SimpleStatementLine, cst.Call] | None = None
    backward: tuple[cst.SimpleStatementLine, cst.Call] | None = None
    between: list[cst.CSTNode] = []
    for statement in every_pass(loop.body):
        events = _events(statement, recognizer, helpers)
        if events is None:
            return None  # a nested block or a helper's backward: not a plain pass
        if step is not None and backward is None and not events:
            between.append(statement)
        for kind, call in events:
            if kind == "backward":
                if step is None or backward is not None:
                    return None  # a backward before the step: the ordinary order
                backward = (statement, call)  # type: ignore[assignment]
            elif kind == "update":
                if step is not None:
                    return None  # a second update (two optimizers): not this pattern
                step = (statement, call)  # type: ignore[assignment]
    if step is None or backward is None:
        return None
    return step[0], step[1], backward[0], backward[1], _names_free(backward[0], between)


def _events(
    statement: cst.CSTNode, recognizer: Recognizer, helpers: set[str]
) -> list[tuple[str, cst.Call]] | None:
    """Backward and update calls of one line in order; None when the line hides them (a block,
    a call of a helper that runs a backward) or runs them conditionally."""
    calls = [n for n in walk(statement) if isinstance(n, cst.Call)]
    if not isinstance(statement, cst.SimpleStatementLine):
        touches = any(isinstance(recognizer.call(c, Names()), (Backward, Update)) for c in calls)
        return None if touches else []
    out: list[tuple[str, cst.Call]] = []
    for call in calls:
        event = recognizer.call(call, Names())
        if isinstance(event, Backward):
            out.append(("backward", call))
        elif isinstance(event, Update):
            if event.closure is not None:
                return None
            out.append(("update", call))
        elif code_of(call.func).removeprefix("self.") in helpers:
            return None
    return out


def _functions_with_backward(context: Context) -> set[str]:
    found = set()
    for node in context.listed.of_type(cst.FunctionDef):
        assert isinstance(node, cst.FunctionDef)
        if any(
            type(n) is cst.Call and last_name(n.func) in BACKWARD_FUNCTIONS  # type: ignore[attr-defined]
            for n in walk(node)
        ):
            found.add(node.name.value)
    return found


def _swap(backward: cst.SimpleStatementLine, step: cst.SimpleStatementLine) -> Rewrite | None:
    if len(backward.body) != 1 or len(step.body) != 1:
        return None
    return Rewrite(
        "Call `backward()` before `step()`",
        lambda module: apply(module, MoveBefore(backward, step)),
    )


def _names_free(backward: cst.SimpleStatementLine, between: list[cst.CSTNode]) -> bool:
    """No statement between the step and the backward binds a name the backward reads."""
    used = names_in(backward)
    return not any(assigned_targets(s) & used for s in between)
