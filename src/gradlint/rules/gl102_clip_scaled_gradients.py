"""GL102 clip-scaled-gradients: clipping between a GradScaler's backward and step, not unscaled."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import libcst as cst

from gradlint.analysis.events import Site, Update
from gradlint.analysis.index import REACHES_BACKWARD
from gradlint.analysis.syntax import code_of, dotted, written
from gradlint.analysis.torch_api import scaler_stepped
from gradlint.analysis.tracking import (
    At,
    Clip,
    Guard,
    Opaque,
    PathEvent,
    Report,
    ScaledBackward,
    Tracker,
    Unscale,
    common,
    together,
)
from gradlint.fixes import InsertBefore, apply
from gradlint.rules.base import Context, Rewrite, Rule, Violation


@dataclass(frozen=True)
class _Window:
    """From `scaler.scale(loss).backward()` to `scaler.step(optimizer)`: `.grad` is scaled."""

    scaler: str
    backward: Site
    unscaled: frozenset[str] = frozenset()  # optimizers unscaled in the window ("*": unknown)
    clips: frozenset[tuple[Site, tuple[Guard, ...]]] = frozenset()  # clips of scaled gradients


class _ScaledClips(Tracker):
    code = "GL102"

    def __init__(self, context: Context):
        self.context = context

    def start(self) -> frozenset[_Window]:
        return frozenset()

    def event(self, value: frozenset[_Window], event: PathEvent, at: At) -> frozenset[_Window]:
        if isinstance(event, ScaledBackward):
            return frozenset(w for w in value if w.scaler != event.scaler) | {
                _Window(event.scaler, event.site)
            }
        if not value:
            return value
        if isinstance(event, Unscale):
            return frozenset(
                replace(w, unscaled=w.unscaled | {event.optimizer or "*"})
                if w.scaler == event.scaler
                else w
                for w in value
            )
        if isinstance(event, Clip):
            return frozenset(
                w if w.unscaled else replace(w, clips=w.clips | {(event.site, at.guards)})
                for w in value
            )
        if isinstance(event, Update):
            scaler = _scaler_of(event, at)
            for window in value:
                if window.scaler != scaler:
                    continue
                for clip, guards in window.clips:
                    if together(guards, at.guards):
                        data = (clip, window, event.site)
                        at.report(Report(self.code, (id(clip.node),), data, (event.site.seq,)))
            return frozenset(w for w in value if w.scaler != scaler)
        if isinstance(event, Opaque):
            return frozenset(w for w in value if w.scaler not in event.received)
        return value

    def join(self, values: list[frozenset[_Window]]) -> frozenset[_Window]:
        return common(values)

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in reports:
            clip, window, step = report.data
            yield _violation(self.context, clip, window, step)


def _scaler_of(event: Update, at: At) -> str | None:
    """The scaler of `scaler.step(optimizer)`, None for any other update."""
    call = event.site.node
    if not isinstance(call, cst.Call) or scaler_stepped(call) is None:
        return None
    assert isinstance(call.func, cst.Attribute)
    receiver = dotted(call.func.value)
    return at.names.resolve(receiver) if receiver is not None else None


def _violation(context: Context, clip: Site, window: _Window, step: Site) -> Violation:
    call = clip.node
    assert isinstance(call, cst.Call) and isinstance(step.node, cst.Call)
    stepped = scaler_stepped(step.node)
    optimizer = written(stepped) if stepped is not None else "optimizer"
    assert isinstance(step.node.func, cst.Attribute)
    scaler = written(step.node.func.value)
    label = code_of(call.func).rsplit(".", 1)[-1]
    backward = window.backward
    message = (
        f"`{label}` clips the gradients that `{backward.label}` (line {backward.line}) left "
        f"multiplied by the loss scale: call `{scaler}.unscale_({optimizer})` before clipping, "
        "or the threshold, in true units, is divided by the scale"
    )
    tree = context.tree
    line = tree.statement(call)
    fix = None
    # an unscale_ after the clip: inserting a second one would raise; in another function the
    # step's names may mean nothing where the clip is
    if not window.unscaled and tree.function(call) is tree.function(step.node):
        code = f"{scaler}.unscale_({optimizer})"
        fix = Rewrite(
            f"Insert `{code}` before the clip",
            lambda module: apply(module, InsertBefore(line, code)) if line else None,
        )
    return Violation(
        RULE.code,
        call,
        message,
        trail=(f"{backward.label} at line {backward.line}", f"{label}(...) without unscale_"),
        fix=fix,
    )


RULE = Rule(
    code="GL102",
    name="clip-scaled-gradients",
    summary="Gradient clipping with a GradScaler but without `scaler.unscale_(optimizer)` first",
    fixable=True,
    triggers=((REACHES_BACKWARD, "clip_grad", "scale("),),
    tracker=_ScaledClips,
    docs="""## What it does
Finds `clip_grad_norm_` / `clip_grad_value_` (torch.nn.utils, under any import spelling)
called between `scaler.scale(loss).backward()` and `scaler.step(optimizer)` of a
`GradScaler`, with no `scaler.unscale_(optimizer)` before the clip, on a path where the
three run in this order (the backward, the clip and the step may sit in three helper methods
of a trainer class; a scaler passed as a parameter is followed). A scaler is a name assigned
from `GradScaler(...)` or named `...scaler`. A call gradlint cannot see into that receives the
scaler silences the rule, and so does a clip and a step under unrelated conditions (`if a:`
and `if b:`): only branches that one of the two shares with the other count.

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
