"""GL106 second-backward: a second backward() through a graph the first one already freed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import libcst as cst

from gradlint.analysis.events import Backward, Site
from gradlint.analysis.graphs import Element, Followed, GraphTracker, Mark, Names
from gradlint.analysis.syntax import argument, code_of, names_in, written
from gradlint.analysis.tracking import At, PathEvent, Report, together
from gradlint.rules.base import Context, Rewrite, Rule, Violation

DOCS = """## What it does
Finds two `backward()` calls on one path whose graphs share a forward computation (the same
loss twice, two losses computed from one `out = model(x)`, or a recurrent hidden state carried
into the next iteration without `.detach()`, as in truncated backpropagation through time),
where the earlier call has no `retain_graph=True` (nor `create_graph=True`) and the shared
forward is not computed again in between. Events are followed along every path of the path analysis: through helper functions and
methods of the module (with their parameters bound to the caller's objects), inner loops,
`try`, and from one iteration to the next; a `continue` or `break` ends the path's pass.
What goes through `.detach()` or `.item()` shares nothing; a result of a helper function of the
module (`repackage_hidden(hidden)`) or of a comprehension is not read and silences the rule.

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
`backward()` is usually what was meant (same gradients, one pass, less memory). A graph
carried from an earlier iteration gets no fix: retaining every iteration's graph would grow
memory without bound; detach the carried tensor where the next iteration takes it.
"""


_MAKES_MODELS = re.compile(
    r"_*(?:load|get|build|create|make|init|setup|prepare|from_pretrained|unwrap|wrap|compile|"
    r"deepcopy|copy)"
)


class _SecondBackward(GraphTracker):
    code = "GL106"

    def __init__(self, context: Context):
        knowledge = context.knowledge

        def forward(callee: str) -> str | None:
            tail = callee.rsplit(".", 1)[-1]
            if _MAKES_MODELS.match(tail) or callee.startswith("torch."):
                return None  # `load_models(path)` returns models, not a computation through them
            model = knowledge.model(callee)
            if tail[:1].isupper() and model not in knowledge.models:
                return None  # `WorldModel(...)` builds a model, it computes nothing yet
            return model if knowledge.is_forward(callee) else None

        super().__init__(context, forward)

    def event(self, value: Followed, event: PathEvent, at: At) -> Followed:
        if not isinstance(event, Backward):
            return value
        value, graph = self.backward_graph(value, event.site.node, at)
        if graph is None:
            return value
        for freed in sorted(value.marks, key=lambda m: m.site.seq):
            if freed.element in graph and together(freed.guards, at.guards):
                carried = (
                    self._carriers(freed.element, value.names, at) if freed.element[2] == 1 else ()
                )
                data = (freed.site, event.site, carried)
                key = (id(event.site.node),)
                at.report(Report(self.code, key, data, (freed.site.seq,)))
                break
        call = event.site.node
        if isinstance(call, cst.Call) and _retains(call):
            return value
        marks = {Mark(e, event.site, at.guards) for e in graph}
        return replace(value, marks=value.marks | marks).collected()

    def _carriers(self, element: Element, names: Names, at: At) -> tuple[str, ...]:
        """The names that brought an earlier run's graph into this one: those given to the
        forward call that holds it (`state` of `model(x, state)`), else every name holding it."""
        holding = tuple(n for n, g in names if element in g)
        call = self.reader.calls.get(element[0])
        if call is None:
            return holding
        given = {at.names.resolve(n) for arg in call.args for n in names_in(arg.value)}
        return tuple(n for n in holding if n in given) or holding

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in reports:
            first, second, carried = report.data
            yield _violation(self.context, first, second, carried)


def _retains(call: cst.Call) -> bool:
    for name in ("retain_graph", "create_graph"):
        value = argument(call, None, name)
        if value is not None and code_of(value) not in ("False", "None"):
            return True
    # loss.backward(gradient, retain_graph, create_graph) positionally
    positional = [a for a in call.args if a.keyword is None]
    return len(positional) >= 2 and code_of(positional[1].value) not in ("False", "None")


def _violation(context: Context, first: Site, second: Site, carried: tuple[str, ...]) -> Violation:
    first_call, second_call = first.node, second.node
    assert isinstance(first_call, cst.Call) and isinstance(second_call, cst.Call)
    if carried:  # a tensor kept from an earlier iteration: truncated backpropagation through time
        held = ", ".join(f"`{n}`" for n in carried[:3])
        return Violation(
            RULE.code,
            second_call,
            f"`{written(second_call)}` goes back into an earlier iteration's graph, which "
            f"`{written(first_call)}` (line {first.line}) already freed: {held} still holds it; "
            'autograd raises "Trying to backward through the graph a second time"; detach it '
            f"before it is used again (`{carried[0]}.detach()`, each tensor of a tuple)",
            trail=(
                f"{written(first_call)} at line {first.line}",
                "next iteration",
                written(second_call),
            ),
        )
    return Violation(
        RULE.code,
        second_call,
        f"`{written(second_call)}` goes back through the graph that `{written(first_call)}` "
        f'(line {first.line}) already freed: autograd raises "Trying to backward through the '
        'graph a second time"; pass `retain_graph=True` to the first call, or add the losses '
        "and call backward once",
        trail=(f"{written(first_call)} at line {first.line}", written(second_call)),
        fix=Rewrite(
            f"Add `retain_graph=True` to `{written(first_call)}`",
            lambda module: _retain(module, first_call),
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
    tracker=_SecondBackward,
    docs=DOCS,
)
