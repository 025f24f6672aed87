"""GL103 misplaced-clipping: gradient clipping outside the window between backward and update."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import libcst as cst

from gradlint.analysis.events import Backward, Reset, Site, Update
from gradlint.analysis.fix_safety import depends_on_data
from gradlint.analysis.index import REACHES_BACKWARD
from gradlint.analysis.syntax import code_of
from gradlint.analysis.tracking import (
    At,
    Clip,
    Guard,
    Opaque,
    PathEvent,
    Report,
    Tracker,
    common,
    met,
    together,
    unambiguous,
)
from gradlint.fixes import MoveBefore, apply
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.tree import Tree

DOCS = """## What it does
Finds `clip_grad_norm_` / `clip_grad_value_` (torch.nn.utils) that runs outside the window
between the last `backward()` of an iteration and the optimizer's `step()`:
- before the `backward()` (it clips the gradients left from before, usually zeros),
- after the `step()`, with no `backward()` between the step and the clip (the step already
  used the unclipped gradients),
- on every micro-batch of an accumulation loop whose step runs only under a condition with
  `%` (`if (i + 1) % k == 0:`), while the clip is outside that condition.

Events are followed along every path of the path analysis: through helper functions and
methods of the module (with their parameters bound to the caller's objects), inner loops,
`try`, and from one iteration to the next; a `continue` or `break` ends the path's pass.
The clip is matched to its optimizer by the model it clips (`model.parameters()` and the
optimizer built on it) or, when that is not known, because it meets the step of only one
optimizer. `clip_grad_norm_(params, float("inf"))` only measures the norm and is never
reported. A call gradlint cannot see into that receives the optimizer or the model forgets
what was seen; reading the optimizer (`torch.save(optimizer.state_dict(), ...)`) does not.

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


# One clip waiting for the update it serves.
@dataclass(frozen=True)
class _Pending:
    clip: Site
    models: tuple[str, ...] | None
    guards: tuple[Guard, ...]
    fresh: bool | None  # a backward's gradient had arrived since the last update or reset
    then: Site | None = None  # the first backward after the clip


# An update, remembered until the next backward: a clip before that clips what it already used.
@dataclass(frozen=True)
class _Done:
    update: Site
    optimizer: str
    guards: tuple[Guard, ...]
    unclipped: bool  # it read a backward's gradient that no clip had seen


@dataclass(frozen=True)
class _Value:
    fresh: bool | None = False  # a backward since the last update or reset (None: on some paths)
    unclipped: bool = False  # a backward since the last clip
    pending: frozenset[_Pending] = frozenset()
    done: frozenset[_Done] = frozenset()


# the kinds of misplacement, in the order they are preferred when one clip shows several
LATE, EARLY, PARTIAL = 0, 1, 2


class _Clipping(Tracker):
    code = "GL103"

    def __init__(self, context: Context):
        self.context = context

    def start(self) -> _Value:
        return _Value()

    def event(self, value: _Value, event: PathEvent, at: At) -> _Value:
        if isinstance(event, Backward):
            pending = frozenset(
                p if p.then is not None else replace(p, then=event.site) for p in value.pending
            )
            return _Value(True, True, pending, frozenset())
        if isinstance(event, Clip):
            for done in value.done:
                if done.unclipped and together(done.guards, at.guards):
                    match = self._matches(event.models, done.optimizer)
                    if match is not False:
                        self._report(at, event.site, done.update, LATE, done.optimizer, match)
            waiting = _Pending(event.site, event.models, at.guards, value.fresh)
            return replace(value, unclipped=False, pending=value.pending | {waiting})
        if isinstance(event, Update):
            return self._update(value, event, at)
        if isinstance(event, Reset):
            return replace(value, fresh=False, unclipped=False)
        if isinstance(event, Opaque) and self._touches(event.received):
            return _Value()
        return value

    def _update(self, value: _Value, event: Update, at: At) -> _Value:
        kept = set(value.pending)
        done = set(value.done)
        for optimizer in event.owners:
            for waiting in value.pending:
                match = self._matches(waiting.models, optimizer)
                if match is False:
                    continue
                kept.discard(waiting)
                if waiting.then is None or not together(waiting.guards, at.guards):
                    continue
                if waiting.fresh is False:
                    self._report(at, waiting.clip, event.site, EARLY, optimizer, match)
                elif waiting.fresh and _gate(at.guards, waiting.guards) is not None:
                    self._report(at, waiting.clip, event.site, PARTIAL, optimizer, match)
            done.add(_Done(event.site, optimizer, at.guards, value.unclipped))
        return _Value(False, False, frozenset(kept), frozenset(done))

    def join(self, values: list[_Value]) -> _Value:
        fresh = {v.fresh for v in values}
        return _Value(
            fresh.pop() if len(fresh) == 1 else None,
            all(v.unclipped for v in values),
            common(v.pending for v in values),
            common(v.done for v in values),
        )

    def leave_pass(self, value: _Value, loop: int) -> _Value:
        # a clip after the update of the same pass is late; one pass later it is early
        return replace(value, done=frozenset()) if value.done else value

    def _matches(self, models: tuple[str, ...] | None, optimizer: str) -> bool | None:
        """Whether a clip of `models` clips what `optimizer` updates; None: not known."""
        link = self.context.knowledge.link(optimizer)
        if models is None or link is None:
            return None
        if set(models) & link.models:
            return True
        # `self.model` clipped, the optimizer built in `__init__` from its parameter `model`
        tails = {m.rsplit(".", 1)[-1] for m in link.models}
        return None if any(m.rsplit(".", 1)[-1] in tails for m in models) else False

    def _touches(self, received: frozenset[str]) -> bool:
        knowledge = self.context.knowledge
        return any(knowledge.is_optimizer(n) or n in knowledge.models for n in received)

    def _report(
        self, at: At, clip: Site, update: Site, kind: int, optimizer: str, sure: bool | None
    ) -> None:
        data = (clip, update, kind, at.guards)
        at.report(Report(self.code, (id(clip.node),), data, (kind, update.seq)))
        if not sure:  # which optimizer a clip serves is known only if it met one
            met(at, self.code, clip.node, optimizer)

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in unambiguous(reports):
            clip, update, kind, guards = report.data
            yield _violation(self.context, clip, update, kind, guards)


def _gate(update: tuple[Guard, ...], clip: tuple[Guard, ...]) -> str | None:
    """The accumulation window (`if (i + 1) % k == 0:`) the update runs in and the clip not."""
    for text, taken in update:
        if taken and (text, taken) not in clip and "%" in text:
            return text
    return None


def _violation(
    context: Context, clip: Site, update: Site, kind: int, guards: tuple[Guard, ...]
) -> Violation:
    call = clip.node
    assert isinstance(call, cst.Call)
    name = code_of(call.func).rsplit(".", 1)[-1]
    if kind == EARLY:
        problem = (
            f"runs before a `backward()`, so it clips the gradients left from before, not the "
            f"ones `{update.label}` (line {update.line}) uses"
        )
    elif kind == PARTIAL:
        gate = _gate(guards, ()) or "..."
        problem = (
            f"runs on every micro-batch while `{update.label}` (line {update.line}) runs only "
            f"when `{gate}`: each clip shrinks the partial sum so far, so the first "
            "micro-batches are shrunk again by every later clip"
        )
    else:
        problem = (
            f"runs after `{update.label}` (line {update.line}): the update already used the "
            "unclipped gradients"
        )
    return Violation(
        RULE.code,
        call,
        f"`{name}` {problem}; clip once, directly before the update",
        trail=(f"{name}(...) at line {clip.line}", f"{update.label} at line {update.line}"),
        fix=_move(context, call, update),
    )


def _move(context: Context, clip: cst.Call, update: Site) -> Rewrite | None:
    """Move the clip's statement directly before the update's, when it is a statement of its
    own in the same function and runs under no `if` or `with` the update does not share."""
    tree = context.tree
    moved, anchor = tree.statement(clip), tree.statement(update.node) if update.node else None
    if not (
        isinstance(moved, cst.SimpleStatementLine)
        and isinstance(anchor, cst.SimpleStatementLine)
        and len(moved.body) == 1
        and isinstance(moved.body[0], cst.Expr)
        and moved.body[0].value is clip
        and tree.function(moved) is tree.function(anchor)
        and tree.loops(moved) == tree.loops(anchor)
    ):
        return None
    around = {id(a) for a in tree.ancestors(anchor)}
    blocks = _blocks(tree, moved)
    if not all(id(b) in around for b in blocks):
        return None
    name = code_of(clip.func).rsplit(".", 1)[-1]
    # into a condition on the data (`if torch.isfinite(norm):`) the clip may no longer run
    # where the program needs it: then the move is unsafe
    entered = [
        b
        for b in _blocks(tree, anchor)
        if isinstance(b, cst.If) and id(b) not in set(map(id, blocks))
    ]
    safe = not any(depends_on_data(b.test) for b in entered)
    return Rewrite(
        f"Move `{name}(...)` directly before `{update.label}`",
        lambda module: apply(module, MoveBefore(moved, anchor)),
        "safe" if safe else "unsafe",
    )


def _blocks(tree: Tree, statement: cst.CSTNode) -> list[cst.CSTNode]:
    """The `if`s and `with`s a statement runs under, within its function."""
    out: list[cst.CSTNode] = []
    for ancestor in tree.ancestors(statement):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
            break
        if isinstance(ancestor, (cst.If, cst.With, cst.Else)):
            out.append(ancestor)
    return out


RULE = Rule(
    code="GL103",
    name="misplaced-clipping",
    summary="Gradient clipping outside the window between the last backward and the update",
    fixable=True,
    triggers=((REACHES_BACKWARD, "clip_grad"),),
    tracker=_Clipping,
    docs=DOCS,
)
