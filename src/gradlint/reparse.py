"""libcst's tree of an edited text, re-parsing only the top-level statements the edit touched.

An editor sends the whole text after every keystroke, and libcst's parse is the largest single
cost of a lint. Top-level statements are parsed independently of each other, so after an edit
inside one function the tree of the previous text is reused with that function's statement
parsed anew. Every reused tree is checked to print exactly the new text (statement by statement:
a statement parsed alone must print the same inside the module, where its indentation and line
breaks may default to the module's); anything else (an edit in the header, a statement that no
longer parses alone, text that prints differently) falls back to a parse of the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import libcst as cst


@dataclass(frozen=True)
class Parsed:
    """A text, its tree, and the text of each of the tree's top-level statements."""

    text: str
    module: cst.Module
    segments: tuple[str, ...]
    header: int  # characters before the first statement (comments, blank lines)


class Parser(Protocol):
    """What the engine asks of whatever makes libcst's trees."""

    def parse(self, text: str) -> cst.Module: ...

    def statement_lines(self, module: cst.Module) -> list[int] | None:
        """The line each of `module`'s top-level statements starts on, if known cheaply."""
        ...


class WholeText:
    """Parses every text whole (the command line's way); knows no statement lines."""

    def parse(self, text: str) -> cst.Module:
        return cst.parse_module(text)

    def statement_lines(self, module: cst.Module) -> list[int] | None:
        return None


WHOLE_TEXT = WholeText()


class Reparser:
    """Parses the successive texts of one document; `parse` is a drop-in for
    `libcst.parse_module` (it raises what that raises), and `statement_lines` says where the
    top-level statements of the tree it last gave start (so positions print only the
    statements findings are in)."""

    def __init__(self) -> None:
        self.last: Parsed | None = None
        self.reused = 0  # texts parsed by re-parsing some statements only

    def parse(self, text: str) -> cst.Module:
        last = self.last
        parsed = _reparsed(last, text) if last is not None else None
        if parsed is None:
            parsed = _parsed(text, cst.parse_module(text))
        else:
            self.reused += 1
        self.last = parsed
        return parsed.module

    def statement_lines(self, module: cst.Module) -> list[int] | None:
        last = self.last
        if last is None or last.module is not module or last.header < 0:
            return None
        line = 1 + _line_breaks(last.text[: last.header])
        lines = []
        for segment in last.segments:
            lines.append(line)
            line += _line_breaks(segment)
        return lines


def _line_breaks(text: str) -> int:
    """How many lines `text` ends, as Python counts them (`\r\n`, `\r` and `\n`)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _parsed(text: str, module: cst.Module) -> Parsed:
    segments = tuple(module.code_for_node(statement) for statement in module.body)
    body = "".join(segments)
    footer = "".join(module.code_for_node(line) for line in module.footer)
    header = len(text) - len(body) - len(footer)
    if header < 0 or text[header:] != body + footer:
        return Parsed(text, module, (), -1)  # not split as expected: never reused
    return Parsed(text, module, segments, header)


def _reparsed(last: Parsed, text: str) -> Parsed | None:
    """`last` with the statements the edit to `text` touched parsed anew, or None."""
    if last.header < 0 or not last.segments or text == last.text:
        return None if text != last.text else last
    old = last.text
    prefix = _common_prefix(old, text)
    suffix = _common_prefix(old[prefix:][::-1], text[prefix:][::-1])
    start, end = prefix, len(old) - suffix  # the replaced part of the old text
    offsets = [last.header]
    for segment in last.segments:
        offsets.append(offsets[-1] + len(segment))
    body_end = offsets[-1]
    if start <= last.header or end > body_end:
        # the header, the footer, or the start of the first statement (comments put there
        # belong to the header in a parse of the whole text)
        return None
    count = len(last.segments)
    first = next(i for i in range(count) if offsets[i + 1] > start or i + 1 == count)
    last_touched = first
    while last_touched + 1 < count and offsets[last_touched + 1] < end:
        last_touched += 1
    # with the statements around: a comment typed at the end of a block belongs to the block
    # or leads the next statement depending on both, as in the whole text
    first, last_touched = max(first - 1, 0), min(last_touched + 1, count - 1)
    old_from, old_to = offsets[first], offsets[last_touched + 1]
    new_text = text[old_from : old_to + len(text) - len(old)]
    statements = _statements(new_text, last.module, first == 0)
    if statements is None:
        return None
    body = [*last.module.body[:first], *statements, *last.module.body[last_touched + 1 :]]
    segments = (
        *last.segments[:first],
        *(last.module.code_for_node(s) for s in statements),
        *last.segments[last_touched + 1 :],
    )
    return Parsed(text, last.module.with_changes(body=body), segments, last.header)


def _statements(text: str, module: cst.Module, first: bool) -> list[cst.BaseStatement] | None:
    """The top-level statements of `text` parsed alone, as they stand in `module`: None unless
    they print back to exactly `text` there. `first`: they start the module, where comments
    before them are the module's header, not theirs."""
    if not text:
        return []
    try:
        alone = cst.parse_module(text)
    except cst.ParserSyntaxError:
        return None
    statements: list[cst.BaseStatement] = list(alone.body)
    if alone.footer or not statements or alone.default_indent != module.default_indent:
        return None
    lead = statements[0]
    if alone.header and first:
        return None
    if alone.header and isinstance(lead, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        # comments and blank lines before the first statement lead it in the whole text
        statements[0] = lead.with_changes(leading_lines=[*alone.header, *lead.leading_lines])
    printed = "".join(module.code_for_node(s) for s in statements)
    return statements if printed == text else None


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b`."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # binary search on slices: compared in C, not character by character
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
