"""GL002 discarded-gradients: a reset throws away gradient before any update reads it."""

from __future__ import annotations

import libcst as cst

from gradlint.analysis.fix_safety import (
    depends_on_data,
    enclosing_function,
    guards,
    is_window_test,
    names_bound_at,
)
from gradlint.analysis.state import DiscardedGradient
from gradlint.analysis.syntax import bound_here, code_of, names_in, walk
from gradlint.fixes import Candidate, MoveAfter
from gradlint.rules import gl112_step_before_backward as gl112
from gradlint.rules.base import Context, Gradients, Rule, Violation, path_through
from gradlint.tree import Tree

RULE = Rule(
    code="GL002",
    name="discarded-gradients",
    summary="A reset throws away gradient before the update that should read it",
    fixable=True,
    docs="""## What it does
Finds paths on which gradient from a `backward()` is reset (`zero_grad()`, `p.grad = None`,
`p.grad.zero_()`) before any update reads it, and then either
- the next update of those parameters finds no gradient at all (a reset between `backward()`
  and `step()`), or
- the next update reads gradient from the same `backward()` call whose earlier gradient was
  discarded: accumulation defeated (a reset every iteration while the update runs only every
  k iterations).

It is reported at the reset, with the path from the `backward()` to the update.

A conditional update is accumulation only with evidence of it: a window on an iteration
counter (`i % k`, `step % accum == 0`, a name of accumulation such as `grad_accum_steps` or
`sync_gradients`) among the update's conditions, or the loss divided by a name those
conditions use. A step skipped by a condition on the data (`if torch.isfinite(grad_norm):
optimizer.step()`, `if loss.item() < limit:`), with a reset on every pass, throws the bad
batch's gradient away on purpose and is not reported. A reset that starves a step placed
before the `backward()` of its own pass is not reported either: the step's place is the bug
(GL112).

Not reported: gradient that one model's loss leaves in another model's parameters and that
the other model's own reset clears before its own update (GAN generator and discriminator);
a reset of a strict subset of the parameters (freezing layers with `p.grad = None` for some
of them); a reset under a condition that then skips the update with `continue` (discarding a
bad batch on purpose); a reset by a call gradlint cannot see into.

## Why is this bad?
The step sees no gradient, so the model does not learn (with `set_to_none=True` the step
skips the parameters entirely); or, with broken accumulation, each update uses only the last
micro-batch, silently shrinking the effective batch size by a factor of k.

## Example
```python
for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
```

## Use instead
```python
for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
```

## Fix safety
The fix moves the misplaced reset to directly after the update it starved (inside the
update's condition, for accumulation). A reset moved later never turns a value some read of
`.grad` saw into `None`, so the move is safe unless it enters or leaves a branch whose
condition depends on data (a call such as `torch.isfinite(norm)` or `loss.item()`): then it
is unsafe. A reset is never moved out of the function whose names it uses (`net.zero_grad()`
inside `def probe(net)`): no fix is offered; nor when the update is already followed by the
same reset (the missing update is the bug). The fix is kept only if the result parses,
compiles and re-lints with the finding gone and nothing new.
""",
    gradients=Gradients(
        DiscardedGradient,
        site=lambda finding: finding.reset,
        message=lambda finding: message(finding),
        trail=lambda finding: trail(finding),
        fixes=lambda finding, tree, reads: fix_candidates(finding, tree),
        kept=lambda findings, context, violations: kept(findings, context, violations),
    ),
)


def message(finding: DiscardedGradient) -> str:
    reset, backward, update = finding.reset, finding.backward, finding.update
    if finding.nothing_left:
        return (
            f"`{reset.label}` clears the gradients of `{backward.label}` (line {backward.line}) "
            f"before `{update.label}` (line {update.line}) applies them, so the update gets no "
            f"gradient"
        )
    return (
        f"`{reset.label}` clears the gradients that `{backward.label}` (line {backward.line}) "
        f"accumulated for `{update.label}` (line {update.line}), so gradient accumulation is "
        f"undone: the update sees only the last micro-batch"
    )


def trail(finding: DiscardedGradient) -> tuple[str, ...]:
    return path_through(finding.backward, finding.reset, finding.update)


def fix_candidates(finding: DiscardedGradient, tree: Tree) -> list[Candidate]:
    """Move the reset to right after the update it starved. Moving a reset later never turns a
    value some read of `.grad` saw into None; it is unsafe when it crosses a condition that
    depends on data, and never offered across a function whose names it would lose."""
    reset, update = finding.reset.node, finding.update.node
    if reset is None or update is None:
        return []
    moved = tree.statement(reset)
    anchor = tree.statement(update)
    if not isinstance(anchor, cst.SimpleStatementLine) or moved is None:
        return []
    if isinstance(moved, cst.SimpleStatementLine) and len(moved.body) != 1:
        return []
    # A reset inside `for p in params:` moves with its loop.
    parent_loop = next(iter(tree.loops(moved)), None)
    tensor = finding.reset.label.split(".grad", 1)[0]
    if isinstance(parent_loop, cst.For) and tensor in bound_here(parent_loop):
        moved = parent_loop
    if moved is anchor or any(a is moved for a in tree.ancestors(anchor)):
        return []
    following = tree.next_statement(anchor)
    if following is not None and _same_code(following, moved):
        # the update is already followed by this reset: the bug lies elsewhere (an update the
        # loop misses, e.g. on its last batch), and moving would only duplicate the line
        return []
    if not names_bound_at(moved, anchor, tree):
        return []
    crossed = _crossed_guards(moved, anchor, tree)
    same_function = enclosing_function(moved, tree) is enclosing_function(anchor, tree)
    safe = same_function and not any(depends_on_data(test) for test in crossed)
    description = f"Move `{finding.reset.label}` after `{update_label(finding)}`"
    return [Candidate(description, MoveAfter(moved, anchor), "safe" if safe else "unsafe")]


def _crossed_guards(
    moved: cst.CSTNode, anchor: cst.CSTNode, tree: Tree
) -> list[cst.BaseExpression]:
    """The conditions the reset leaves or enters by moving: those of one place, not both."""
    source = guards(moved, tree)
    destination = guards(anchor, tree)
    return [t for t in source if not any(t is d for d in destination)] + [
        t for t in destination if not any(t is o for o in source)
    ]


def deliberate_skip(finding: DiscardedGradient, tree: Tree) -> bool:
    """A step that a data-dependent condition skips (`if torch.isfinite(norm): opt.step()`),
    with a reset on every pass, throws the bad batch away on purpose: not accumulation. Only
    a window (`i % k`, an accumulation count, `sync_gradients`) or a loss divided by the
    count used in the step's condition shows that gradient was meant to be kept."""
    update = finding.update.node
    if finding.nothing_left or update is None:
        return False
    if finding.reset.node is not None and _same_window(finding.reset.node, update, tree):
        return True
    conditions = guards(update, tree)
    if not conditions or any(is_window_test(test) for test in conditions):
        return False
    return not _loss_scaled_by(conditions, finding, tree)


def _same_window(reset: cst.CSTNode, update: cst.CSTNode, tree: Tree) -> bool:
    """The reset runs only at the end of an accumulation window (`if step % k == 0:`), in the
    same window branch as the update: it discards a window's gradient only when that window's
    update was skipped on purpose (a non-finite norm), never the next window's micro-batches."""
    around_update = {id(a) for a in tree.ancestors(update)}
    for ancestor in tree.ancestors(reset):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
            return False
        if isinstance(ancestor, cst.If) and id(ancestor) in around_update:
            if is_window_test(ancestor.test):
                return True
    return False


def _loss_scaled_by(
    conditions: list[cst.BaseExpression], finding: DiscardedGradient, tree: Tree
) -> bool:
    """`loss = loss / n` (or `/=`) in the backward's function with `n` also in a condition."""
    backward = finding.backward.node
    function = enclosing_function(backward, tree) if backward is not None else None
    scope: cst.CSTNode = function if function is not None else tree.module
    in_conditions = {n for test in conditions for n in names_in(test)}
    for node in walk(scope):
        divisor = None
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
            divisor = node.right
        elif isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.DivideAssign):
            divisor = node.value
        if divisor is not None and names_in(divisor) & in_conditions:
            return True
    return False


def _same_code(first: cst.CSTNode, second: cst.CSTNode) -> bool:
    """Two statement lines doing the same thing (comments and blank lines aside)."""
    if not (
        isinstance(first, cst.SimpleStatementLine) and isinstance(second, cst.SimpleStatementLine)
    ):
        return False
    return [code_of(s) for s in first.body] == [code_of(s) for s in second.body]


def kept(
    findings: list[DiscardedGradient], context: Context, violations: list[Violation]
) -> list[DiscardedGradient]:
    """Without the findings that are no discard: a step skipped on purpose, and the reset that
    starves a step placed before its backward (that step is the bug, GL112, selected or not)."""
    if not findings:
        return findings
    early_steps = [v for v in violations if v.code == gl112.CODE] or list(gl112.check(context))
    early = {id(v.node) for v in early_steps}
    return [
        f for f in findings if not (id(f.update.node) in early or deliberate_skip(f, context.tree))
    ]


def update_label(finding: DiscardedGradient) -> str:
    return finding.update.label
