"""GL104 scheduler-before-optimizer: `scheduler.step()` before `optimizer.step()` in an iteration."""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.syntax import argument, dotted, last_name, walk, written
from gradlint.analysis.torch_api import scaler_stepped
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

Not reported: `ReduceLROnPlateau` (it steps on a metric, usually at the end of an epoch), a
scheduler or optimizer step under an `if` or `try` the other does not share, and loops where
the optimizer already stepped earlier in the same pass.

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

_SCHEDULER_CLASSES = frozenset(
    {
        "LambdaLR",
        "MultiplicativeLR",
        "StepLR",
        "MultiStepLR",
        "ConstantLR",
        "LinearLR",
        "ExponentialLR",
        "PolynomialLR",
        "CosineAnnealingLR",
        "ChainedScheduler",
        "SequentialLR",
        "CyclicLR",
        "OneCycleLR",
        "CosineAnnealingWarmRestarts",
    }
)
_SCHEDULE_FUNCTION = re.compile(r"^get_\w*schedule\w*$")
_BRANCHES = (cst.If, cst.Else, cst.Try, cst.ExceptHandler, cst.Finally, cst.MatchCase)


def check(context: Context) -> Iterator[Violation]:
    nodes = list(walk(context.module))
    schedulers = _schedulers(context, nodes)
    if not schedulers:
        return
    tree = context.tree
    steps = [n for n in nodes if isinstance(n, cst.Call) and last_name(n.func) == "step"]
    for call in steps:
        receiver = dotted(call.func.value) if isinstance(call.func, cst.Attribute) else None
        optimizer = schedulers.get(receiver or "")
        if optimizer is None or not isinstance(tree.parent.get(id(call)), cst.Expr):
            continue
        loops = tree.loops(call)
        if not loops or _under_branch(tree, call, loops[0]):
            continue
        loop = loops[0]
        updates = [s for s in steps if _steps(s, optimizer) and loop in tree.ancestors(s)]
        at = context.positions.of(call)
        if any(context.positions.of(u) < at for u in updates):
            continue
        later = [u for u in updates if not _under_branch(tree, u, loop)]
        if not later:
            continue
        update = later[0]
        line = context.positions.of(update)[0]
        scheduler_label, update_label = written(call), written(update)
        message = (
            f"`{scheduler_label}` runs before `{update_label}` (line {line}) in the same "
            f"iteration: the first learning rate of the schedule is skipped; step the "
            f"optimizer first"
        )
        trail = (f"`{scheduler_label}` at line {at[0]}", f"`{update_label}` at line {line}")
        yield Violation(CODE, call, message, trail, _swap(tree, call, update))


def _schedulers(context: Context, nodes: list[cst.CSTNode]) -> dict[str, str]:
    """scheduler name -> the optimizer it was built on, for the optimizers the module knows."""
    found: dict[str, str] = {}
    for node in nodes:
        if not (isinstance(node, cst.Assign) and isinstance(node.value, cst.Call)):
            continue
        if len(node.targets) != 1:
            continue
        name = dotted(node.targets[0].target)
        call = node.value
        func = dotted(call.func) or ""
        tail = func.rsplit(".", 1)[-1]
        if tail not in _SCHEDULER_CLASSES and not _SCHEDULE_FUNCTION.match(tail):
            continue
        optimizer = _optimizer_argument(call)
        if name is None or optimizer is None or not context.knowledge.is_optimizer(optimizer):
            continue
        found[name] = optimizer
    return found


def _optimizer_argument(call: cst.Call) -> str | None:
    given = argument(call, 0, "optimizer")
    return dotted(given) if given is not None else None


def _steps(call: cst.Call, optimizer: str) -> bool:
    """`optimizer.step(...)` or `scaler.step(optimizer)`."""
    if not isinstance(call.func, cst.Attribute):
        return False
    if (dotted(call.func.value) or "") == optimizer:
        return True
    stepped = scaler_stepped(call)
    return stepped is not None and dotted(stepped) == optimizer


def _under_branch(tree: Tree, node: cst.CSTNode, loop: cst.CSTNode) -> bool:
    for ancestor in tree.ancestors(node):
        if ancestor is loop:
            return False
        if isinstance(ancestor, _BRANCHES):
            return True
    return True


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
    triggers=(("schedule", "step("),),
    docs=DOCS,
    check=check,
)
