"""What is known about a loop counter modulo k, so that `if i % k == 0: reset` at the top and
`if (i + 1) % k == 0: step` at the bottom are seen to alternate as they do at run time.

A counter of `for i in range(n)` / `enumerate(x)` is 0 on the first pass and grows by one per
pass. For each (counter, k) a state may know `i ≡ exact (mod k)` and residues `i` is not
congruent to. Nothing is assumed about k except k ≥ 2 (with k = 1 every such test is true and
accumulation code is trivially correct), so residues one apart are never congruent.
Offsets are kept within a small window so that the set of states stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.syntax import bound_here, code_of, dotted, every_pass, walk

WINDOW = 2


@dataclass(frozen=True)
class Residue:
    counter: str
    modulus: str  # source text of k
    exact: int | None = None
    excluded: frozenset[int] = frozenset()

    def value(self, residue: int) -> bool | None:
        """Is `counter ≡ residue (mod k)`? None when unknown."""
        if self.exact is not None:
            if self.exact == residue:
                return True
            if abs(self.exact - residue) == 1:
                return False
        if residue in self.excluded:
            return False
        return None

    def assume(self, residue: int, holds: bool) -> Residue:
        if holds:
            return Residue(self.counter, self.modulus, residue, self.excluded - {residue})
        return Residue(self.counter, self.modulus, self.exact, self.excluded | {residue})

    def next_pass(self) -> Residue | None:
        exact = self.exact + 1 if self.exact is not None and abs(self.exact + 1) <= WINDOW else None
        excluded = frozenset(r + 1 for r in self.excluded if abs(r + 1) <= WINDOW)
        if exact is None and not excluded:
            return None
        return Residue(self.counter, self.modulus, exact, excluded)


@dataclass(frozen=True)
class ResidueTest:
    """`(counter + offset) % modulus == target` (or `!=`), as `counter ≡ residue (mod k)`."""

    counter: str
    modulus: str
    residue: int
    equal: bool


def residue_test(test: cst.BaseExpression) -> ResidueTest | None:
    if isinstance(test, cst.BinaryOperation) and isinstance(test.operator, cst.Modulo):
        return _modulo(test, 0, equal=False)  # `if i % k:` is `i % k != 0`
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    comparison = test.comparisons[0]
    if not isinstance(comparison.operator, (cst.Equal, cst.NotEqual)):
        return None
    equal = isinstance(comparison.operator, cst.Equal)
    left, right = test.left, comparison.comparator
    if not is_modulo(left):
        left, right = right, left
    if not is_modulo(left):
        return None
    assert isinstance(left, cst.BinaryOperation)
    target = modulo_target(right, code_of(left.right))
    if target is None:
        return None
    return _modulo(left, target, equal)


def is_modulo(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo)


def _modulo(node: cst.BinaryOperation, target: int, equal: bool) -> ResidueTest | None:
    counter_offset = _counter_plus(node.left)
    if counter_offset is None:
        return None
    counter, offset = counter_offset
    return ResidueTest(counter, code_of(node.right), target - offset, equal)


def _counter_plus(node: cst.BaseExpression) -> tuple[str, int] | None:
    """`i`, `i + 1`, `step - 1`, `self.global_step + 1`, `engine.state.iteration`: the counter
    (a name or an attribute chain) and the offset."""
    if isinstance(node, (cst.Name, cst.Attribute)):
        text = dotted(node)
        return (text, 0) if text is not None else None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        sign = 1 if isinstance(node.operator, cst.Add) else -1
        left, right = dotted(node.left), dotted(node.right)
        if left is not None and isinstance(node.right, cst.Integer):
            return left, sign * int(node.right.value)
        if sign == 1 and right is not None and isinstance(node.left, cst.Integer):
            return right, int(node.left.value)
    return None


def modulo_target(node: cst.BaseExpression, modulus: str) -> int | None:
    """`0`, `2`, or `k - 1` (which is -1 modulo k)."""
    if isinstance(node, cst.Integer):
        return int(node.value)
    if (
        isinstance(node, cst.BinaryOperation)
        and isinstance(node.operator, cst.Subtract)
        and isinstance(node.right, cst.Integer)
        and code_of(node.left) == modulus
    ):
        return -int(node.right.value)
    return None


def increment_of(stmt: cst.CSTNode) -> str | None:
    """`x` of `x += 1` (a name or an attribute chain)."""
    if (
        isinstance(stmt, cst.AugAssign)
        and isinstance(stmt.operator, cst.AddAssign)
        and isinstance(stmt.value, cst.Integer)
        and stmt.value.value == "1"
    ):
        return dotted(stmt.target)
    return None


def advanced_counter(body: cst.BaseSuite) -> str | None:
    """The counter a loop body advances by one on every pass: one `x += 1` among the body's
    own statements (`with` blocks opened), and `x` bound nowhere else in the body."""
    found: list[tuple[str, cst.CSTNode]] = []
    for statement in every_pass(body):
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                counter = increment_of(small)
                if counter is not None:
                    found.append((counter, small))
    if len(found) != 1:
        return None
    counter, increment = found[0]
    for node in walk(body):
        if node is increment:
            continue
        if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr)):
            if counter in bound_here(node):
                return None
    return counter


def per_call_counters(function: cst.FunctionDef) -> frozenset[str]:
    """Counters a framework advances once per call of a step function: ignite's
    `engine.state.iteration` for a process function `def update(engine, batch)`."""
    params = function.params.params
    if params and params[0].name.value != "self":
        return frozenset({f"{params[0].name.value}.state.iteration"})
    return frozenset()
