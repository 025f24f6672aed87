"""What a branch condition says, read from its syntax alone.

Conditions are compared by source text; a few forms are understood: `p.grad is not None`
guards, first-pass tests of a loop counter (`if i > 0:`), and the `while True` that never ends.
"""

from __future__ import annotations

import libcst as cst

from gradlint.analysis.syntax import bound_here, code_of, dotted, last_name, names_in, walk

SYNC_GRADIENTS = "<sync_gradients>"  # Accelerate's accumulate(): step and zero_grad are gated


_NAME_CACHE: dict[str, frozenset[str]] = {}


def condition_names(key: str) -> frozenset[str]:
    names = _NAME_CACHE.get(key)
    if names is None:
        try:
            names = frozenset(names_in(cst.parse_expression(key)))
        except cst.ParserSyntaxError:
            names = frozenset()
        _NAME_CACHE[key] = names
    return names


def condition_key(test: cst.BaseExpression) -> tuple[str | None, bool]:
    polarity = True
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        polarity = not polarity
        test = test.expression
    empty = emptiness_key(test)
    if empty is not None:
        return empty[0], empty[1] == polarity
    text = code_of(test)
    if text.endswith("sync_gradients"):
        return SYNC_GRADIENTS, polarity
    return text, polarity


def is_stable(test: cst.BaseExpression) -> bool:
    """A condition whose value cannot change between two reads in one iteration."""
    for node in walk(test):
        if isinstance(node, cst.Call) and last_name(node.func) not in ("len", "int", "bool"):
            return False
        if isinstance(node, (cst.NamedExpr, cst.Await, cst.Yield)):
            return False
    return True


def grad_guard(test: cst.BaseExpression) -> bool | None:
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    target = test.comparisons[0]
    left = dotted(test.left) or ""
    if not (left.endswith(".grad") and isinstance(target.comparator, cst.Name)):
        return None
    if target.comparator.value != "None":
        return None
    if isinstance(target.operator, cst.IsNot):
        return True
    if isinstance(target.operator, cst.Is):
        return False
    return None


def first_iteration_test(test: cst.BaseExpression) -> tuple[str | None, bool]:
    """`i > 0` (False on the first pass) or `i == 0` (True on the first pass) for a counter `i`."""
    if isinstance(test, cst.Name):
        return test.value, False
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None, False
    target = test.comparisons[0]
    left, right, op = test.left, target.comparator, target.operator
    if isinstance(left, cst.Integer) and isinstance(right, cst.Name):
        left, right = right, left
        op = {cst.LessThan: cst.GreaterThan(), cst.LessThanEqual: cst.GreaterThanEqual()}.get(
            type(op), op
        )
    if not (isinstance(left, cst.Name) and isinstance(right, cst.Integer)):
        return None, False
    value = int(right.value)
    if (
        (isinstance(op, cst.GreaterThan) and value == 0)
        or (isinstance(op, cst.GreaterThanEqual) and value == 1)
        or (isinstance(op, cst.NotEqual) and value == 0)
    ):
        return left.value, False
    if (
        (isinstance(op, cst.Equal) and value == 0)
        or (isinstance(op, cst.LessThan) and value == 1)
        or (isinstance(op, cst.LessThanEqual) and value == 0)
    ):
        return left.value, True
    return None, False


def loop_counter(stmt: cst.For) -> str | None:
    """The loop counter that is 0 on the first pass, if the loop has one."""
    counted = _counted(stmt)
    return counted[0] if counted else None


def counter_from(stmt: cst.For) -> tuple[str, int] | None:
    """The loop counter and its value on the first pass, for a counter that starts elsewhere
    than 0 (`enumerate(xs, 1)`, `range(1, n + 1)`)."""
    it = stmt.iter
    if not isinstance(it, cst.Call):
        return None
    func = last_name(it.func)
    positional = [a for a in it.args if a.keyword is None]
    keyword = [a for a in it.args if a.keyword is not None and a.keyword.value == "start"]
    start: cst.BaseExpression | None = None
    counter: cst.BaseExpression | None = None
    if func == "range" and len(positional) in (2, 3) and isinstance(stmt.target, cst.Name):
        start, counter = positional[0].value, stmt.target
    elif func == "enumerate" and isinstance(stmt.target, cst.Tuple) and stmt.target.elements:
        start = (
            keyword[0].value if keyword else (positional[1].value if len(positional) > 1 else None)
        )
        counter = stmt.target.elements[0].value
    if isinstance(start, cst.Integer) and isinstance(counter, cst.Name):
        return counter.value, int(start.value)
    return None


def last_pass_tests(stmt: cst.For) -> frozenset[str]:
    """Texts of the tests true exactly on the last pass: `i + 1 == len(loader)`, `i == n - 1`."""
    counted = _counted(stmt)
    if counted is None or counted[1] is None:
        return frozenset()
    i, bound = counted
    forms = {
        f"{i}+1=={bound}",
        f"({i}+1)=={bound}",
        f"{i}=={bound}-1",
        f"{i}==({bound}-1)",
        f"{bound}=={i}+1",
        f"{bound}-1=={i}",
        f"{i}>={bound}-1",
        f"{i}+1>={bound}",
        f"({i}+1)>={bound}",
    }
    return frozenset(forms)


def last_pass_info(
    test: cst.BaseExpression, tests: frozenset[str]
) -> tuple[bool | None, bool | None]:
    """Whether the true and the false branch of `test` are (True) or are not (False) the loop's
    last pass; None where the branch says nothing about it."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        on_true, on_false = last_pass_info(test.expression, tests)
        return on_false, on_true
    if isinstance(test, cst.BooleanOperation):
        left = last_pass_info(test.left, tests)
        right = last_pass_info(test.right, tests)
        if isinstance(test.operator, cst.Or):  # false: every part false
            return None, (False if False in (left[1], right[1]) else None)
        return (True if True in (left[0], right[0]) else None), None  # and: every part true
    if code_of(test) in tests:
        return True, False
    return None, None


def _counted(stmt: cst.For) -> tuple[str, str | None] | None:
    """(counter, bound) of `for i in range(n)` / `for i, x in enumerate(xs)`; bound is `n` or
    `len(xs)`, None when unknown."""
    it = stmt.iter
    if not isinstance(it, cst.Call):
        return None
    func = last_name(it.func)
    positional = [a for a in it.args if a.keyword is None]
    if func == "range" and isinstance(stmt.target, cst.Name):
        if len(positional) == 1:
            return stmt.target.value, code_of(positional[0].value)
        if len(positional) == 2 and code_of(positional[0].value) == "0":
            return stmt.target.value, code_of(positional[1].value)
        return None
    if func == "enumerate" and isinstance(stmt.target, cst.Tuple) and stmt.target.elements:
        start = [a for a in it.args if a.keyword is not None and a.keyword.value == "start"]
        start_value = (
            start[0].value if start else (positional[1].value if len(positional) > 1 else None)
        )
        if start_value is not None and code_of(start_value) != "0":
            return None
        first = stmt.target.elements[0].value
        if not isinstance(first, cst.Name) or not positional:
            return None
        return first.value, f"len({code_of(positional[0].value)})"
    return None


def runs_forever(stmt: cst.For | cst.While) -> bool:
    if not isinstance(stmt, cst.While):
        return False
    test = stmt.test
    if isinstance(test, cst.Name):
        return test.value == "True"
    return isinstance(test, cst.Integer) and test.value != "0"


def none_test(test: cst.BaseExpression) -> tuple[str, bool] | None:
    """`x is not None` -> ("x", True), `x is None` -> ("x", False): the name, and the test's
    value once `x` holds something."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    target = test.comparisons[0]
    name = dotted(test.left)
    if name is None or not (
        isinstance(target.comparator, cst.Name) and target.comparator.value == "None"
    ):
        return None
    if isinstance(target.operator, cst.IsNot):
        return name, True
    if isinstance(target.operator, cst.Is):
        return name, False
    return None


def set_on_every_pass(body: cst.BaseSuite) -> frozenset[str]:
    """Names a loop body binds to something other than None on every pass (an assignment at its
    top level) and never to None: after the first pass, `x is not None` holds for them."""
    set_here: set[str] = set()
    for statement in body.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, (cst.Assign, cst.AnnAssign)) and not _is_none(small.value):
                    set_here |= bound_here(small)
        if any(isinstance(n, _LEAVING) for n in walk(statement)):
            break  # a pass may end here: what comes after is not set on every pass
    cleared = {
        name
        for node in walk(body)
        if isinstance(node, (cst.Assign, cst.AnnAssign)) and _is_none(node.value)
        for name in bound_here(node)
    }
    return frozenset(set_here - cleared)


_LEAVING = (cst.Continue, cst.Break, cst.Return, cst.Raise)


def _is_none(value: cst.BaseExpression | None) -> bool:
    return value is None or (isinstance(value, cst.Name) and value.value == "None")


def emptiness_key(test: cst.BaseExpression) -> tuple[str, bool] | None:
    """`len(xs) == 0` (also `<= 0`, `< 1`) -> ("len(xs) == 0", True); `len(xs) > 0` (also
    `>= 1`, `!= 0`) -> ("len(xs) == 0", False): one key for every spelling of "is it empty"."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    left, target = test.left, test.comparisons[0]
    if not (
        isinstance(left, cst.Call)
        and last_name(left.func) == "len"
        and len(left.args) == 1
        and isinstance(target.comparator, cst.Integer)
    ):
        return None
    name = dotted(left.args[0].value)
    if name is None:
        return None
    value, op = int(target.comparator.value), target.operator
    empty = {
        (cst.Equal, 0): True,
        (cst.LessThanEqual, 0): True,
        (cst.LessThan, 1): True,
        (cst.GreaterThan, 0): False,
        (cst.GreaterThanEqual, 1): False,
        (cst.NotEqual, 0): False,
    }.get((type(op), value))
    return None if empty is None else (empty_key(name), empty)


def empty_key(name: str) -> str:
    return f"len({name}) == 0"
