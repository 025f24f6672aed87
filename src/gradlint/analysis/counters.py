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

from gradlint.analysis.syntax import code_of

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
    if not _is_modulo(left):
        left, right = right, left
    if not _is_modulo(left):
        return None
    assert isinstance(left, cst.BinaryOperation)
    target = _target(right, code_of(left.right))
    if target is None:
        return None
    return _modulo(left, target, equal)


def _is_modulo(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo)


def _modulo(node: cst.BinaryOperation, target: int, equal: bool) -> ResidueTest | None:
    counter_offset = _counter_plus(node.left)
    if counter_offset is None:
        return None
    counter, offset = counter_offset
    return ResidueTest(counter, code_of(node.right), target - offset, equal)


def _counter_plus(node: cst.BaseExpression) -> tuple[str, int] | None:
    if isinstance(node, cst.Name):
        return node.value, 0
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        sign = 1 if isinstance(node.operator, cst.Add) else -1
        if isinstance(node.left, cst.Name) and isinstance(node.right, cst.Integer):
            return node.left.value, sign * int(node.right.value)
        if sign == 1 and isinstance(node.right, cst.Name) and isinstance(node.left, cst.Integer):
            return node.right.value, int(node.left.value)
    return None


def _target(node: cst.BaseExpression, modulus: str) -> int | None:
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
