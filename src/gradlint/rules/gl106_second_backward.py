"""GL106 second-backward: a second backward() through a graph the first one already freed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import libcst as cst

from gradlint.analysis.order import (
    UNKNOWN,
    Graph,
    Graphs,
    Step,
    compatible,
    sequences,
)
from gradlint.analysis.syntax import argument, code_of, written
from gradlint.analysis.torch_api import backward_loss
from gradlint.rules.base import Context, Rewrite, Rule, Violation

DOCS = """## What it does
Finds two `backward()` calls in one pass of a block whose graphs share a forward
computation (the same loss twice, or two losses computed from one `out = model(x)`), where
the earlier call has no `retain_graph=True` (nor `create_graph=True`) and the shared forward
is not computed again in between. The order is read within one block and the `if`/`with`
blocks inside it; what goes through `.detach()` or `.item()` shares nothing, and a name
bound by code gradlint cannot read (an inner loop, a `try`) silences the rule.

## Why is this bad?
`backward()` frees the intermediate values the graph saved, unless told to retain them. The
second call raises RuntimeError "Trying to backward through the graph a second time (or
directly access saved tensors after they have already been freed)".

## Example
```python
for x, y in loader:
    optimizer.zero_grad()
    features = model(x)
    main_loss = criterion(features, y)
    aux_loss = features.pow(2).mean()
    main_loss.backward()
    aux_loss.backward()
    optimizer.step()
```

## Use instead
```python
for x, y in loader:
    optimizer.zero_grad()
    features = model(x)
    main_loss = criterion(features, y)
    aux_loss = features.pow(2).mean()
    (main_loss + aux_loss).backward()
    optimizer.step()
```

## Fix safety
The fix adds `retain_graph=True` to the earlier `backward()`. It is marked unsafe: the
graph then stays in memory until the second call, and summing the losses into one
`backward()` is usually what was meant (same gradients, one pass, less memory).
"""


_MAKES_MODELS = re.compile(r"_*(?:load|get|build|create|make|init|setup|prepare|from_pretrained)")


def check(context: Context) -> Iterator[Violation]:
    knowledge = context.knowledge

    def forward(callee: str) -> str | None:
        if _MAKES_MODELS.match(callee.rsplit(".", 1)[-1]) or callee.startswith("torch."):
            return None  # `load_models(path)` returns models, not a computation through them
        return knowledge.model(callee) if knowledge.is_forward(callee) else None

    for steps in sequences(context.module):
        yield from _check_block(context, steps, forward)


def _check_block(
    context: Context, steps: list[Step], forward: Callable[[str], str | None]
) -> Iterator[Violation]:
    graphs = Graphs(forward)
    earlier: list[tuple[Step, cst.Call, Graph]] = []  # backwards that freed their graph
    for step in steps:
        if not step.opaque:
            for call in reversed(list(step.calls())):
                loss = backward_loss(call)
                if loss is None or step.under_no_grad():
                    continue
                graph = graphs.of(loss)
                if not graph or graph & UNKNOWN:
                    continue
                for first_step, first, freed in earlier:
                    if freed & graph and compatible(first_step, step):
                        yield _violation(context, first, call)
                        break
                if not _retains(call):
                    earlier.append((step, call, graph))
        graphs.read(step)


def _retains(call: cst.Call) -> bool:
    for name in ("retain_graph", "create_graph"):
        value = argument(call, None, name)
        if value is not None and code_of(value) not in ("False", "None"):
            return True
    # loss.backward(gradient, retain_graph, create_graph) positionally
    positional = [a for a in call.args if a.keyword is None]
    return len(positional) >= 2 and code_of(positional[1].value) not in ("False", "None")


def _violation(context: Context, first: cst.Call, second: cst.Call) -> Violation:
    line = context.positions.of(first)[0]
    return Violation(
        RULE.code,
        second,
        f"`{written(second)}` goes back through the graph that `{written(first)}` (line {line}) "
        'already freed: autograd raises "Trying to backward through the graph a second time"; '
        "pass `retain_graph=True` to the first call, or add the losses and call backward once",
        trail=(f"{written(first)} at line {line}", written(second)),
        fix=Rewrite(
            f"Add `retain_graph=True` to `{written(first)}`",
            lambda module: _retain(module, first),
            applicability="unsafe",
        ),
    )


def _retain(module: cst.Module, call: cst.Call) -> cst.Module | None:
    if any(a.keyword is None for a in call.args[1:]):
        return None  # retain_graph given positionally: leave it to the author
    flag = cst.Arg(
        keyword=cst.Name("retain_graph"),
        value=cst.Name("True"),
        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
    )
    args = [
        a for a in call.args if not (a.keyword is not None and a.keyword.value == "retain_graph")
    ]
    if args:
        args[-1] = args[-1].with_changes(
            comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        )
    new = call.with_changes(args=[*args, flag])
    result = module.deep_replace(call, new)
    return result if isinstance(result, cst.Module) else None


RULE = Rule(
    code="GL106",
    name="second-backward",
    summary="A second `backward()` through a graph the first one freed (no `retain_graph=True`)",
    fixable=True,
    check=check,
    docs=DOCS,
)
