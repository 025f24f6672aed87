"""Turning a finding into new source text: tree edits, checked by parsing and re-linting.

A plan is a list of candidate edits, best first; the engine keeps the first whose result
parses and whose re-lint shows the finding gone and nothing new.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import libcst as cst


@dataclass(frozen=True)
class InsertAfter:
    anchor: cst.BaseStatement
    code: str


@dataclass(frozen=True)
class InsertFirst:
    """Insert as the first statement of a loop's or a function's body."""

    loop: cst.For | cst.While | cst.FunctionDef
    code: str


@dataclass(frozen=True)
class MoveAfter:
    statement: cst.BaseStatement
    anchor: cst.BaseStatement


Edit = Union[InsertAfter, InsertFirst, MoveAfter]


def apply(module: cst.Module, edit: Edit) -> cst.Module | None:
    try:
        result = module.visit(_Editor(edit))
    except (cst.ParserSyntaxError, ValueError, TypeError):
        return None
    return result if isinstance(result, cst.Module) else None


class _Editor(cst.CSTTransformer):
    def __init__(self, edit: Edit):
        self.edit = edit
        self.moved: cst.BaseStatement | None = None
        if isinstance(edit, MoveAfter):
            self.moved = edit.statement

    def _new_statement(self) -> cst.BaseStatement:
        if isinstance(self.edit, MoveAfter):
            return (
                self.edit.statement.with_changes(leading_lines=[])
                if _only_blank(self.edit.statement)
                else self.edit.statement
            )
        return cst.parse_statement(self.edit.code + "\n")

    def _rewrite(
        self, original: cst.CSTNode, body: list[cst.BaseStatement]
    ) -> list[cst.BaseStatement] | None:
        edit = self.edit
        out: list[cst.BaseStatement] = []
        changed = False
        originals = list(original.body)  # type: ignore[attr-defined]
        for old, new in zip(originals, body):
            if isinstance(edit, MoveAfter) and old is edit.statement:
                changed = True
                continue
            out.append(new)
            anchor = getattr(edit, "anchor", None)
            if anchor is not None and old is anchor:
                out.append(self._new_statement())
                changed = True
        return out if changed else None

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body = self._rewrite(original, list(updated.body))
        if body is not None:
            updated = updated.with_changes(body=body or [cst.SimpleStatementLine([cst.Pass()])])
        return updated

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        body = self._rewrite(original, list(updated.body))
        return updated.with_changes(body=body) if body is not None else updated

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        return self._first(original, updated)  # type: ignore[return-value]

    def leave_While(self, original: cst.While, updated: cst.While) -> cst.While:
        return self._first(original, updated)  # type: ignore[return-value]

    def leave_FunctionDef(
        self, original: cst.FunctionDef, updated: cst.FunctionDef
    ) -> cst.FunctionDef:
        return self._first(original, updated)  # type: ignore[return-value]

    def _first(
        self,
        original: cst.For | cst.While | cst.FunctionDef,
        updated: cst.For | cst.While | cst.FunctionDef,
    ) -> cst.For | cst.While | cst.FunctionDef:
        if not (isinstance(self.edit, InsertFirst) and original is self.edit.loop):
            return updated
        block = updated.body
        if not isinstance(block, cst.IndentedBlock):
            raise ValueError("loop body on one line")
        return updated.with_changes(
            body=block.with_changes(body=[self._new_statement(), *block.body])
        )


def _only_blank(statement: cst.BaseStatement) -> bool:
    lines = getattr(statement, "leading_lines", ())
    return all(line.comment is None for line in lines)


def wrap_in_with(
    module: cst.Module,
    run: Sequence[cst.BaseStatement],
    header: str,
    inner: Sequence[cst.BaseStatement] | None = None,
) -> cst.Module | None:
    """Put a run of consecutive statements of one block into `with HEADER:` (as `inner`, their
    rewritten forms, when given); the first statement's blank lines and comments stay above."""
    inner = list(run if inner is None else inner)
    first = run[0]
    parsed = cst.parse_statement(f"with {header}:\n    pass\n")
    assert isinstance(parsed, cst.With)
    lead = inner[0]
    if isinstance(lead, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        lead = lead.with_changes(leading_lines=[])
    block = cst.IndentedBlock(body=[lead, *inner[1:]])
    wrapped = parsed.with_changes(
        body=block, leading_lines=getattr(first, "leading_lines", parsed.leading_lines)
    )
    result = module.visit(_WrapRun(run, wrapped))
    return result if isinstance(result, cst.Module) else None


class _WrapRun(cst.CSTTransformer):
    """The first statement of the run becomes the `with` block; the others go into it."""

    def __init__(self, run: Sequence[cst.BaseStatement], wrapped: cst.With):
        self.run = run
        self.wrapped = wrapped

    def _body(self, original: cst.CSTNode, updated: cst.CSTNode) -> list[cst.BaseStatement]:
        out: list[cst.BaseStatement] = []
        for old, new in zip(getattr(original, "body", ()), getattr(updated, "body", ())):
            if old is self.run[0]:
                out.append(self.wrapped)
            elif not any(old is statement for statement in self.run):
                out.append(new)
        return out

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated.with_changes(body=self._body(original, updated))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        return updated.with_changes(body=self._body(original, updated))


def parses(text: str, original: str | None = None, path: str = "<fixed>") -> bool:
    """The last check before a fixed text is written: a fix must never break the file.

    Given the `original`, the fixed text must also compile when the original does: libcst
    accepts some code CPython refuses (a name used before its `global` statement), and
    CPython refuses grammar newer than its own, which is then libcst's alone to judge.
    """
    try:
        cst.parse_module(text)
    except (cst.ParserSyntaxError, RecursionError):
        return False
    return original is None or _compiles(text, path) or not _compiles(original, path)


def _compiles(text: str, path: str) -> bool:
    with warnings.catch_warnings():  # invalid escape sequences and the like are not our report
        warnings.simplefilter("ignore")
        try:
            compile(text, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


def write_atomically(path: str, original: bytes, data: bytes) -> bool:
    """Replace the file's content with `data` unless it changed since it was read as `original`.

    The new content goes to a temporary file in the same folder (same permissions) and is
    renamed over the original, so an interruption leaves either the old or the new file.
    """
    import os
    import tempfile

    try:
        with open(path, "rb") as handle:
            if handle.read() != original:
                return False
        mode = os.stat(path).st_mode
        folder = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(prefix=".gradlint-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, mode & 0o7777)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError:
        return False
    return True
