"""GL113 training-in-eval-mode: a model trained in evaluation mode after `model.eval()`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import libcst as cst

from gradlint.analysis.events import Backward, Site, Update
from gradlint.analysis.syntax import dotted, last_name
from gradlint.analysis.tracking import (
    At,
    ModeSwitch,
    Opaque,
    PathEvent,
    Report,
    Tracker,
    common,
)
from gradlint.fixes import InsertFirst, apply
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL113"
DOCS = """## What it does
Finds `model.eval()` (or `model.train(False)`) on a path that reaches a `backward()` and the
step of an optimizer built on that model's parameters with no `model.train()` in between:
typically a validation inside the epoch loop (directly or in an `evaluate(model)` helper)
switches the model to evaluation mode, and the next epoch trains without switching back.
Paths are those of the path analysis: the next iteration, helpers of the module with their
parameters bound, branches.

Reported only for a model the module also puts in training mode somewhere (`model.train()`):
that shows training mode is meant. Not reported: a sub-module switched to evaluation on
purpose (`model.backbone.eval()` to keep its batch-norm statistics while the optimizer holds
the whole model, or a frozen encoder whose head alone is optimized), a call gradlint cannot
see into that receives the model (it may switch it back), and `model.train(flag)` with a flag
not known here.

## Why is this bad?
In evaluation mode dropout is off and batch normalization uses (and no longer updates) its
running statistics. Training goes on without an error, but without the regularization the
model was designed with and with batch-norm statistics frozen at the values of the first
epoch: the model generalizes worse, often without any visible sign in the training loss.

## Example
```python
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
for epoch in range(epochs):
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = sum((model(x).argmax(1) == y).float().mean() for x, y in val_loader)
```

## Use instead
```python
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(epochs):
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = sum((model(x).argmax(1) == y).float().mean() for x, y in val_loader)
```

## Fix safety
The fix inserts `model.train()` as the first statement of the loop that runs both the
training step and the switch to evaluation (or, when the switch is in a helper, of the
outermost loop around the training step). It is safe when the module never reads
`model.training` (nothing else depends on the mode); otherwise it is unsafe.
"""


@dataclass(frozen=True)
class _Evaluating:
    """A model surely in evaluation mode on the path, since `switch`."""

    model: str
    switch: Site
    backward: Site | None = None  # the first backward since


class _EvalModeTraining(Tracker):
    code = CODE

    def __init__(self, context: Context):
        self.context = context
        self.trained = _trained_models(context)

    def start(self) -> frozenset[_Evaluating]:
        return frozenset()

    def event(
        self, value: frozenset[_Evaluating], event: PathEvent, at: At
    ) -> frozenset[_Evaluating]:
        if isinstance(event, ModeSwitch):
            others = frozenset(e for e in value if e.model != event.model)
            if event.training is False and event.model in self.trained:
                return others | {_Evaluating(event.model, event.site)}
            return others
        if not value:
            return value
        if isinstance(event, Backward):
            return frozenset(e if e.backward else replace(e, backward=event.site) for e in value)
        if isinstance(event, Opaque):
            return frozenset(e for e in value if e.model not in event.received)
        if isinstance(event, Update):
            knowledge = self.context.knowledge
            for owner in event.owners:
                link = knowledge.link(owner)
                if link is None:
                    continue
                for evaluating in value:
                    if evaluating.backward is not None and evaluating.model in link.models:
                        data = (evaluating, event.site)
                        key = (id(evaluating.switch.node),)
                        at.report(Report(self.code, key, data, (event.site.seq,)))
        return value

    def join(self, values: list[frozenset[_Evaluating]]) -> frozenset[_Evaluating]:
        return common(values)

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in reports:
            evaluating, update = report.data
            yield _violation(self.context, evaluating, update)


def _trained_models(context: Context) -> set[str]:
    """The models the module puts in training mode somewhere (`model.train()`)."""
    knowledge = context.knowledge
    found = set()
    for call in context.listed.of_type(cst.Call):
        assert isinstance(call, cst.Call)
        if last_name(call.func) != "train" or not isinstance(call.func, cst.Attribute):
            continue
        if call.args and dotted(call.args[0].value) not in ("True",):
            continue
        receiver = dotted(call.func.value)
        if receiver is not None:
            found.add(knowledge.model(receiver))
    return found


def _violation(context: Context, evaluating: _Evaluating, update: Site) -> Violation:
    switch = evaluating.switch
    assert switch.node is not None
    backward = evaluating.backward
    assert backward is not None
    model = evaluating.model
    message = (
        f"`{switch.label}` leaves `{model}` in evaluation mode on a path that reaches "
        f"`{backward.label}` (line {backward.line}) and `{update.label}` (line {update.line}) "
        f"with no `{model}.train()` between: the model trains with dropout off and batch-norm "
        f"statistics frozen; call `{model}.train()` at the start of each training iteration"
    )
    trail = (
        f"{switch.label} at line {switch.line}",
        f"{backward.label} at line {backward.line}",
        f"{update.label} at line {update.line}",
    )
    return Violation(CODE, switch.node, message, trail, _train_first(context, evaluating, update))


def _train_first(context: Context, evaluating: _Evaluating, update: Site) -> Rewrite | None:
    """`model.train()` first in the loop that runs the step and the switch (or, with the switch
    in a helper, the outermost loop around the step)."""
    if update.node is None or evaluating.switch.node is None:
        return None
    tree = context.tree
    around_step = tree.loops(update.node)  # innermost first, within the step's function
    around_switch = {id(loop) for loop in tree.loops(evaluating.switch.node)}
    shared = [loop for loop in around_step if id(loop) in around_switch]
    if tree.function(update.node) is tree.function(evaluating.switch.node) and shared:
        loop = shared[0]
    elif around_step:
        loop = around_step[-1]
    else:
        return None
    code = f"{evaluating.model}.train()"
    reads_mode = any(
        isinstance(node, cst.Attribute) and node.attr.value == "training"
        for node in context.listed.of_type(cst.Attribute)
    )
    return Rewrite(
        f"Call `{code}` first in the loop at line {context.positions.of(loop)[0]}",
        lambda module: apply(module, InsertFirst(loop, code)),
        "unsafe" if reads_mode else "safe",
    )


RULE = Rule(
    code=CODE,
    name="training-in-eval-mode",
    summary="`model.eval()` reaches a training step with no `model.train()` between",
    fixable=True,
    # a training step needs a backward in view; `model.train(False)` switches to eval mode too
    triggers=(("backward(", ("eval(", "train(")),),
    docs=DOCS,
    tracker=_EvalModeTraining,
)
