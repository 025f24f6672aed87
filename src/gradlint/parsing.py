"""Parsing as CPython reads Python: its verdict on validity and nesting, libcst's tree.

CPython's parser bounds nesting (it refuses what would overflow a stack) and its messages and
positions are the ones people know from running their code; libcst's tree is what the analysis
and the fixes work on. Lines are counted as Python counts them.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections.abc import Callable

import libcst as cst

from gradlint.source import MAX_NESTING, too_deeply_nested

# Larger sources are not parsed: libcst needs some hundred bytes of memory per byte of source
MAX_PARSED_CHARS = 1_000_000
# A dotted name this long is flat for CPython but nested for libcst, deeper than its stack allows
MAX_DOTTED_PARTS = 10_000
_LONG_DOTTED = re.compile(rf"(?:\.[\s\\]*\w+[\s\\]*){{{MAX_DOTTED_PARTS}}}")
# CPython's default recursion limit: what it accepts then is what runs anywhere (gradlint raises
# the limit for its own analysis, which would let CPython accept deeper nesting)
CPYTHON_RECURSION_LIMIT = 1000
# Source CPython rejects may be of a newer grammar than this interpreter's: libcst reads it only
# when its nesting is surely shallow (libcst's memory grows with the square of the depth)
MAX_UNCHECKED_DEPTH = 1500
_NOT_NESTING = frozenset({",", ":", ";", "=", "(", ")", "[", "]", "{", "}"})
_NESTING_WORDS = frozenset({"not", "and", "or", "lambda", "await", "if", "else", "for", "in", "is"})
# Python's own line breaks; str.splitlines also breaks at form feeds, U+2028 and others
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class NotAnalysed(Exception):
    """Valid Python that gradlint does not analyse (GL902); the message says why."""

    def __init__(self, message: str, line: int = 1, col: int = 1):
        super().__init__(message)
        self.line, self.col = line, col


def split_lines(text: str) -> list[str]:
    """The lines of `text` as Python counts them (without their line breaks)."""
    lines = _LINE_BREAK.split(text)
    return lines[:-1] if lines and not lines[-1] else lines


def parse(text: str) -> cst.Module:
    """libcst's tree of `text`, but only of what CPython accepts: CPython's parser bounds the
    nesting that would overflow libcst's stack, and its messages and positions are the ones
    people know. Raises libcst.ParserSyntaxError (GL900) or NotAnalysed (GL902)."""
    module = parse_if(text, lambda tree: True)
    assert module is not None
    return module


def parse_if(
    text: str,
    wanted: Callable[[ast.AST], bool],
    build: Callable[[str], cst.Module] = cst.parse_module,
) -> cst.Module | None:
    """`parse(text)`, or None when `wanted`, given CPython's tree, says libcst's is not needed
    (it costs ten times as much to build). Source CPython rejects but libcst reads (a newer
    grammar) has no CPython tree: it is parsed. `build` makes libcst's tree of text CPython
    accepts (an editor's `reparse.Reparser` reuses the tree of the previous text)."""
    if len(text) > MAX_PARSED_CHARS:
        raise NotAnalysed(
            f"not analysed: larger than the {MAX_PARSED_CHARS:,} characters gradlint parses"
        )
    deep = too_deeply_nested(text)
    if deep is not None:
        raise _syntax_error(text, "nesting too deep for the parser", *deep)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(CPYTHON_RECURSION_LIMIT)
    try:
        tree = compile(text, "<source>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:  # also IndentationError, TabError
        found = _syntax_error(text, error.msg, error.lineno or 1, error.offset or 1)
        return _newer_grammar(text, found)
    except (MemoryError, RecursionError):  # CPython's own nesting limits
        raise _syntax_error(text, "nesting too deep for the parser", 1, 1) from None
    finally:
        sys.setrecursionlimit(limit)
    if not wanted(tree):
        return None
    long_name = _LONG_DOTTED.search(text)
    if long_name is not None:
        line, col = _position(text, long_name.start())
        raise NotAnalysed(
            f"not analysed: a dotted name of more than {MAX_DOTTED_PARTS:,} parts", line, col
        )
    try:
        return build(text)
    except cst.ParserSyntaxError as error:
        # valid for CPython, not for libcst (`(x): int = 1`): not a syntax error of the user's
        match = re.search(r"error at (\d+):(\d+): ", error.message)
        line, col = (int(match[1]), int(match[2]) + 1) if match else (1, 1)
        line, col = _clamped(text, line, col)
        message = error.message.replace(match[0], "") if match else error.message
        raise NotAnalysed(
            f"not analysed: gradlint's parser (libcst) cannot read this valid Python: {message}",
            line,
            col,
        ) from None


def _newer_grammar(text: str, found: cst.ParserSyntaxError) -> cst.Module:
    """libcst's tree of source this interpreter rejects (`type X = ...` on Python 3.11), if
    libcst reads it and its nesting is surely shallow; else CPython's error, `found`."""
    if _depth_bound(text) > MAX_UNCHECKED_DEPTH:
        raise found
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError:
        raise found from None


def _depth_bound(text: str) -> int:
    """More than the nesting depth libcst's parser reaches: the most operators in one
    statement, plus every `elif` (each nests the next), plus brackets and blocks."""
    most = count = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                most, count = max(most, count), 0
            else:
                count += _nests(token)
    except (tokenize.TokenError, SyntaxError):
        return sys.maxsize
    return most + len(re.findall(r"\belif\b", text)) + MAX_NESTING + 100


def _nests(token: tokenize.TokenInfo) -> bool:
    if token.type == tokenize.OP:
        return token.string not in _NOT_NESTING
    return token.type == tokenize.NAME and token.string in _NESTING_WORDS


def _syntax_error(text: str, message: str, line: int, col: int) -> cst.ParserSyntaxError:
    line, col = _clamped(text, line, col)
    return cst.ParserSyntaxError(
        message, lines=text.splitlines(keepends=True) or [""], raw_line=line, raw_column=col - 1
    )


def _clamped(text: str, line: int, col: int) -> tuple[int, int]:
    """(line, col) moved onto the text: a line that exists, a column at most one past its end."""
    lines = split_lines(text) or [""]
    line = min(max(line, 1), len(lines))
    return line, min(max(col, 1), len(lines[line - 1]) + 1)


def _position(text: str, offset: int) -> tuple[int, int]:
    before = split_lines(text[:offset] + "x")
    return len(before), len(before[-1])
