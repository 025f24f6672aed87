"""Small helpers over libcst nodes shared by the analysis stages."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import cast

import libcst as cst

_EMPTY = cst.Module(body=[])
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}  # node class -> its fields, memoised


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """A node's child nodes, in field order (a list not to be changed)."""
    active = _ACTIVE.get()
    if active is not None:
        found = active.kids.get(id(node))
        if found is not None:
            return found
    return _children(node)


def _children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """A node's child nodes, computed, without whitespace, comments and punctuation.

    The nodes of libcst's `children` property, which visits the node to find them and is
    several times slower, less the formatting (`FORMATTING`): more than half of a module's nodes,
    which no rule reads, so every walk and the listing skip them. Node classes are ABCs, so
    `isinstance` is slow; the kind of each value's type is memoised instead.
    """
    names = _CHILD_FIELDS.get(type(node))
    if names is None:
        names = _CHILD_FIELDS[type(node)] = _content_fields(type(node))
    out: list[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        kind = _KIND.get(type(value))
        if kind is None:
            kind = _kind(type(value))
        if kind == _NODE:
            out.append(value)
        elif kind == _SEQUENCE and value:
            out.extend(item for item in value if _KIND.get(type(item)) == _NODE or _is_node(item))
    return out


def _content_fields(node_type: type) -> tuple[str, ...]:
    """The fields of a node class whose declared type admits a node other than formatting:
    two thirds of libcst's fields (`whitespace_after`, `lpar`, `comma`...) never do, and are
    not read at all."""
    fields = dataclasses.fields(node_type)
    try:
        hints = typing.get_type_hints(node_type)
    except Exception:  # noqa: BLE001 -- an annotation that does not resolve: read every field
        return tuple(f.name for f in fields)
    return tuple(f.name for f in fields if _admits_content(hints.get(f.name, object)))


def _admits_content(annotation: object) -> bool:
    if typing.get_origin(annotation) is typing.Literal:
        return False
    arguments = typing.get_args(annotation)
    if arguments:  # Sequence[...], Union[...], Optional[...]
        return any(_admits_content(argument) for argument in arguments)
    if not isinstance(annotation, type):
        return True  # not understood: read it
    return issubclass(annotation, cst.CSTNode) and not issubclass(annotation, FORMATTING)


_OTHER, _NODE, _SEQUENCE = 0, 1, 2
_KIND: dict[type, int] = {}  # value type -> _OTHER / _NODE / _SEQUENCE, memoised


# Nodes that only format the code: the analysis reads none of them (a fix builds them anew).
FORMATTING: tuple[type, ...] = (
    cst.BaseParenthesizableWhitespace,
    cst.Newline,
    cst.TrailingWhitespace,
    cst.EmptyLine,
    cst.Comment,
    cst.Comma,
    cst.Dot,
    cst.Colon,
    cst.Semicolon,
    cst.AssignEqual,
    cst.LeftParen,
    cst.RightParen,
    cst.LeftSquareBracket,
    cst.RightSquareBracket,
    cst.LeftCurlyBrace,
    cst.RightCurlyBrace,
)


def _kind(value_type: type) -> int:
    if issubclass(value_type, FORMATTING):
        kind = _OTHER
    elif issubclass(value_type, cst.CSTNode):
        kind = _NODE
    elif issubclass(value_type, (list, tuple)):
        kind = _SEQUENCE
    else:
        kind = _OTHER
    _KIND[value_type] = kind
    return kind


def _is_node(value: object) -> bool:
    return _kind(type(value)) == _NODE


def code_of(node: cst.CSTNode) -> str:
    """Source text of an expression with all white space removed: the key we compare by.

    Printing a node costs a walk of it; the same nodes are asked for on every pass of a loop,
    so while a listing is active the text of its nodes is kept (only of its nodes: the id of a
    node made and dropped during the analysis may be reused)."""
    active = _ACTIVE.get()
    if active is not None and id(node) in active.index:
        known = active.code.get(id(node))
        if known is None:
            known = active.code[id(node)] = "".join(_EMPTY.code_for_node(node).split())
        return known
    return "".join(_EMPTY.code_for_node(node).split())


def written(node: cst.CSTNode) -> str:
    """Source text of an expression as the user wrote it, on one line: what messages quote
    (`lr * b.grad` stays spaced; a call over several lines becomes one line)."""
    return " ".join(_EMPTY.code_for_node(node).split())


def dotted(node: cst.CSTNode) -> str | None:
    """`a.b.c` for a chain of names and attributes, else None. (`type() is`: both classes
    are final, and `isinstance` on a libcst class is an ABC check; this runs for most nodes.)"""
    kind = type(node)
    if kind is cst.Name:
        return cast(cst.Name, node).value
    if kind is cst.Attribute:
        attribute = cast(cst.Attribute, node)
        base = dotted(attribute.value)
        return None if base is None else f"{base}.{attribute.attr.value}"
    return None


def last_name(node: cst.CSTNode) -> str | None:
    kind = type(node)
    if kind is cst.Name:
        return cast(cst.Name, node).value
    if kind is cst.Attribute:
        return cast(cst.Attribute, node).attr.value
    return None


def names_in(node: cst.CSTNode) -> set[str]:
    """Every dotted name (and each of its prefixes) an expression reads."""
    found: set[str] = set()
    for sub in walk(node):
        text = dotted(sub)
        if text is not None:
            found.add(text)
    return found


@dataclasses.dataclass(frozen=True)
class Listing:
    """Every node of a module in walk order, with for each the index just past its subtree and
    its children. A scan that needs what encloses a node keeps a stack of (end, what) instead
    of recursing; while the listing is `active`, `walk` and `children` read it instead of
    visiting the tree again (rules ask for the nodes under the same statement many times)."""

    nodes: list[cst.CSTNode]
    ends: list[int]
    index: dict[int, int]  # id(node) -> its position in `nodes`
    kids: dict[int, list[cst.CSTNode]]  # id(node) -> its children
    by_type: dict[type, list[cst.CSTNode]]  # node class -> its nodes, in walk order
    bound: dict[int, frozenset[str]] = dataclasses.field(default_factory=dict)  # memo
    code: dict[int, str] = dataclasses.field(default_factory=dict)  # memo of `code_of`

    def of_type(self, *kinds: type) -> list[cst.CSTNode]:
        """The nodes of these exact classes, in walk order: scans look at what they need
        rather than test every node (an `isinstance` on a libcst class is an ABC check)."""
        if len(kinds) == 1:
            return self.by_type.get(kinds[0], [])
        found = [node for kind in kinds for node in self.by_type.get(kind, [])]
        return sorted(found, key=lambda node: self.index[id(node)])

    @contextmanager
    def active(self) -> Iterator[Listing]:
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


# The listing of the module being analysed. A context variable, not a global: each analysis
# (and each thread) sees its own, and nodes outside it are walked as usual.
_ACTIVE: ContextVar[Listing | None] = ContextVar("gradlint_listing", default=None)


def listing(root: cst.CSTNode) -> Listing:
    nodes: list[cst.CSTNode] = []
    ends: list[int] = []
    kids: dict[int, list[cst.CSTNode]] = {}
    by_type: dict[type, list[cst.CSTNode]] = {}
    stack: list[cst.CSTNode | int] = [root]
    while stack:
        item = stack.pop()
        if type(item) is int:  # the subtree of nodes[item] is complete
            ends[item] = len(nodes)
            continue
        assert not isinstance(item, int)
        stack.append(len(nodes))
        nodes.append(item)
        ends.append(0)
        kind = type(item)
        if kind in by_type:
            by_type[kind].append(item)
        else:
            by_type[kind] = [item]
        found = _children(item)
        kids[id(item)] = found
        stack.extend(reversed(found))
    return Listing(nodes, ends, {id(node): i for i, node in enumerate(nodes)}, kids, by_type)


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node under `node` (itself first), depth first in field order; no recursion, so
    deeply nested code cannot exhaust the stack here."""
    active = _ACTIVE.get()
    if active is not None:
        position = active.index.get(id(node))
        if position is not None:
            return iter(active.nodes[position : active.ends[position]])
    return _walk(node)


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def assigned_targets(node: cst.CSTNode) -> set[str]:
    """Dotted names bound anywhere inside a statement (assignments, loop targets, with-as, walrus).

    Asked again and again for the same statements, so kept per node while a listing is active.
    """
    active = _ACTIVE.get()
    if active is not None and id(node) in active.index:  # see `code_of`
        known = active.bound.get(id(node))
        if known is None:
            known = active.bound[id(node)] = frozenset(_assigned_targets(node))
        return set(known)
    return _assigned_targets(node)


_BINDING_FIELD = {  # node type -> the field holding what it binds (concrete classes: no ABCs)
    cst.AugAssign: "target",
    cst.AnnAssign: "target",
    cst.For: "target",
    cst.CompFor: "target",
    cst.AsName: "name",
    cst.NamedExpr: "target",
}


def _assigned_targets(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()
    for sub in walk(node):
        kind = type(sub)
        if kind is cst.Assign:
            for target in cast(cst.Assign, sub).targets:
                found.update(_target_names(target.target))
        elif kind in _BINDING_FIELD:
            found.update(_target_names(getattr(sub, _BINDING_FIELD[kind])))
    return found


def bound_here(node: cst.CSTNode) -> set[str]:
    """Names this node itself binds (not its children): `x = ...`, `for x in`, `as x`, `x :=`."""
    kind = type(node)
    if kind is cst.Assign:
        return {n for t in cast(cst.Assign, node).targets for n in _target_names(t.target)}
    if kind in _BINDING_FIELD:
        return _target_names(getattr(node, _BINDING_FIELD[kind]))
    return set()


def _target_names(target: cst.CSTNode) -> set[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for element in target.elements:
            out |= _target_names(element.value)
        return out
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    text = dotted(target)
    return {text} if text else {code_of(target)}


def body_of(block: cst.BaseSuite) -> list:
    """The statements of a block (an indented block or a one-line suite)."""
    return list(block.body)


def every_pass(block: cst.BaseSuite) -> list[cst.CSTNode]:
    """The statements of a loop body that run on every pass it completes: its own statements,
    with `with` blocks opened."""
    out: list[cst.CSTNode] = []
    for statement in block.body:
        if isinstance(statement, cst.With):
            out.extend(every_pass(statement.body))
        else:
            out.append(statement)
    return out


def ends_by_leaving(block: cst.BaseSuite) -> bool:
    """The block's last statement is `continue`, `break`, `return` or `raise`."""
    body = body_of(block)
    last = body[-1] if body else None
    if isinstance(last, cst.SimpleStatementLine):
        last = last.body[-1]
    return isinstance(last, (cst.Continue, cst.Break, cst.Return, cst.Raise))


def argument(call: cst.Call, position: int | None, *names: str) -> cst.BaseExpression | None:
    """What a call passes as one of `names`, or else as its positional argument `position`
    (from 0; not counted past a `*args`, whose length is unknown here)."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in names:
            return arg.value
    if position is None:
        return None
    positional = []
    for arg in call.args:
        if arg.star or arg.keyword is not None:
            break
        positional.append(arg.value)
    return positional[position] if position < len(positional) else None
