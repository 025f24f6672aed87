"""GL001 stale-gradients: an update reads gradient that an earlier update already used."""

from __future__ import annotations

import libcst as cst

from gradlint.analysis.state import StaleGradient
from gradlint.analysis.syntax import assigned_targets, code_of, dotted, names_in, walk
from gradlint.fixes import Edit, InsertAfter, InsertFirst
from gradlint.rules.base import Rule, path_through
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
The fix inserts `<optimizer>.zero_grad()` at the start of the innermost loop iteration (or,
when the update is conditional, directly after it inside its condition); for a tensor updated
by hand it inserts `<tensor>.grad = None` directly after the update. The fix is applied only
if the result parses and re-linting shows the finding gone and no new GL001/GL002. It changes
what the loop computes, on purpose; if the accumulation across iterations was intended, mark
the line with `# noqa: GL001` instead.
""",
)


def message(finding: StaleGradient) -> str:
    previous = finding.previous_update
    reset = _reset_words(finding.owner, finding.update)
    return (
        f"`{finding.backward.label}` adds onto gradient that `{previous.label}` (line "
        f"{previous.line}) already used; no {reset} before `{finding.update.label}` "
        f"at line {finding.update.line}"
    )


def trail(finding: StaleGradient) -> tuple[str, ...]:
    return path_through(finding.previous_update, finding.backward, finding.update)


def fix_candidates(finding: StaleGradient, tree: Tree) -> tuple[str, list[Edit]]:
    update = finding.update.node
    if update is None:
        return "", []
    anchor = tree.statement(update)
    if not isinstance(anchor, cst.SimpleStatementLine):
        return "", []
    optimizer = _optimizer_text(update)
    if optimizer is not None:
        code = f"{optimizer}.zero_grad()"
        candidates: list[Edit] = []
        backward = finding.backward.node
        backward_ancestors = {id(a) for a in tree.ancestors(backward)} if backward else set()
        for loop in tree.loops(anchor):
            if id(loop) in backward_ancestors:
                # at the top of the pass the optimizer's name must already be bound
                bound_inside = names_in(cst.parse_expression(optimizer)) & assigned_targets(
                    loop.body
                )
                if (
                    not tree.conditional_within(anchor, loop)
                    and isinstance(loop.body, cst.IndentedBlock)
                    and not bound_inside
                ):
                    candidates.append(InsertFirst(loop, code))
                break
        candidates.append(InsertAfter(anchor, code))
        closure = _closure_of(update, tree)
        if closure is not None and isinstance(closure.body, cst.IndentedBlock):
            # LBFGS evaluates the closure several times per step: it must reset itself
            candidates.append(InsertFirst(closure, code))
        return f"Insert `{code}`", candidates
    tensor = _tensor_text(update)
    if tensor is None:
        return "", []
    code = f"{tensor}.grad = None"
    return f"Insert `{code}` after the update", [InsertAfter(anchor, code)]


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
    if owner.endswith(".parameters()") or "," in owner:
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
    receiver = code_of(update.func.value)
    if "scaler" in receiver.lower() and update.args:
        return code_of(update.args[0].value)
    return receiver


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
