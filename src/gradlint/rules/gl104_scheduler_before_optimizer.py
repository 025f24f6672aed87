"""GL104 scheduler-before-optimizer: `scheduler.step()` before `optimizer.step()` in an iteration."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.events import Site, Update
from gradlint.analysis.index import MODULE, REACHES_BACKWARD
from gradlint.analysis.syntax import dotted, last_name, written
from gradlint.analysis.tracking import (
    At,
    Guard,
    Opaque,
    PathEvent,
    Report,
    SchedulerStep,
    Tracker,
    common,
    met,
    together,
    unambiguous,
)
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.tree import Tree

CODE = "GL104"
DOCS = """## What it does
Finds a learning-rate scheduler's `step()` that runs before the `step()` of the optimizer it
was built on, in the same pass of a loop: `scheduler.step(); optimizer.step()` in one
iteration, or `scheduler.step()` at the top of the epoch loop with the optimizer stepping in
the batch loop below it. Schedulers are names assigned from `torch.optim.lr_scheduler.*`
(`StepLR`, `OneCycleLR`, `LambdaLR`, ...) or a `get_*_schedule*` function (Hugging Face
transformers) given the optimizer; `scaler.step(optimizer)` counts as the optimizer's step.

Schedulers are also followed into helpers, as parameters (`def train(model, loader,
optimizer, scheduler)`), and as lists (`for scheduler in self.schedulers:` before `for
optimizer in self.optimizers:`); a scheduler known only by its name (`scheduler`,
`lr_scheduler`, `schedulers`) counts when it meets the step of one optimizer only. The two
steps must be in one pass of a loop (or, outside loops, one call of a function): a scheduler
fast-forwarded in a loop of its own before training is not reported.

Not reported: `ReduceLROnPlateau` (it steps on a metric, usually at the end of an epoch),
scheduler steps with arguments (`scheduler.step(epoch)`, diffusers' noise schedulers), a
scheduler whose position the module sets by hand (`scheduler.last_epoch = start - 1`) or
whose step runs inside `with warnings.catch_warnings():` (the order is chosen), a
scheduler or optimizer step under an `if` the other does not share, and passes where the
optimizer already stepped before the scheduler.

## Why is this bad?
Since PyTorch 1.1 `optimizer.step()` comes first. Stepping the scheduler first skips the first
value of the schedule: warm-up starts one step late and every later learning rate is shifted.
PyTorch warns "Detected call of `lr_scheduler.step()` before `optimizer.step()`".

## Example
```python
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
for epoch in range(4):
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    scheduler.step()
    optimizer.step()
```

## Use instead
```python
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
for epoch in range(4):
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    scheduler.step()
```

## Fix safety
When the two calls are adjacent statements of the same block, the fix swaps them. It changes
the learning rate each update uses to the schedule's intended one, on purpose; if the shifted
schedule was tuned for and must stay, mark the line with `# noqa: GL104`. Other layouts (a
scheduler step at the top of the epoch loop) get no fix: where it belongs depends on whether
the schedule counts epochs or batches.
"""


@dataclass(frozen=True)
class _Pending:
    """A scheduler step not yet followed by its optimizer's step in this pass."""

    site: Site
    scheduler: str
    optimizer: str | None
    loops: tuple[int, ...]  # the loops it ran in, outermost first
    scope: int  # the function it ran in
    guards: tuple[Guard, ...]

    def same_pass(self, at: At) -> bool:
        """Whether `at` is in the pass of the innermost loop the step ran in (or, outside any
        loop, in the same call of its function)."""
        return self.loops[-1] in at.loops if self.loops else True


class _SchedulerFirst(Tracker):
    code = CODE

    def __init__(self, context: Context):
        self.context = context
        self.positioned = _positioned(context)

    def start(self) -> frozenset[_Pending]:
        return frozenset()

    def event(self, value: frozenset[_Pending], event: PathEvent, at: At) -> frozenset[_Pending]:
        if isinstance(event, SchedulerStep):
            if not at.loops and at.scope == MODULE:  # before a script's training: not in a pass
                return value
            if event.scheduler in self.positioned or _silenced(self.context, event.site):
                return value  # the author sets where the schedule stands: the order is chosen
            others = frozenset(p for p in value if p.site != event.site)
            stepped = _Pending(
                event.site, event.scheduler, event.optimizer, at.loops, at.scope, at.guards
            )
            return others | {stepped}
        if not value:
            return value
        if isinstance(event, Update):
            left = set(value)
            for optimizer in event.owners:
                for waiting in value:
                    if waiting.optimizer not in (optimizer, None):
                        continue
                    left.discard(waiting)
                    if waiting.same_pass(at) and together(waiting.guards, at.guards):
                        data = (waiting.site, event.site)
                        key = (id(waiting.site.node),)
                        at.report(Report(self.code, key, data, (event.site.seq,)))
                        if waiting.optimizer is None:
                            met(at, self.code, waiting.site.node, optimizer)
            return frozenset(left)
        if isinstance(event, Opaque):
            return frozenset(p for p in value if not ({p.scheduler, p.optimizer} & event.received))
        return value

    def join(self, values: list[frozenset[_Pending]]) -> frozenset[_Pending]:
        return common(values)

    def leave_pass(self, value: frozenset[_Pending], loop: int) -> frozenset[_Pending]:
        if not value:
            return value
        return frozenset(p for p in value if loop not in p.loops and loop != p.scope)

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in unambiguous(reports):
            scheduler, update = report.data
            yield _violation(self.context, scheduler, update)


def _positioned(context: Context) -> set[str]:
    """Schedulers whose position the module sets by hand (`scheduler.last_epoch = ...`)."""
    found = set()
    for node in context.listed.of_type(cst.Assign):
        assert isinstance(node, cst.Assign)
        for target in node.targets:
            name = dotted(target.target) or ""
            if name.endswith(".last_epoch"):
                found.add(name[: -len(".last_epoch")])
    return found


def _silenced(context: Context, step: Site) -> bool:
    """The step runs inside `with warnings.catch_warnings():`, which hides PyTorch's warning
    about this very order: the author knows."""
    if step.node is None:
        return False
    return any(
        isinstance(a, cst.With)
        and any(
            isinstance(i.item, cst.Call) and last_name(i.item.func) == "catch_warnings"
            for i in a.items
        )
        for a in context.tree.ancestors(step.node)
    )


def _violation(context: Context, scheduler: Site, update: Site) -> Violation:
    call, stepped = scheduler.node, update.node
    assert isinstance(call, cst.Call) and isinstance(stepped, cst.Call)
    scheduler_label, update_label = written(call), written(stepped)
    message = (
        f"`{scheduler_label}` runs before `{update_label}` (line {update.line}) in the same "
        f"iteration: the first learning rate of the schedule is skipped; step the "
        f"optimizer first"
    )
    trail = (
        f"`{scheduler_label}` at line {scheduler.line}",
        f"`{update_label}` at line {update.line}",
    )
    return Violation(CODE, call, message, trail, _swap(context.tree, call, stepped))


def _swap(tree: Tree, scheduler_step: cst.Call, update: cst.Call) -> Rewrite | None:
    """Swap the two statement lines when they are adjacent in one block."""
    first, second = tree.statement(scheduler_step), tree.statement(update)
    if not (
        isinstance(first, cst.SimpleStatementLine)
        and isinstance(second, cst.SimpleStatementLine)
        and len(first.body) == 1
        and len(second.body) == 1
        and tree.next_statement(first) is second
    ):
        return None
    block = tree.parent.get(id(first))
    if not isinstance(block, (cst.IndentedBlock, cst.Module)):
        return None
    body = list(block.body)
    index = next(i for i, s in enumerate(body) if s is first)
    body[index : index + 2] = [second, first]  # each line keeps the comments above it
    new_block = block.with_changes(body=body)

    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(block, new_block)
        return result if isinstance(result, cst.Module) else None

    return Rewrite("Step the optimizer before the scheduler", apply)


RULE = Rule(
    code=CODE,
    name="scheduler-before-optimizer",
    summary="`lr_scheduler.step()` before `optimizer.step()` in the same iteration",
    fixable=True,
    triggers=((REACHES_BACKWARD, "sched", "step("),),  # `sched`, `scheduler`, `lr_schedule`
    docs=DOCS,
    tracker=_SchedulerFirst,
)
