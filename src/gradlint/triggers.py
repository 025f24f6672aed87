"""The cheap tests that decide whether a file is parsed at all: does it contain a rule's words?

A rule declares triggers; a file can hold a finding of the rule only if one trigger matches.
A trigger is a word, or a tuple of items that must all occur; an item is a word or a tuple of
alternative words, one of which must occur. A word ending in `(` stands for a call:
`backward(` also matches `backward (`. A word `name=True` stands for a keyword argument given
`True`. Plain substring tests keep this at the speed of reading the file; no libcst here, so
the flake8 plugin can use it too.

A file whose words occur only in strings, docstrings and comments (a callback's docs that say
"called after `loss.backward()`") passes the text test; `CodeWords` tests the same words
against CPython's tree of the file, which the parser builds anyway and which costs a tenth of
libcst's, so that such a file is never given to libcst.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

Item = Union[str, tuple[str, ...]]  # a word, or words one of which must occur
Trigger = Union[str, tuple[Item, ...]]
_TRUE_KEYWORD = "=True"


def matches(text: str, triggers: Iterable[Trigger]) -> bool:
    return any(_all_items(words_of(t), lambda word: _in_text(text, word)) for t in triggers)


def words_of(trigger: Trigger) -> tuple[Item, ...]:
    """The items that must all occur for `trigger` to match."""
    return (trigger,) if isinstance(trigger, str) else trigger


def _all_items(items: tuple[Item, ...], has: Callable[[str], bool]) -> bool:
    return all(
        has(item) if isinstance(item, str) else any(has(word) for word in item) for item in items
    )


def _in_text(text: str, word: str) -> bool:
    """Whether `word` may occur in the code of `text`: a necessary condition, so Python's
    spellings count (`loss. backward()`, `(loss.backward)()`, a dotted name over lines)."""
    if word.endswith(_TRUE_KEYWORD):  # `requires_grad = True` too
        return word[: -len(_TRUE_KEYWORD)] in text and "True" in text
    if "." not in word and not word.endswith("("):
        return word in text
    if word in text:  # as most code spells it
        return True
    parts, pattern = _spelling(word)
    return all(part in text for part in parts) and pattern.search(text) is not None


# what may stand between the parts of a dotted name, and between a callee and its `(`: white
# space, a line continuation, a comment (inside brackets: it ends at its line's end, so each
# text has one way to match, however many `#` it holds)
_GAP = r"(?:\s|\\|#[^\n]*\n)*"


@functools.cache
def _spelling(word: str) -> tuple[tuple[str, ...], re.Pattern[str]]:
    """The names in `word` (each must occur) and a pattern of every way to write it."""
    call = word.endswith("(")
    stem = word[:-1] if call else word
    names = stem.lstrip(".").split(".")
    pattern = (_GAP + r"\." + _GAP).join(re.escape(name) for name in names)
    if stem.startswith("."):  # an attribute
        pattern = r"\." + _GAP + pattern
    if call:  # `(loss.backward)()` too
        pattern += r"(?:\s|\\|#[^\n]*\n|\))*\("
    return tuple(names), re.compile(pattern)


def triggered(text: str, codes: tuple[str, ...]) -> bool:
    """Whether any of these rules may report something in this text (else it is not parsed).

    Every file of a run is asked this, so a word several rules share is looked for once."""
    found: dict[str, bool] = {}

    def has(word: str) -> bool:
        known = found.get(word)
        if known is None:
            known = found[word] = _in_text(text, word)
        return known

    return any(_all_items(trigger, has) for trigger in _triggers_of(codes))


@functools.cache
def _triggers_of(codes: tuple[str, ...]) -> tuple[tuple[Item, ...], ...]:
    """These rules' triggers, each as a tuple of items, without repeats."""
    from gradlint.rules.catalogue import CATALOGUE

    triggers = (
        words_of(t) for code in codes if code in CATALOGUE for t in CATALOGUE[code].triggers
    )
    return tuple(dict.fromkeys(triggers))


@dataclass(frozen=True)
class CodeWords:
    """The words of a module's code, outside strings and comments."""

    identifiers: frozenset[str]  # names, attributes, keywords, parameters, imports, definitions
    attributes: frozenset[str]  # the names after a dot
    calls: frozenset[str]  # what is called, dotted (`loss.backward`; `?` for a part not a name)
    true_keywords: frozenset[str] = frozenset()  # keyword arguments given `True`

    def matches(self, triggers: Iterable[Trigger]) -> bool:
        """The text test of `matches`, with each word looked for in code only."""
        return any(_all_items(words_of(t), self._has) for t in triggers)

    def _has(self, word: str) -> bool:
        if word.endswith("("):  # a call of something whose text ends so
            stem = word[:-1]
            return any(call.endswith(stem) for call in self.calls)
        if word.endswith(_TRUE_KEYWORD):
            return word[: -len(_TRUE_KEYWORD)] in self.true_keywords
        if word.startswith("."):  # an attribute that starts so
            rest = word[1:]
            return any(name.startswith(rest) for name in self.attributes)
        return any(word in name for name in self.identifiers)


def code_words(tree: ast.AST) -> CodeWords:
    """The words of the code of `tree`: one walk by hand, dispatching on the exact node type
    (`ast.walk` and a chain of `isinstance` tests cost twice as much; every file a rule's
    words occur in is walked)."""
    identifiers: set[str] = set()
    attributes: set[str] = set()
    calls: set[str] = set()
    true_keywords: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            identifiers.add(node.id)  # type: ignore[attr-defined]
            continue  # its only child is its context
        if kind is ast.Attribute:
            attributes.add(node.attr)  # type: ignore[attr-defined]
        elif kind is ast.Call:
            calls.add(_callee(node.func))  # type: ignore[attr-defined]
        elif kind is ast.keyword:
            identifiers.add(node.arg or "")  # type: ignore[attr-defined]
            value = node.value  # type: ignore[attr-defined]
            if type(value) is ast.Constant and value.value is True:
                true_keywords.add(node.arg or "")  # type: ignore[attr-defined]
        elif kind is ast.arg:
            identifiers.add(node.arg)  # type: ignore[attr-defined]
        elif kind is ast.alias:
            identifiers.update(node.name.split("."))  # type: ignore[attr-defined]
            identifiers.add(node.asname or "")  # type: ignore[attr-defined]
        elif kind in _DEFINITIONS:
            identifiers.add(node.name)  # type: ignore[attr-defined]
        elif kind is ast.ImportFrom:
            identifiers.update((node.module or "").split("."))  # type: ignore[attr-defined]
        stack.extend(child_nodes(node))
    return CodeWords(
        frozenset(identifiers | attributes),
        frozenset(attributes),
        frozenset(calls),
        frozenset(true_keywords),
    )


_DEFINITIONS = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """`ast.iter_child_nodes(node)` as a list, without its generator's cost and without the
    nodes that have no fields (`Load`, `Store`, operators): what the walks of CPython's tree
    before parsing (here and in the rules' prechecks) step into."""
    found: list[ast.AST] = []
    for field in node._fields:
        value = getattr(node, field, None)
        if type(value) is list:
            found.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST) and value._fields:
            found.append(value)
    return found


def _callee(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    parts.append(func.id if isinstance(func, ast.Name) else "?")
    return ".".join(reversed(parts))
