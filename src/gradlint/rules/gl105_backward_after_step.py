"""GL105 backward-after-step: backward() on a loss computed before a step changed its model."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.events import Names, Recognizer, Reset, Update
from gradlint.analysis.order import UNKNOWN, Graphs, Step, compatible, sequences
from gradlint.analysis.syntax import assigned_targets, dotted, written
from gradlint.analysis.torch_api import backward_loss
from gradlint.rules.base import Context, Rule, Violation

DOCS = """## What it does
Finds `loss.backward()` on a loss computed from a model's forward before an optimizer step
that changed that model's parameters in place: compute `g_loss` with the discriminator,
step the discriminator's optimizer, then `g_loss.backward()`. The step counts only when the
optimizer is built on that model's parameters (`Adam(D.parameters())`) and a `backward()`
through the model earlier in the block gave its parameters gradients to step with. The
order is read within one block and the `if`/`with` blocks inside it. A loss computed from
the model's output through `.detach()`, a step of another model's optimizer, or a loss
computed again after the step is fine.

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


def check(context: Context) -> Iterator[Violation]:
    knowledge = context.knowledge
    recognizer = Recognizer(knowledge, context.positions)

    def forward(callee: str) -> str | None:
        model = knowledge.model(callee)
        return model if model in knowledge.models else None

    for steps in sequences(context.module):
        graphs = Graphs(forward)
        assigned: dict[str, int] = {}
        with_grad: set[str] = set()  # models a backward gave gradients to
        updates: list[tuple[int, Step, cst.Call, frozenset[str]]] = []
        for index, step in enumerate(steps):
            if not step.opaque:
                for call in reversed(list(step.calls())):
                    event = recognizer.call(call, Names())
                    loss = backward_loss(call)
                    if loss is not None:
                        graph = graphs.of(loss)
                        if graph & UNKNOWN:
                            continue
                        models = {model for _, model in graph}
                        name = dotted(loss)
                        for at, update_step, update, changed in updates:
                            if (
                                name is not None
                                and assigned.get(name, index) < at
                                and changed & models
                                and compatible(update_step, step)
                            ):
                                yield _violation(context, call, name, update, changed & models)
                                break
                        with_grad |= models
                    elif isinstance(event, Update) and len(event.owners) == 1:
                        link = knowledge.link(event.owners[0])
                        changed = frozenset(link[0]) & with_grad if link else frozenset()
                        if changed:
                            updates.append((index, step, call, changed))
                    elif isinstance(event, Reset) and event.optimizer is not None:
                        link = knowledge.link(event.optimizer)
                        with_grad -= set(link[0]) if link else set()
            graphs.read(step)
            for name in assigned_targets(step.node):
                assigned[name] = index


def _violation(
    context: Context, backward: cst.Call, loss: str, update: cst.Call, models: frozenset[str]
) -> Violation:
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
    check=check,
    docs=DOCS,
)
