"""GL103 misplaced-clipping: gradient clipping outside the window between backward and update."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.events import Backward, Names, Recognizer, Update
from gradlint.analysis.fix_safety import depends_on_data
from gradlint.analysis.order import (
    Step,
    clipped_parameters,
    is_clip,
    sequences,
)
from gradlint.analysis.syntax import code_of, dotted, names_in, walk
from gradlint.analysis.torch_api import Imports, imports_of
from gradlint.fixes import MoveBefore, apply
from gradlint.rules.base import Context, Rewrite, Rule, Violation

DOCS = """## What it does
Finds `clip_grad_norm_` / `clip_grad_value_` (torch.nn.utils) that runs outside the window
between the last `backward()` of an iteration and the optimizer's `step()`:
- before the `backward()` (it clips the gradients left from before, usually zeros),
- after the `step()`, with no `backward()` between the step and the clip (the step already
  used the unclipped gradients),
- on every micro-batch of an accumulation loop whose step runs only under a condition with
  `%` (`if (i + 1) % k == 0:`), while the clip is outside that condition.

The order is read within one block and the `if`/`with` blocks inside it. The clip is matched
to its optimizer by the model it clips (`model.parameters()` and the optimizer built on it)
or because the block steps only one optimizer. A call that receives the optimizer, or a
`backward()`/`step()` inside code gradlint cannot order, silences the rule.

## Why is this bad?
Clipping bounds the gradient the update uses. Clipped too early, the new gradient is never
clipped; clipped after the step, the update already used the unclipped gradient. Clipped
per micro-batch, each clip shrinks the partial sum accumulated so far: the first
micro-batches are shrunk again by every later clip and the update leans toward the last
ones, in neither the direction nor the norm of the clipped full gradient. Training goes on with no error.

## Example
```python
for x, y in loader:
    optimizer.zero_grad()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
```

## Use instead
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
```

## Fix safety
The fix moves the clipping statement directly before the update (inside the update's
condition in an accumulation loop). It is offered only when the clip is a statement of its
own (its result is not used) and does not sit under an `if` or `with` the update does not
share, and it is applied only if the result re-lints with this finding gone and nothing new
(so never where the move would clip scaled gradients, GL102). It changes the numbers the
training produces, which is its purpose; it is marked safe, except when it moves the clip into
a condition that depends on the data (`if torch.isfinite(norm)`, `loss.item() < limit`):
there the clip may not run where the program needs it, and the fix is unsafe.
"""


@dataclass(frozen=True)
class _Event:
    kind: str  # "backward", "update", "clip" or "opaque"
    step: Step
    call: cst.Call | None = None
    optimizer: str | None = None


def check(context: Context) -> Iterator[Violation]:
    recognizer = Recognizer(context.knowledge, context.positions)
    imports = imports_of(context.listed.of_type(cst.Import, cst.ImportFrom))
    for steps in sequences(context.module):
        events = list(_events(context, recognizer, steps, imports))
        if not any(e.kind == "clip" for e in events):
            continue
        for index, event in enumerate(events):
            if event.kind == "clip":
                violation = _judge(context, events, index)
                if violation is not None:
                    yield violation


def _events(
    context: Context,
    recognizer: Recognizer,
    steps: list[Step],
    imports: Imports,
) -> Iterator[_Event]:
    knowledge = context.knowledge
    for step in steps:
        if step.opaque:
            if any(
                is_clip(c, imports) or _makes_event(recognizer, c)
                for c in walk(step.node)
                if isinstance(c, cst.Call)
            ):
                yield _Event("opaque", step)
            continue
        for call in reversed(list(step.calls())):
            if is_clip(call, imports):
                yield _Event("clip", step, call)
                continue
            event = recognizer.call(call, Names())
            if isinstance(event, Backward):
                yield _Event("backward", step, call)
            elif isinstance(event, Update):
                owners = [o for o in event.owners if knowledge.is_optimizer(o)]
                if len(owners) == 1:
                    yield _Event("update", step, call, owners[0])
                else:
                    yield _Event("opaque", step, call)
            elif any(
                knowledge.is_optimizer(name) for arg in call.args for name in names_in(arg.value)
            ):
                yield _Event("opaque", step, call)  # a call that receives an optimizer


def _makes_event(recognizer: Recognizer, call: cst.Call) -> bool:
    return isinstance(recognizer.call(call, Names()), (Backward, Update))


def _optimizer_of(context: Context, events: list[_Event], clip: cst.Call) -> str | None:
    stepped = {e.optimizer for e in events if e.kind == "update"}
    if len(stepped) == 1:
        return next(iter(stepped))
    parameters = clipped_parameters(clip)
    if not (
        isinstance(parameters, cst.Call)
        and isinstance(parameters.func, cst.Attribute)
        and parameters.func.attr.value == "parameters"
    ):
        return None
    receiver = dotted(parameters.func.value)
    if receiver is None:
        return None
    model = context.knowledge.model(receiver)
    owners = [
        o
        for o in stepped
        if o is not None and (link := context.knowledge.link(o)) is not None and model in link[0]
    ]
    return owners[0] if len(owners) == 1 else None


def _judge(context: Context, events: list[_Event], index: int) -> Violation | None:
    clip = events[index]
    assert clip.call is not None
    optimizer = _optimizer_of(context, events, clip.call)
    if optimizer is None:
        return None
    relevant = [
        (i, e)
        for i, e in enumerate(events)
        if e.kind in ("backward", "opaque") or (e.kind == "update" and e.optimizer == optimizer)
    ]
    before = [e for i, e in relevant if i < index]
    after = [e for i, e in relevant if i > index]
    previous = before[-1] if before else None
    following = after[0] if after else None
    if any(e is not None and e.kind == "opaque" for e in (previous, following)):
        return None
    if previous is not None and previous.kind == "backward":
        if following is not None and following.kind == "update":
            return _per_micro_batch(context, clip, previous, following)
        return None
    if following is not None and following.kind == "backward":
        update = next((e for e in after if e.kind != "backward"), None)
        if update is None or update.kind != "update":
            return None
        return _violation(
            context,
            clip,
            update,
            f"runs before `{_label(following)}` (line {_line(context, following)}), so it clips "
            f"the gradients left from before, not the ones `{_label(update)}` "
            f"(line {_line(context, update)}) uses",
        )
    if previous is not None and following is None and len(before) >= 2:
        if before[-2].kind != "backward":
            return None
        return _violation(
            context,
            clip,
            previous,
            f"runs after `{_label(previous)}` (line {_line(context, previous)}): the update "
            "already used the unclipped gradients",
        )
    return None


def _per_micro_batch(
    context: Context, clip: _Event, backward: _Event, update: _Event
) -> Violation | None:
    """Backward and clip on every micro-batch, the update only under `if ... % k ...`."""
    gate = next(
        (
            c
            for c in update.step.conditions
            if c not in clip.step.conditions
            and c not in backward.step.conditions
            and any(isinstance(n, cst.Modulo) for n in walk(c.test))
        ),
        None,
    )
    if gate is None:
        return None
    return _violation(
        context,
        clip,
        update,
        f"runs on every micro-batch while `{_label(update)}` (line {_line(context, update)}) "
        f"runs only when `{cst.Module([]).code_for_node(gate.test)}`: each clip shrinks the "
        "partial sum so far, so the first micro-batches are shrunk again by every later clip",
    )


def _label(event: _Event) -> str:
    return code_of(event.call) if event.call is not None else code_of(event.step.node)


def _line(context: Context, event: _Event) -> int:
    return context.positions.of(event.call or event.step.node)[0]


def _violation(context: Context, clip: _Event, update: _Event, problem: str) -> Violation:
    assert clip.call is not None
    name = code_of(clip.call.func).rsplit(".", 1)[-1]
    fix = None
    if _movable(clip, update):
        moved, anchor = clip.step.line, update.step.line
        # into a condition on the data (`if torch.isfinite(norm):`) the clip may no longer
        # run where the program needs it: then the move is unsafe
        entered = [c for c in update.step.conditions if c not in clip.step.conditions]
        safe = not any(depends_on_data(c.test) for c in entered)
        fix = Rewrite(
            f"Move `{name}(...)` directly before `{_label(update)}`",
            lambda module: apply(module, MoveBefore(moved, anchor)),
            "safe" if safe else "unsafe",
        )
    return Violation(
        RULE.code,
        clip.call,
        f"`{name}` {problem}; clip once, directly before the update",
        trail=(
            f"{name}(...) at line {_line(context, clip)}",
            f"{_label(update)} at line {_line(context, update)}",
        ),
        fix=fix,
    )


def _movable(clip: _Event, update: _Event) -> bool:
    line = clip.step.line
    if not (
        isinstance(line, cst.SimpleStatementLine)
        and len(line.body) == 1
        and isinstance(line.body[0], cst.Expr)
        and line.body[0].value is clip.call
        and isinstance(update.step.line, cst.SimpleStatementLine)
    ):
        return False
    shares = all(c in update.step.conditions for c in clip.step.conditions)
    return shares and all(w in update.step.contexts for w in clip.step.contexts)


RULE = Rule(
    code="GL103",
    name="misplaced-clipping",
    summary="Gradient clipping outside the window between the last backward and the update",
    fixable=True,
    triggers=("clip_grad",),
    check=check,
    docs=DOCS,
)
