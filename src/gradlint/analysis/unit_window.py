"""Accumulation windows that break when the window size is 1.

The path analysis reasons about `i % k` for k >= 2, where accumulation code is meant to run.
Window sizes come from configuration, though, and k = 1 (no accumulation) is the usual
default: then `x % k` is always 0. A reset under `i % k == 1` never runs while a step under
`(i + 1) % k == 0` runs on every pass, so with k = 1 the optimizer never resets. This module
finds that shape: one reset of an optimizer in a loop, under a test on `% k` that is false
for k = 1, and the optimizer's step under tests on `% k` that are all true for k = 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.counters import is_modulo, modulo_target
from gradlint.analysis.events import Backward, Names, Recognizer, Reset, Update
from gradlint.analysis.fix_safety import guards
from gradlint.analysis.state import StaleGradient
from gradlint.analysis.syntax import Listing, code_of, walk
from gradlint.tree import Tree


def unit_windows(listed: Listing, tree: Tree, recognizer: Recognizer) -> Iterator[StaleGradient]:
    tests = (node.test for node in listed.of_type(cst.If) if isinstance(node, cst.If))
    if _never_for_one(list(tests)) is None:
        return  # no test in the module is false for a window of 1: nothing to look at
    for loop in listed.of_type(cst.For, cst.While):
        assert isinstance(loop, (cst.For, cst.While))
        yield from _in_loop(loop, tree, recognizer)


def _in_loop(
    loop: cst.For | cst.While, tree: Tree, recognizer: Recognizer
) -> Iterator[StaleGradient]:
    resets: dict[str, list[cst.Call]] = {}
    steps: dict[str, list[cst.Call]] = {}
    backwards: list[cst.Call] = []
    for node in walk(loop.body):
        if not isinstance(node, cst.Call):
            continue
        event = recognizer.call(node, Names())
        if isinstance(event, Reset) and event.optimizer:
            resets.setdefault(event.optimizer, []).append(node)
        elif isinstance(event, Update) and len(event.owners) == 1:
            steps.setdefault(event.owners[0], []).append(node)
        elif isinstance(event, Backward):
            backwards.append(node)
    for owner, updates in steps.items():
        owned = resets.get(owner, [])
        if len(updates) != 1 or len(owned) != 1 or not backwards:
            continue
        modulus = _never_for_one(guards(owned[0], tree, stop=loop))
        if modulus is None:
            continue
        if not all(_true_for_one(t, modulus) for t in guards(updates[0], tree, stop=loop)):
            continue
        step = recognizer.site(Names(), updates[0])
        yield StaleGradient(
            owner, recognizer.site(Names(), backwards[0]), step, step, when=f"`{modulus}` is 1"
        )


def _never_for_one(tests: list[cst.BaseExpression]) -> str | None:
    """The `k` of a test among `tests` that is false whenever k is 1 (`i % k == 1`)."""
    for test in tests:
        found = _modulo_test(test)
        if found is not None and found[1] is False:
            return found[0]
    return None


def _true_for_one(test: cst.BaseExpression, modulus: str) -> bool:
    found = _modulo_test(test)
    return found is not None and found == (modulus, True)


def _modulo_test(test: cst.BaseExpression) -> tuple[str, bool] | None:
    """(k, its value when k is 1) for `x % k == t`, `x % k != t`, `x % k == k - 1` and
    `x % k` with `k` a name: `x % 1` is always 0."""
    if isinstance(test, cst.BinaryOperation) and isinstance(test.operator, cst.Modulo):
        return _name_of(test.right, False)  # `if i % k:` is `i % k != 0`
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    comparison = test.comparisons[0]
    if not isinstance(comparison.operator, (cst.Equal, cst.NotEqual)):
        return None
    left, right = test.left, comparison.comparator
    if not is_modulo(left):
        left, right = right, left
    if not isinstance(left, cst.BinaryOperation) or not is_modulo(left):
        return None
    target = modulo_target(right, code_of(left.right))  # `t`, or -1 for `k - 1`
    if target is None or target < -1:
        return None
    zero = target in (0, -1)  # k - 1 is 0 when k is 1
    equal = isinstance(comparison.operator, cst.Equal)
    return _name_of(left.right, zero == equal)


def _name_of(modulus: cst.BaseExpression, value: bool) -> tuple[str, bool] | None:
    """Only a window size that can be 1: a name or an attribute, not a number."""
    if isinstance(modulus, (cst.Name, cst.Attribute)):
        return code_of(modulus), value
    return None
