"""`analysis.positions` gives exactly the starts libcst's PositionProvider gives, on every
fixture, every example and source written to stress the printer (line breaks of every kind,
continuation lines, decorators, comments before statements, parenthesised expressions)."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from conftest import fixtures
from libcst.metadata import MetadataWrapper, PositionProvider

from gradlint.analysis.positions import Positions, starts

ROOT = Path(__file__).resolve().parent.parent
ODD = [
    "x = 1\r\ny = (\r\n    2 +\r\n    3)\r\n",
    "a = 1\rb = [1,\r     2]\r",
    "@decorator\n# a comment\n\n\n@other(\n    1)\ndef f(a,\n      b):\n    return (a\n            + b)\n",
    "if x:  # why\n    y = \\\n        z\nelif w:\n    pass\nelse:\n    (  # open\n        q)\n",
    "s = '''multi\nline\n''' + f'{x!r:>{w}}'\nt = 1\n",
    "class A(B, metaclass=M):\n    '''doc'''\n\n    # lead\n    x: int = 1\n",
    "\ufeffimport torch\nwith a as b, c as d:\n    e\n",
]


def assert_same_starts(text: str) -> None:
    module = cst.parse_module(text)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    found = starts(module)
    assert {n: (r.start.line, r.start.column) for n, r in expected.items()} == found


@pytest.mark.parametrize("text", ODD)
def test_starts_match_libcst_on_odd_source(text: str) -> None:
    assert_same_starts(text)


def test_starts_match_libcst_on_every_fixture_and_example() -> None:
    sources = [f.text for f in fixtures()]
    sources += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.py"))]
    assert len(sources) > 100
    for text in sources:
        assert_same_starts(text)


def test_positions_are_computed_once_and_unknown_nodes_have_none() -> None:
    module = cst.parse_module("a = 1\nb = 2\n")
    positions = Positions(module)
    second = module.body[1]
    assert positions.of(second) == (2, 0)
    assert positions.of(cst.Name("elsewhere")) == (0, 0)
