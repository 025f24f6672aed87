"""GL101 accumulated-loss: a loss that requires grad summed or collected across iterations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Union

import libcst as cst

from gradlint.analysis.accumulation import Kept, base, detaches
from gradlint.analysis.calls import local_names, parameter_names
from gradlint.analysis.events import Backward, Site
from gradlint.analysis.index import MODULE
from gradlint.analysis.syntax import dotted, last_name, names_in, walk, written
from gradlint.analysis.torch_api import backward_loss
from gradlint.analysis.tracking import Accumulate, At, PathEvent, Report, Tracker, common
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL101"
DOCS = """## What it does
Finds a loss tensor that requires grad accumulated inside a loop into something that
outlives the iteration: `total_loss += loss`, `running = running + loss`,
`losses.append(loss)`, an attribute (`self.total += loss`), a dict entry (`stats["loss"] +=
loss`), or a method of a class of the module that adds its argument into an attribute
(`meter.update(loss, n)` of an `AverageMeter` whose `update` does `self.sum += val * n`,
for `meter = AverageMeter()` in the module). A loss is what a `.backward()` met in the same
pass of the loop starts from, or a name assigned from a criterion or `F.*_loss` call that the
backward's loss is computed from. The accumulator must not be rebound inside the loop (a list
or dict made fresh each iteration and summed for one backward is fine).

The rule follows the paths of the training loop into the module's helpers: a backward in an
`optimize(loss)` helper makes the caller's `loss` a loss, and a helper that appends what it
is given (`record(history, value)`, a trainer's `self._log(value)`) keeps the caller's loss.
A helper's own locals are not the caller's names spelled alike: a helper that backpropagates
its local `loss` and returns `loss.item()` leaves the caller's `loss` a number.

Not reported: `loss.item()`, `float(loss)`, `loss.detach()`, `loss.cpu().item()`, `+=` under
`torch.no_grad()` (the sum then records no graph), and evaluation loops without a backward.
`losses.append(loss)` is reported even under `torch.no_grad()`: the list holds the loss
tensor, and the tensor holds its graph.

## Why is this bad?
A loss that requires grad references the whole graph that computed it, with the activations
saved for backward. Adding it to a running total builds one ever-longer graph across
iterations (and a list keeps every iteration's graph): memory grows every step until the run
ends with an out-of-memory error, and `backward()` on the total would walk all of them.

## Example
```python
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
total_loss = 0.0
for step in range(10):
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    total_loss += loss
```

## Use instead
```python
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
total_loss = 0.0
for step in range(10):
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    total_loss += loss.item()
```

## Fix safety
For `+=` and `acc = acc + loss` the fix reads the loss as `loss.item()`; the accumulator then
holds a Python float instead of a tensor. It is safe when the accumulator starts as a number
literal and no method or attribute of it is used; it is unsafe when it starts as something
else; there is no fix when the code uses it as a tensor (`total.item()`). For `append` the
fix stores `loss.detach()`, the same values without the graph; it is offered only when no
backward in the function reads the list. Where the kept value is a helper's parameter
(`history.append(value)` in `record(history, value)`), the fix is unsafe: other calls may give
the helper values that are not tensors. For a method that keeps its argument the fix passes
`loss.detach()`: the method still receives a tensor, without the graph (safe).
"""


class _AccumulatedLoss(Tracker):
    """Per path, the losses backpropagated in the current pass of each loop and the values kept
    in that pass before its backward; a kept value that reads such a loss is reported.

    Names are the caller's where a helper's parameter stands for the caller's object; a
    helper's own locals are told apart from the caller's names spelled alike (`loss@<id>`)."""

    code = CODE

    def __init__(self, context: Context):
        self.context = context
        self._losses: dict[tuple[int, str], frozenset[str]] = {}
        self._loops = {id(n): n for n in context.listed.of_type(cst.For, cst.While)}
        self._locals: dict[int, frozenset[str]] = {}
        self._candidates = _loss_names(context)

    def start(self) -> frozenset[_Fact]:
        return frozenset()

    def _key(self, at: At, name: str) -> str:
        """How the facts know `name` where `at` is: a parameter standing for the caller's
        object by the caller's name; a local of a helper called inside the loop (not of the
        function that runs the loop) by its name and the helper's."""
        if self.context.handed_over(at, name):
            return at.names.resolve(name)
        head = name.split(".", 1)[0].split("[", 1)[0]
        if not at.names.via or head in ("self", "cls") or head not in self._locals_of(at.scope):
            return name
        if at.loops and self._loop_owner(at.loops[-1]) == at.scope:
            return name  # the function that runs the loop: the names the facts are about
        return f"{name}@{at.scope}"

    def _loop_owner(self, loop: int) -> int:
        node = self._loops.get(loop)
        function = self.context.tree.function(node) if node is not None else None
        return id(function) if function is not None else MODULE

    def _locals_of(self, scope: int) -> frozenset[str]:
        known = self._locals.get(scope)
        if known is None:
            function = self.context.functions.get(scope)
            known = frozenset()
            if function is not None:
                known = frozenset(local_names(function) | set(parameter_names(function)))
            self._locals[scope] = known
        return known

    def event(self, value: frozenset[_Fact], event: PathEvent, at: At) -> frozenset[_Fact]:
        if isinstance(event, Backward):
            return self._backward(value, event, at)
        if not isinstance(event, Accumulate) or not at.loops or detaches(event.kept.value):
            return value
        if at.grad_off and event.kept.kind != "append":
            return value  # the sum records no graph (a list still holds the tensor)
        raw = names_in(event.kept.value)
        if not raw & self._candidates and not {at.names.resolve(n) for n in raw} & self._candidates:
            return value  # reads nothing that may be a loss
        target = self._key(at, event.kept.target)
        reads = frozenset((self._key(at, n), n) for n in raw if n != event.kept.target)
        pending = _Pending(event, target, reads, at.loops[-1])
        losses = {f.name: f for f in value if isinstance(f, _Loss) and f.loop == pending.loop}
        if target in losses:
            return value  # summed into the loss that is backpropagated
        met = sorted((key, n) for key, n in reads if key in losses)
        if met:
            self._report(at, pending, losses[met[0][0]], met[0][1])
            return value
        return value | {pending}

    def _backward(self, value: frozenset[_Fact], event: Backward, at: At) -> frozenset[_Fact]:
        call = event.site.node
        if not at.loops or not isinstance(call, cst.Call):
            return value
        start = backward_loss(call)
        loss = dotted(start) if start is not None else None
        if loss is None:
            return value
        loop = at.loops[-1]
        names = {self._key(at, n) for n in self._sources(call, loss)}
        kept = set()
        for fact in value:
            if isinstance(fact, _Pending) and fact.loop == loop:
                if fact.target in names:
                    continue  # summed into the loss that is backpropagated
                met = sorted((key, n) for key, n in fact.reads if key in names)
                if met:
                    self._report(at, fact, _Loss(met[0][0], loop, event.site), met[0][1])
                    continue
            kept.add(fact)
        return frozenset(kept) | {_Loss(n, loop, event.site) for n in names}

    def _sources(self, call: cst.Call, loss: str) -> frozenset[str]:
        """The loss and the criterion results it is computed from (`loss = ce + 0.1 * reg`
        with `ce = criterion(out, y)`), by the assignments of the backward's function."""
        scope = self.context.tree.function(call) or self.context.module
        key = (id(scope), loss)
        known = self._losses.get(key)
        if known is None:
            assigned = _assignments(scope)
            found = {loss} | {
                s
                for s in _sources(loss, assigned)
                if any(_is_criterion(v) for v in assigned.get(s, []))
            }
            known = frozenset(n for n in found if not any(detaches(v) for v in assigned.get(n, [])))
            self._losses[key] = known
        return known

    def _report(self, at: At, pending: _Pending, loss: _Loss, spelled: str) -> None:
        """`spelled`: the loss as the kept value spells it (a helper's parameter)."""
        node = pending.kept.site.node
        if node is not None:
            data = (pending, loss.backward, spelled, self._loops.get(pending.loop))
            at.report(Report(self.code, (id(node),), data, (pending.kept.site.seq,)))

    def assign(
        self, value: frozenset[_Fact], statement: cst.CSTNode, targets: set[str], at: At
    ) -> frozenset[_Fact]:
        """A name bound anew no longer holds the loss (`q_loss, _ = update(batch)` gets what
        a helper returned, `loss = loss.item()` a number)."""
        if not value:
            return value
        keys = {self._key(at, t) for t in targets}
        kept = frozenset(f for f in value if not (isinstance(f, _Loss) and f.name in keys))
        return kept if len(kept) < len(value) else value

    def forget(self, value: frozenset[_Fact], names: set[str]) -> frozenset[_Fact]:
        """A function returned: what is known of its own locals goes."""
        if not value:
            return value
        kept = frozenset(f for f in value if not _about(f, names))
        return kept if len(kept) < len(value) else value

    def leave_pass(self, value: frozenset[_Fact], loop: int) -> frozenset[_Fact]:
        return frozenset(f for f in value if f.loop != loop) if value else value

    def join(self, values: list[frozenset[_Fact]]) -> frozenset[_Fact]:
        return common(values)

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in sorted(reports, key=lambda r: r.order):
            pending, backward, spelled, loop = report.data
            node = pending.kept.site.node
            raw = pending.kept.kept.target
            if _rebound(self.context, node, raw, self.context.tree.loops(node)[:1]):
                continue  # made anew every iteration (in the loop around it): it does not outlive it
            if loop is not None and _rebound(self.context, node, pending.kept.target, [loop]):
                continue  # made anew in every pass of the caller's loop
            yield _violation(self.context, pending.kept, spelled, backward)


@dataclass(frozen=True)
class _Loss:
    """`name` holds a loss backpropagated at `backward` in the current pass of `loop`."""

    name: str
    loop: int
    backward: Site = field(compare=False, hash=False)


@dataclass(frozen=True)
class _Pending:
    """A value kept in the current pass of `loop` before any backward of it: into `target`,
    reading `reads` ((key, as spelled) of each name)."""

    kept: Accumulate
    target: str
    reads: frozenset[tuple[str, str]]
    loop: int


_Fact = Union[_Loss, _Pending]


def _about(fact: _Fact, names: set[str]) -> bool:
    """Whether the fact is about a local (`name@scope`) of a function whose locals are `names`."""
    keys = [fact.name] if isinstance(fact, _Loss) else [fact.target, *(k for k, _ in fact.reads)]
    return any("@" in key and key.split("@", 1)[0] in names for key in keys)


def _loss_names(context: Context) -> frozenset[str]:
    """The names a backward starts from and those assigned a criterion's result: only a value
    that reads one of them may keep a loss (the others are not followed)."""
    found: set[str] = set()
    for node in context.listed.of_type(cst.Call):
        assert isinstance(node, cst.Call)
        start = backward_loss(node)
        name = dotted(start) if start is not None else None
        if name is not None:
            found.add(name)
    for node in context.listed.of_type(cst.Assign):
        assert isinstance(node, cst.Assign)
        if _is_criterion(node.value):
            found.update(n for t in node.targets if (n := dotted(t.target)) is not None)
    return frozenset(found)


def _rebound(context: Context, node: cst.CSTNode, target: str, loops: list) -> bool:
    """Whether `target` (or the dict it is an entry of) is assigned something that does not
    read it, in the loop given or else in the function (or module) holding `node`."""
    scope = loops[0] if loops else (context.tree.function(node) or context.module)
    assigned = _assignments(scope)
    if any(target not in names_in(v) for v in assigned.get(target, [])):
        return True
    return base(target) != target and base(target) in assigned


def _assignments(body: cst.CSTNode) -> dict[str, list[cst.BaseExpression]]:
    """name -> the values assigned to it in the body (plain `=` only)."""
    out: dict[str, list[cst.BaseExpression]] = {}
    for node in walk(body):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                name = dotted(target.target)
                if name is not None:
                    out.setdefault(name, []).append(node.value)
    return out


def _sources(name: str, assigned: dict[str, list[cst.BaseExpression]]) -> set[str]:
    """Names the loss is computed from, through the assignments of the loop body."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        for value in assigned.get(stack.pop(), []):
            for read in names_in(value):
                if read in assigned and read not in seen:
                    seen.add(read)
                    stack.append(read)
    return seen


def _is_criterion(value: cst.BaseExpression) -> bool:
    if not isinstance(value, cst.Call):
        return False
    name = (last_name(value.func) or "").lower()
    return name in ("criterion", "loss_fn", "loss_func") or name.endswith("_loss")


def _violation(context: Context, kept: Accumulate, name: str, backward: Site) -> Violation:
    """`name`: the loss as the kept value spells it."""
    how = kept.kept
    node = kept.site.node
    assert node is not None
    line = backward.line
    if how.kind == "keep":
        return _kept_violation(context, node, how, name, backward)
    target = how.target
    method = "detach" if how.kind == "append" else "item"
    message = (
        f"`{target}` {'collects' if how.kind == 'append' else 'adds up'} `{name}`, which "
        f"requires grad (backward at line {line}): every iteration's graph stays alive and "
        f"memory grows; use `{name}.{method}()`"
    )
    trail = (f"`{backward.label}` at line {line}", f"accumulated into `{target}`")
    scope = context.tree.function(node) or context.module
    if how.kind == "append" and _reaches_backward(scope, target):
        return Violation(CODE, node, message, trail)
    accumulator = "list" if how.kind == "append" else _accumulator_kind(scope, target)
    new_value = _wrapped(how.value, name, method)
    if new_value is None or accumulator == "tensor":
        return Violation(CODE, node, message, trail)
    # a helper's parameter may be given other values elsewhere (a float has no `.detach()`)
    given = isinstance(scope, cst.FunctionDef) and name in parameter_names(scope)
    safe = accumulator in ("list", "number") and not given
    fix = Rewrite(
        f"Accumulate `{name}.{method}()`",
        _replacing(how.value, new_value),
        "safe" if safe else "unsafe",
    )
    return Violation(CODE, node, message, trail, fix)


def _kept_violation(
    context: Context, call: cst.CSTNode, how: Kept, loss: str, backward: Site
) -> Violation:
    keeper = how.keeper
    assert keeper is not None
    method = keeper.method.name.value
    where = context.positions.of(keeper.method)[0]
    line = backward.line
    message = (
        f"`{written(call)}` keeps `{loss}`, which requires grad (backward at line {line}): "
        f"`{method}` (line {where}) adds it into `{keeper.attribute}`, so "
        f"every iteration's graph stays alive and memory grows; pass `{loss}.item()`"
    )
    trail = (f"`{backward.label}` at line {line}", f"kept in `{keeper.attribute}` by `{method}`")
    new_value = _wrapped(how.value, loss, "detach")
    if new_value is None:
        return Violation(CODE, call, message, trail)
    # `.detach()` keeps the argument a tensor, so the method runs as before, without the graph
    return Violation(
        CODE,
        call,
        message,
        trail,
        Rewrite(f"Pass `{loss}.detach()`", _replacing(how.value, new_value)),
    )


def _replacing(
    old: cst.BaseExpression, new: cst.BaseExpression
) -> Callable[[cst.Module], cst.Module | None]:
    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(old, new)
        return result if isinstance(result, cst.Module) else None

    return apply


def _wrapped(value: cst.BaseExpression, loss: str, method: str) -> cst.BaseExpression | None:
    """`loss` -> `loss.item()` when the value is the loss or a sum/product with it as a term."""

    def call(name: cst.BaseExpression) -> cst.BaseExpression:
        return cst.Call(func=cst.Attribute(value=name, attr=cst.Name(method)))

    if isinstance(value, cst.Name) and value.value == loss:
        return call(value)
    if isinstance(value, cst.BinaryOperation):
        if isinstance(value.left, cst.Name) and value.left.value == loss:
            return value.with_changes(left=call(value.left))
        if isinstance(value.right, cst.Name) and value.right.value == loss:
            return value.with_changes(right=call(value.right))
    return None


def _reaches_backward(scope: cst.CSTNode, target: str) -> bool:
    for node in walk(scope):
        if isinstance(node, cst.Call) and last_name(node.func) == "backward":
            if any(n == target for n in names_in(node)):
                return True
    return False


def _accumulator_kind(scope: cst.CSTNode, target: str) -> str:
    """ "number" when it starts as a number literal, "tensor" when the code uses a method or
    attribute of it (`acc.item()`), else "unknown"."""
    starts = False
    for node in walk(scope):
        if isinstance(node, cst.Assign) and any(dotted(t.target) == target for t in node.targets):
            if isinstance(node.value, (cst.Integer, cst.Float)):
                starts = True
        if isinstance(node, cst.Attribute) and dotted(node.value) == target:
            return "tensor"
    return "number" if starts else "unknown"


RULE = Rule(
    code=CODE,
    name="accumulated-loss",
    summary="A loss that requires grad is accumulated across iterations: every graph stays alive",
    fixable=True,
    triggers=("backward(",),
    docs=DOCS,
    tracker=_AccumulatedLoss,
)
