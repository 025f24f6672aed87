"""GL105 backward-after-step: backward() on a loss computed before a step changed its model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import libcst as cst

from gradlint.analysis.events import Backward, Reset, Update
from gradlint.analysis.graphs import Followed, GraphTracker, Mark
from gradlint.analysis.syntax import dotted, written
from gradlint.analysis.torch_api import backward_loss
from gradlint.analysis.tracking import At, PathEvent, Report, together
from gradlint.rules.base import Context, Rule, Violation

DOCS = """## What it does
Finds `loss.backward()` on a loss computed from a model's forward before an optimizer step
that changed that model's parameters in place: compute `g_loss` with the discriminator,
step the discriminator's optimizer, then `g_loss.backward()`. The step counts only when the
optimizer is built on that model's parameters (`Adam(D.parameters())`) and a `backward()`
through the model earlier in the same pass gave its parameters gradients to step with.
Events are followed along every path of the path analysis: through helper functions and
methods of the module (with their parameters bound to the caller's objects), inner loops,
`try`, and from one iteration to the next; a `continue` or `break` ends the path's pass. A loss computed
from the model's output through `.detach()` or under `torch.no_grad()`, a step of another
model's optimizer, or a loss computed again after the step is fine; a result of a helper
function of the module is not read (it silences the rule).

## Why is this bad?
The loss's graph saved the model's parameters for its backward pass; `step()` modified them
in place. Autograd raises RuntimeError "one of the variables needed for gradient
computation has been modified by an inplace operation".

## Example
```python
opt_g = torch.optim.Adam(G.parameters(), lr=2e-4)
opt_d = torch.optim.Adam(D.parameters(), lr=2e-4)
for real in loader:
    fake = G(torch.randn(real.size(0), 8))
    d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    g_loss = bce(D(fake), ones)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
```

## Use instead
```python
opt_g = torch.optim.Adam(G.parameters(), lr=2e-4)
opt_d = torch.optim.Adam(D.parameters(), lr=2e-4)
for real in loader:
    fake = G(torch.randn(real.size(0), 8))
    d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = bce(D(fake), ones)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
```

## Fix safety
No fix is offered: moving the loss computation after the step (or the step after the
backward) changes which parameters the loss sees, and the right order depends on the
algorithm.
"""


class _BackwardAfterStep(GraphTracker):
    code = "GL105"

    def __init__(self, context: Context):
        knowledge = context.knowledge

        def forward(callee: str) -> str | None:
            model = knowledge.model(callee)
            return model if model in knowledge.models else None

        super().__init__(context, forward)

    def leave_pass(self, value: Followed, loop: int) -> Followed:
        # Within one pass only. A step with the previous pass's gradient before this pass's
        # backward is GL112's (the claim here would depend on the model saving its weights: a
        # single layer on data does not); a graph carried into the next pass is GL106's (its
        # backward raises for the freed graph first).
        if value.models or value.marks:
            return replace(value, models=frozenset(), marks=frozenset())
        return value

    def event(self, value: Followed, event: PathEvent, at: At) -> Followed:
        knowledge = self.context.knowledge
        if isinstance(event, Backward):
            return self._backward(value, event, at)
        if isinstance(event, Update) and len(event.owners) == 1:
            link = knowledge.link(event.owners[0])
            moved = link.models & value.models if link else frozenset()
            if not moved:
                return value
            marks = {
                Mark(element, event.site, at.guards)
                for _, graph in value.names
                for element in graph
                if element[1] in moved
            }
            return replace(value, marks=value.marks | marks).collected()
        if isinstance(event, Reset) and event.optimizer is not None:
            link = knowledge.link(event.optimizer)
            if link:
                return replace(value, models=value.models - link.models)
        return value

    def _backward(self, value: Followed, event: Backward, at: At) -> Followed:
        value, graph = self.backward_graph(value, event.site.node, at)
        if graph is None:
            return value
        call = event.site.node
        loss = backward_loss(call) if isinstance(call, cst.Call) else None
        name = dotted(loss) if loss is not None else None
        hits = [m for m in value.marks if m.element in graph and together(m.guards, at.guards)]
        if name is not None and hits:
            first = min(hits, key=lambda m: m.site.seq)
            models = frozenset(m.element[1] for m in hits if m.site == first.site)
            data = (event.site, name, first.site, models)
            at.report(Report(self.code, (id(call),), data, (first.site.seq,)))
        return replace(value, models=value.models | {element[1] for element in graph})

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in reports:
            backward, loss, update, models = report.data
            yield _violation(self.context, backward.node, loss, update.node, models)


def _violation(
    context: Context,
    backward: cst.CSTNode | None,
    loss: str,
    update: cst.CSTNode | None,
    models: frozenset[str],
) -> Violation:
    assert backward is not None and update is not None
    line = context.positions.of(update)[0]
    model = ", ".join(f"`{m}`" for m in sorted(models))
    return Violation(
        RULE.code,
        backward,
        f"`{written(backward)}` goes back through {model}, whose parameters `{written(update)}` "
        f'(line {line}) changed in place after `{loss}` was computed: autograd raises "one of '
        "the variables needed for gradient computation has been modified by an inplace "
        f'operation"; compute `{loss}` after the step, or call its backward before the step',
        trail=(f"{written(update)} at line {line}", written(backward)),
    )


RULE = Rule(
    code="GL105",
    name="backward-after-step",
    summary="`backward()` on a loss computed before an optimizer step changed its model",
    tracker=_BackwardAfterStep,
    docs=DOCS,
)
