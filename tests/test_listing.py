"""The listing of a module's nodes (`analysis.syntax.listing`) reads only the fields whose
declared type admits a node other than formatting; it must list exactly the nodes that reading
every field of every node would."""

from __future__ import annotations

import dataclasses

import libcst as cst
from conftest import fixtures

from gradlint.analysis import syntax


def _every_field_child(node: cst.CSTNode) -> list[cst.CSTNode]:
    out: list[cst.CSTNode] = []
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        out.extend(
            v for v in values if isinstance(v, cst.CSTNode) and not isinstance(v, syntax.FORMATTING)
        )
    return out


def _every_node(root: cst.CSTNode) -> list[cst.CSTNode]:
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(reversed(_every_field_child(node)))
    return found


def test_the_listing_holds_every_node_but_formatting() -> None:
    checked = 0
    for fixture in fixtures():
        module = cst.parse_module(fixture.text)
        listed = syntax.listing(module).nodes
        assert [id(n) for n in listed] == [id(n) for n in _every_node(module)], fixture.path
        checked += 1
    assert checked > 100


def test_fields_that_hold_only_formatting_are_not_read() -> None:
    assert syntax._content_fields(cst.Name) == ()
    assert syntax._content_fields(cst.Call) == ("func", "args")
    assert syntax._content_fields(cst.Arg) == ("value", "keyword")
    assert "whitespace_after_def" not in syntax._content_fields(cst.FunctionDef)
