"""GL001 stale-gradients: an update reads gradient that an earlier update already used."""

from __future__ import annotations

import libcst as cst

from gradlint.analysis.events import GroupKey
from gradlint.analysis.fix_safety import (
    GradReads,
    enclosing_function,
    guards,
    is_window_test,
    reads_before,
)
from gradlint.analysis.state import StaleGradient
from gradlint.analysis.syntax import bound_here, code_of, dotted, last_name, names_in, walk
from gradlint.analysis.torch_api import scaler_stepped
from gradlint.fixes import Candidate, InsertAfter, InsertBefore, InsertFirst
from gradlint.rules.base import Gradients, Rule, path_through
from gradlint.tree import Tree

RULE = Rule(
    code="GL001",
    name="stale-gradients",
    summary="An update reads gradient that an earlier update already used: no reset between them",
    fixable=True,
    docs="""## What it does
Finds paths through a training loop on which an update (`opt.step()`, `scaler.step(opt)`, a
manual `w -= lr * w.grad`) reads `.grad` that still holds gradient an earlier update of the
same parameters already used: update, then `backward()`, then update again, with no
`zero_grad()` (or `p.grad = None`, `p.grad.zero_()`) of those parameters in between. Paths
follow every enclosing loop's next iteration, `continue`, `break`, `if`/`elif`/`else`,
`try`/`except`/`finally`, `with`, `match` and early `return`, and go into functions and
methods of the same module. It is reported at the `backward()` that adds onto the used
gradient, with the path that proves it.

Typical causes: no reset at all; a reset only before the loop or only in the outer (epoch)
loop; a reset under a condition the update does not share (`if i % log_every == 0`); a reset
skipped by `continue`; the wrong model zeroed.

Deliberate accumulation is not reported: update and reset under the same condition
(`if (i + 1) % k == 0: opt.step(); opt.zero_grad()`), also as two `if`s with the same
condition, with `or last_batch`, written with `continue`, or under
`with accelerator.accumulate(model):`. Several `backward()` calls before one update are one
update's worth of gradient. A call gradlint cannot see into that receives the optimizer, the
model or its parameters may reset them, so nothing on that path is reported.

Window sizes usually come from configuration, and 1 (no accumulation) is a common value:
`x % 1` is always 0. When the only reset of an optimizer in a loop is under a test on
`% k` that is false for k = 1 (`step % k == 1`) and its update is under tests on `% k` that
are true for k = 1 (`step % k == 0`), the optimizer is never reset when k is 1: reported with
"when `k` is 1".

## Why is this bad?
PyTorch adds every `backward()` into `.grad`. Without a reset, each step applies the sum of
all gradients since training began: the loss oscillates or diverges, silently.

## Example
```python
for x, y in loader:
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
    optimizer.step()
```

## Fix safety
The fix inserts the reset (`<optimizer>.zero_grad()`, or `<tensor>.grad = None` for a
tensor updated by hand), choosing the first place that works, as PyTorch's tutorials do:
1. at the start of the iteration (the innermost loop, or a `training_step`-like function)
   that runs the `backward()`: safe when that backward runs on every pass, nothing before it
   in the pass may read `.grad` (a `.grad` attribute, clipping or norm functions, a helper of
   this module that reads them, or a call handed the model, the optimizer or parameters) or
   leave the pass, and the optimizer's name is bound before the pass;
2. right before the `backward()` (or before the call that runs it): safe, nothing runs in
   between;
3. right after the update (for accumulation, inside the update's condition): safe only when
   every read of `.grad` in the loop lies between an unconditional backward and the update,
   unsafe otherwise (a later read would find `None`).

Safe means the fixed program reads the same values as before, except the gradient each update
reads. Every fix is kept only if the result parses, compiles and re-lints with the finding
gone and nothing new. If the accumulation across iterations was intended, mark the line with
`# noqa: GL001` instead.
""",
    gradients=Gradients(
        StaleGradient,
        site=lambda finding: finding.backward,
        message=lambda finding: message(finding),
        trail=lambda finding: trail(finding),
        fixes=lambda finding, tree, reads: fix_candidates(finding, tree, reads),
    ),
)


def message(finding: StaleGradient) -> str:
    previous = finding.previous_update
    reset = _reset_words(finding.owner, finding.update)
    if finding.when is not None:
        return (
            f"when {finding.when}, {reset} never runs while `{finding.update.label}` (line "
            f"{finding.update.line}) runs every iteration: gradients accumulate across "
            f"iterations (`x % 1` is always 0)"
        )
    return (
        f"gradients accumulate across iterations because {reset} is never called between "
        f"updates: `{finding.backward.label}` adds to the gradients that `{previous.label}` "
        f"(line {previous.line}) already applied, and `{finding.update.label}` (line "
        f"{finding.update.line}) applies the sum"
    )


def trail(finding: StaleGradient) -> tuple[str, ...]:
    return path_through(finding.previous_update, finding.backward, finding.update)


def fix_candidates(finding: StaleGradient, tree: Tree, reads: GradReads) -> list[Candidate]:
    """Best first: a reset at the start of the iteration (where PyTorch's tutorials put it),
    else right before the `backward()` that adds onto used gradient, else after the update.
    A placement is safe only when no read of `.grad` can run between it and that backward."""
    update, backward = finding.update.node, finding.backward.node
    if update is None:
        return []
    anchor = tree.statement(update)
    if not isinstance(anchor, cst.SimpleStatementLine):
        return []
    optimizer = _optimizer_text(update)
    tensor = None if optimizer is not None else _tensor_text(update)
    if optimizer is None and tensor is None:
        return []
    code = f"{optimizer}.zero_grad()" if optimizer is not None else f"{tensor}.grad = None"
    target = optimizer or tensor or ""
    candidates: list[Candidate] = []
    region = _iteration(anchor, backward, tree)
    before = _reaching(region, backward, tree) if region is not None else None
    windowed = region is not None and any(
        is_window_test(t) for t in guards(anchor, tree, stop=region)
    )
    if region is not None and before is not None and not windowed:
        if _can_start_iteration(region, before, target, tree, reads):
            candidates.append(
                Candidate(
                    f"Insert `{code}` at the start of the iteration", InsertFirst(region, code)
                )
            )
        if _just_before_is_safe(before, backward, reads, tree):
            own_line = backward is not None and before is tree.statement(backward)
            label = finding.backward.label if own_line else "the call"
            candidates.append(
                Candidate(f"Insert `{code}` before `{label}`", InsertBefore(before, code))
            )
    loop = region if isinstance(region, (cst.For, cst.While)) else None
    after = "safe" if _after_is_safe(anchor, before, loop, tree, reads) else "unsafe"
    candidates.append(
        Candidate(
            f"Insert `{code}` after `{finding.update.label}`", InsertAfter(anchor, code), after
        )
    )
    closure = _closure_of(update, tree) if optimizer is not None else None
    if closure is not None and isinstance(closure.body, cst.IndentedBlock):
        # LBFGS evaluates the closure several times per step: it must reset itself
        candidates.append(
            Candidate(f"Insert `{code}` at the start of the closure", InsertFirst(closure, code))
        )
    return candidates


def _iteration(
    anchor: cst.BaseStatement, backward: cst.CSTNode | None, tree: Tree
) -> cst.For | cst.While | cst.FunctionDef | None:
    """What one iteration of training is, as a block to put a reset into: the innermost loop of
    the update's function from which the backward is reached (in it, or through a call made in
    it), else the update's function when the backward is in it too (a `training_step` that a
    framework calls once per batch)."""
    if backward is None:
        return None
    for loop in tree.loops(anchor):
        if _reaching(loop, backward, tree) is not None:
            return loop
    function = enclosing_function(anchor, tree)
    if function is not None and function is enclosing_function(backward, tree):
        return function
    return None


def _reaching(
    region: cst.CSTNode, backward: cst.CSTNode | None, tree: Tree
) -> cst.BaseStatement | None:
    """The statement of `region` that runs the backward: the backward's own line, or the first
    line that calls the function the backward is in."""
    if backward is None:
        return None
    if any(a is region for a in tree.ancestors(backward)):
        statement = tree.statement(backward)
        if statement is None or enclosing_function(statement, tree) is not _function_of(
            region, tree
        ):
            return None
        return statement
    function = enclosing_function(backward, tree)
    if function is None:
        return None
    for node in walk(region):
        if isinstance(node, cst.Call) and last_name(node.func) == function.name.value:
            statement = tree.statement(node)
            if isinstance(statement, cst.SimpleStatementLine):
                return statement
    return None


def _function_of(region: cst.CSTNode, tree: Tree) -> cst.FunctionDef | None:
    return region if isinstance(region, cst.FunctionDef) else enclosing_function(region, tree)


def _can_start_iteration(
    loop: cst.For | cst.While | cst.FunctionDef,
    before: cst.BaseStatement,
    target: str,
    tree: Tree,
    reads: GradReads,
) -> bool:
    """At the top of the pass the reset must run on every pass that reaches the backward,
    nothing before the backward may read `.grad`, and its receiver must already be bound."""
    if not isinstance(loop.body, cst.IndentedBlock) or tree.conditional_within(before, loop):
        return False
    bound_inside = names_in(cst.parse_expression(target)) & _rebound(loop.body)
    return not bound_inside and not reads_before(reads, loop, before, tree)


def _rebound(block: cst.BaseSuite) -> set[str]:
    """Names a block binds anew (`x += 1` changes a name that must already be bound)."""
    return {
        name
        for node in walk(block)
        if not isinstance(node, cst.AugAssign)
        for name in bound_here(node)
    }


def _just_before_is_safe(
    before: cst.BaseStatement, backward: cst.CSTNode | None, reads: GradReads, tree: Tree
) -> bool:
    """Right before the backward's line nothing can run in between, unless the same line reads
    `.grad` ahead of the backward (`log(p.grad); loss.backward()`)."""
    if not isinstance(before, cst.SimpleStatementLine) or backward is None:
        return False
    for small in before.body:
        if backward is small or any(a is small for a in tree.ancestors(backward)):
            return True
        if reads.reads(small):
            return False
    return True


def _after_is_safe(
    anchor: cst.SimpleStatementLine,
    before: cst.BaseStatement | None,
    loop: cst.For | cst.While | None,
    tree: Tree,
    reads: GradReads,
) -> bool:
    """Right after the update, a later read of `.grad` (logging, an assert, a check at the top
    of the next pass) would find None. Safe only when every read in the loop lies between a
    backward that runs on every pass and the update; not in a helper whose callers may read."""
    if loop is None:
        return False
    order = {id(node): index for index, node in enumerate(walk(loop.body))}
    steady = before is not None and not tree.conditional_within(before, loop)
    low = order.get(id(before), -1) if steady else len(order)
    high = order.get(id(anchor), -1)
    return all(low < order[id(site)] < high for site in reads.sites(loop.body, exclude=anchor))


def _closure_of(update: cst.CSTNode, tree: Tree) -> cst.FunctionDef | None:
    """The function passed as `opt.step(closure)`, when it is defined in this module."""
    if not (isinstance(update, cst.Call) and update.args):
        return None
    name = dotted(update.args[0].value)
    if name is None:
        return None
    for node in walk(tree.module):
        if isinstance(node, cst.FunctionDef) and node.name.value == name:
            return node
    return None


def _reset_words(owner: str, update_site: object) -> str:
    if isinstance(owner, GroupKey) or "," in owner:
        return f"reset of the gradients of `{owner}`"
    node = getattr(update_site, "node", None)
    if node is not None and _optimizer_text(node) is not None:
        return f"`{owner}.zero_grad()`"
    return f"reset of `{owner}.grad`"


def _optimizer_text(update: cst.CSTNode) -> str | None:
    """`opt` of `opt.step()`, `scaler.step(opt)`; None for a manual tensor update."""
    if not (isinstance(update, cst.Call) and isinstance(update.func, cst.Attribute)):
        return None
    if update.func.attr.value != "step":
        return None
    stepped = scaler_stepped(update)
    return code_of(stepped if stepped is not None else update.func.value)


def _tensor_text(update: cst.CSTNode) -> str | None:
    if isinstance(update, (cst.AugAssign, cst.Assign)):
        target = update.target if isinstance(update, cst.AugAssign) else update.targets[0].target
        text = dotted(target)
    elif isinstance(update, cst.Call) and isinstance(update.func, cst.Attribute):
        text = dotted(update.func.value)
    else:
        return None
    if text is None:
        return None
    return text[: -len(".data")] if text.endswith(".data") else text
