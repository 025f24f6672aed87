"""Property tests: whatever the program, the engine classifies it (no GL999) and fixes are sound.

The budget is small enough for CI; set GRADLINT_FUZZ_EXAMPLES for a longer run, for example
`GRADLINT_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hypothesmith
import libcst as cst
import pytest
from conftest import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import fix_text, lint_source
from gradlint.limits import RECURSION_LIMIT
from gradlint.server import lint_document

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = int(os.environ.get("GRADLINT_FUZZ_EXAMPLES", "0"))
LOOPS = sorted(
    p
    for folder in ("GL001", "clean")
    for p in (FIXTURES / folder).glob("*.py")
    if not p.name.endswith(".fixed.py")
)
SETTINGS = Settings()
# as the first analysis on its large-stack thread sets it; hypothesis warns when a test does
sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))


def budget(ci: int) -> settings:
    return settings(
        max_examples=EXAMPLES or ci,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def assert_classified(text: str) -> None:
    result = lint_source("fuzz.py", text.encode("utf-8"), SETTINGS)
    assert not result.internal_error, result.diagnostics
    assert all(d.code != "GL999" for d in result.diagnostics)


def assert_fix_sound(text: str) -> None:
    fixed, count = fix_text(text, SETTINGS)
    if count:
        cst.parse_module(fixed)  # every fix result parses
    assert fix_text(fixed, SETTINGS) == (fixed, 0)  # fixing twice equals fixing once


# --- programs from Python's grammar -------------------------------------------------------------


@budget(ci=25)
@given(program=hypothesmith.from_grammar(), wrap=st.booleans())
def test_grammar_programs_are_classified(program: str, wrap: bool) -> None:
    if wrap:  # the program as a loop body, so the path analysis sees it inside a loop
        body = "".join(f"    {line}\n" for line in program.splitlines())
        text = f"for batch in loader:\n{body}    loss.backward()\n"
    else:
        text = program + "\nloss.backward()\n"
    assert_classified(text)
    try:
        cst.parse_module(text)
    except (cst.ParserSyntaxError, RecursionError):
        return  # valid for CPython's grammar but not libcst's: GL900 above, nothing to fix
    assert_fix_sound(text)


# --- mutated training loops ---------------------------------------------------------------------

OPERATIONS = ("swap", "delete", "duplicate", "if", "with", "try", "rename")
NAMES = ("opt", "model", "loss", "optimizer", "x", "batch", "net", "scaler")


class _Mutator(cst.CSTTransformer):
    """Applies the drawn operations, one per statement block, in the order the blocks close."""

    def __init__(self, operations: list[tuple[str, int, int]], rename: tuple[str, str]):
        self.operations = operations
        self.rename = rename

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        old, new = self.rename
        return updated.with_changes(value=new) if updated.value == old else updated

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated.with_changes(body=self._mutated(list(updated.body)))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        return updated.with_changes(body=self._mutated(list(updated.body)))

    def _mutated(self, body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        if not self.operations or not body:
            return body
        operation, first, second = self.operations.pop()
        i, j = first % len(body), second % len(body)
        if operation == "swap":
            body[i], body[j] = body[j], body[i]
        elif operation == "delete":
            del body[i]
        elif operation == "duplicate":
            body.insert(j, body[i])
        elif operation in ("if", "with", "try"):
            body[i] = _wrapped(operation, body[i])
        return body or [cst.SimpleStatementLine([cst.Pass()])]


def _wrapped(kind: str, statement: cst.BaseStatement) -> cst.BaseStatement:
    header = {
        "if": "if cond:\n",
        "with": "with ctx:\n",
        "try": "try:\n",
    }[kind]
    tail = "except RuntimeError:\n    pass\n" if kind == "try" else ""
    wrapper = cst.parse_statement(header + "    pass\n" + tail)
    return wrapper.with_changes(body=wrapper.body.with_changes(body=[statement]))  # type: ignore[attr-defined]


@st.composite
def mutated_loops(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(LOOPS))
    operations = draw(
        st.lists(
            st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 50), st.integers(0, 50)),
            min_size=1,
            max_size=8,
        )
    )
    rename = (draw(st.sampled_from(NAMES)), draw(st.sampled_from(NAMES)))
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    if not any(name == "rename" for name, _, _ in operations):
        rename = ("", "")
    return module.visit(_Mutator(operations, rename)).code


@budget(ci=60)
@given(text=mutated_loops())
def test_mutated_training_loops(text: str) -> None:
    assert_classified(text)
    try:
        cst.parse_module(text)
    except cst.ParserSyntaxError:  # a mutation can make invalid code (a stray `else`)
        return
    assert_fix_sound(text)


@pytest.mark.parametrize("path", LOOPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixtures_fix_soundly(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert_classified(text)
    assert_fix_sound(text)


# --- standard input and the language server -----------------------------------------------------


@budget(ci=15)
@given(program=hypothesmith.from_grammar(), jobs=st.sampled_from(["1", "2"]))
def test_standard_input_is_classified(program: str, jobs: str) -> None:
    """Source on `-` goes through the same limits as files: a finding or nothing, never GL999,
    and a fix filter always hands text back."""
    text = program + "\nloss.backward()\n"
    result = CliRunner().invoke(
        main, ["check", "--no-cache", "-q", "-j", jobs, "-"], input=text.encode("utf-8")
    )
    assert result.exit_code in (0, 1), (result.output, result.exception)
    assert " GL999 " not in result.stdout
    fixed = CliRunner().invoke(
        main, ["check", "--no-cache", "-j", jobs, "--fix", "-"], input=text.encode("utf-8")
    )
    assert fixed.exit_code in (0, 1) and fixed.stdout_bytes


@budget(ci=15)
@given(text=st.one_of(hypothesmith.from_grammar(), mutated_loops()))
def test_language_server_classifies(text: str) -> None:
    found = lint_document("fuzz.py", text + "\nloss.backward()\n", SETTINGS)
    assert all(d.code != "GL999" for d in found), found
