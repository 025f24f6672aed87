"""GL102 clip-scaled-gradients: clipping between a GradScaler's backward and step, not unscaled."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.order import (
    Step,
    is_clip,
    replace_statement,
    scalers,
    sequences,
)
from gradlint.analysis.syntax import code_of, dotted, names_in, written
from gradlint.analysis.torch_api import Imports, imports_of
from gradlint.rules.base import Context, Rewrite, Rule, Violation


def check(context: Context) -> Iterator[Violation]:
    known = scalers(context.module)
    if not known:
        return
    imports = imports_of(context.listed.of_type(cst.Import, cst.ImportFrom))
    for steps in sequences(context.module):
        yield from _check_block(context, steps, known, imports)


def _check_block(
    context: Context,
    steps: list[Step],
    known: set[str],
    imports: Imports,
) -> Iterator[Violation]:
    scaled: tuple[str, cst.Call] | None = None  # (scaler, its backward call) of the open window
    opaque = False
    pending: list[tuple[Step, cst.Call]] = []  # clips seen in the window without unscale_
    unscaled: set[str] = set()  # optimizers unscaled in the window
    for step in steps:
        if step.opaque:
            if scaled is not None and (names_in(step.node) & {scaled[0]} or _has_step(step)):
                opaque = True
            continue
        for call in reversed(list(step.calls())):  # innermost first: the order they run in
            method = _scaler_method(call, known)
            if method is not None and method[1] == "backward":
                scaled, opaque, pending, unscaled = (method[0], call), False, [], set()
                continue
            if scaled is None:
                continue
            if method is not None and method[0] == scaled[0]:
                if method[1] == "unscale_" and call.args:
                    unscaled.add(code_of(call.args[0].value))
                elif method[1] == "step" and call.args:
                    optimizer = code_of(call.args[0].value)
                    if not opaque:
                        # an unscale_ after the clip: inserting a second one would raise
                        fixable = optimizer not in unscaled
                        for clip_step, clip in pending:
                            yield _violation(context, scaled, clip_step, clip, optimizer, fixable)
                    scaled = None
                continue
            if is_clip(call, imports):
                if not unscaled and not opaque:
                    pending.append((step, call))
            elif _receives(call, scaled[0]):
                opaque = True


def _scaler_method(call: cst.Call, known: set[str]) -> tuple[str, str] | None:
    """(scaler, method) of `scaler.unscale_(...)`, `scaler.step(...)` or
    `scaler.scale(loss).backward()` (method "backward")."""
    func = call.func
    if not isinstance(func, cst.Attribute):
        return None
    receiver = func.value
    if func.attr.value == "backward" and isinstance(receiver, cst.Call):
        inner = receiver.func
        if isinstance(inner, cst.Attribute) and inner.attr.value == "scale":
            name = dotted(inner.value)
            return (name, "backward") if name in known else None
        return None
    name = dotted(receiver)
    if name in known and func.attr.value in ("unscale_", "step"):
        return name, func.attr.value
    return None


def _receives(call: cst.Call, scaler: str) -> bool:
    return any(scaler in names_in(arg.value) for arg in call.args)


def _has_step(step: Step) -> bool:
    return any(
        isinstance(c.func, cst.Attribute) and c.func.attr.value in ("step", "unscale_")
        for c in step.calls()
    )


def _violation(
    context: Context,
    scaled: tuple[str, cst.Call],
    step: Step,
    clip: cst.Call,
    optimizer: str,
    fixable: bool,
) -> Violation:
    scaler, backward = scaled
    line = context.positions.of(backward)[0]
    label = code_of(clip.func).rsplit(".", 1)[-1]
    message = (
        f"`{label}` clips the gradients that `{written(backward)}` (line {line}) left "
        f"multiplied by the loss scale: call `{scaler}.unscale_({optimizer})` before clipping, "
        "or the threshold, in true units, is divided by the scale"
    )
    return Violation(
        RULE.code,
        clip,
        message,
        trail=(f"{written(backward)} at line {line}", f"{label}(...) without unscale_"),
        fix=Rewrite(
            f"Insert `{scaler}.unscale_({optimizer})` before the clip",
            lambda module: _insert_unscale(module, step.line, f"{scaler}.unscale_({optimizer})"),
        )
        if fixable
        else None,
    )


def _insert_unscale(module: cst.Module, line: cst.BaseStatement, code: str) -> cst.Module | None:
    if not isinstance(line, cst.SimpleStatementLine):
        return None
    unscale = cst.parse_statement(code + "\n")
    assert isinstance(unscale, cst.SimpleStatementLine)
    unscale = unscale.with_changes(leading_lines=line.leading_lines)
    return replace_statement(module, line, [unscale, line.with_changes(leading_lines=[])])


RULE = Rule(
    code="GL102",
    name="clip-scaled-gradients",
    summary="Gradient clipping with a GradScaler but without `scaler.unscale_(optimizer)` first",
    fixable=True,
    triggers=(("clip_grad", "scale("),),
    check=check,
    docs="""## What it does
Finds `clip_grad_norm_` / `clip_grad_value_` (torch.nn.utils, under any import spelling)
called between `scaler.scale(loss).backward()` and `scaler.step(optimizer)` of a
`GradScaler`, with no `scaler.unscale_(optimizer)` before the clip. The order is read within
one block and the `if`/`with` blocks inside it; a call that receives the scaler or the
optimizer in between, or code gradlint cannot order, silences the rule.

`accelerator.clip_grad_norm_(...)` is not reported: Accelerate unscales before clipping.

## Why is this bad?
After `scaler.scale(loss).backward()` every `.grad` is multiplied by the loss scale (65536 at
the start). Clipping them clips the scaled values: `max_norm=1.0` becomes, in true units,
`1.0 / 65536`, so nearly every step is shrunk to almost nothing (or, with
`clip_grad_value_`, the clip value is meaningless). Training goes on with no error.

## Example
```python
scaler = torch.amp.GradScaler("cuda")
for x, y in loader:
    optimizer.zero_grad()
    with torch.autocast("cuda"):
        loss = criterion(model(x), y)
    scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
```

## Use instead
```python
scaler = torch.amp.GradScaler("cuda")
for x, y in loader:
    optimizer.zero_grad()
    with torch.autocast("cuda"):
        loss = criterion(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
```

## Fix safety
The fix inserts `scaler.unscale_(optimizer)` on its own line right before the clipping
statement, with the optimizer of the `scaler.step(...)` that follows. It is safe:
`scaler.step()` then skips its own unscaling, and the clip sees true gradients. No fix is
offered when an `unscale_` of that optimizer already follows the clip (calling it twice
raises); move that line above the clip instead.
""",
)
