"""Turning a finding into new source text: tree edits, checked by parsing and re-linting.

A plan is a list of candidate edits, best first; the engine keeps the first whose result
parses and whose re-lint shows the finding gone and nothing new.
"""

from __future__ import annotations

import difflib
import errno
import os
import signal
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Union

import libcst as cst


@dataclass(frozen=True)
class InsertAfter:
    anchor: cst.BaseStatement
    code: str


@dataclass(frozen=True)
class InsertBefore:
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


@dataclass(frozen=True)
class MoveBefore:
    statement: cst.BaseStatement
    anchor: cst.BaseStatement


TreeEdit = Union[InsertAfter, InsertBefore, InsertFirst, MoveAfter, MoveBefore]


@dataclass(frozen=True)
class Candidate:
    """One way to fix a finding, with what it may change beyond the defect (ruff's words:
    "safe" keeps the program's meaning otherwise, "unsafe" may not)."""

    description: str
    edit: TreeEdit
    applicability: str = "safe"


def apply(module: cst.Module, edit: TreeEdit) -> cst.Module | None:
    return apply_all(module, [edit])


def apply_all(module: cst.Module, edits: Sequence[TreeEdit]) -> cst.Module | None:
    """The module with every edit made in one pass over it; None when they cannot all be made
    (two moves of one statement, a one-line loop body)."""
    try:
        result = module.visit(_Editor(edits))
    except (cst.ParserSyntaxError, cst.CSTValidationError, ValueError, TypeError):
        return None
    return result if isinstance(result, cst.Module) else None


class _Editor(cst.CSTTransformer):
    def __init__(self, edits: Sequence[TreeEdit]):
        self.removed: set[int] = set()
        self.before: dict[int, list[cst.BaseStatement]] = {}
        self.after: dict[int, list[cst.BaseStatement]] = {}
        self.first: dict[int, list[cst.BaseStatement]] = {}
        for edit in edits:
            if isinstance(edit, (MoveAfter, MoveBefore)):
                if id(edit.statement) in self.removed:
                    raise ValueError("a statement moved twice")
                self.removed.add(id(edit.statement))
            new = _new_statement(edit)
            if isinstance(edit, (InsertBefore, MoveBefore)):
                self.before.setdefault(id(edit.anchor), []).append(new)
            elif isinstance(edit, (InsertAfter, MoveAfter)):
                self.after.setdefault(id(edit.anchor), []).append(new)
            else:
                self.first.setdefault(id(edit.loop), []).append(new)

    def _rewrite(
        self, original: cst.CSTNode, body: list[cst.BaseStatement]
    ) -> list[cst.BaseStatement] | None:
        out: list[cst.BaseStatement] = []
        changed = False
        originals = list(original.body)  # type: ignore[attr-defined]
        for old, new in zip(originals, body):
            if id(old) in self.removed:
                changed = True
                continue
            for index, inserted in enumerate(self.before.get(id(old), ())):
                if index == 0:
                    # the anchor's blank lines and comments stay above what goes before it
                    lead = getattr(new, "leading_lines", ())
                    own = getattr(inserted, "leading_lines", ())
                    inserted = inserted.with_changes(leading_lines=[*lead, *own])
                    new = new.with_changes(leading_lines=[])
                out.append(inserted)
                changed = True
            out.append(new)
            if id(old) in self.after:
                out.extend(self.after[id(old)])
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
        inserted = self.first.get(id(original))
        if not inserted:
            return updated
        block = updated.body
        if not isinstance(block, cst.IndentedBlock):
            raise ValueError("loop body on one line")
        body = list(block.body)
        # a function's docstring stays its first statement
        skip = 1 if isinstance(original, cst.FunctionDef) and original.get_docstring() else 0
        return updated.with_changes(
            body=block.with_changes(body=[*body[:skip], *inserted, *body[skip:]])
        )


def _new_statement(edit: TreeEdit) -> cst.BaseStatement:
    if isinstance(edit, (MoveAfter, MoveBefore)):
        moved = edit.statement
        return moved.with_changes(leading_lines=[]) if _only_blank(moved) else moved
    return cst.parse_statement(edit.code + "\n")


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


def merge(original: str, fixed_texts: Sequence[str]) -> tuple[str, list[int]]:
    """Combine fixes made separately to `original`: each fix's changed lines are taken while
    they overlap no fix taken before. Returns the combined text and which fixes it holds."""
    lines = original.splitlines(keepends=True)
    taken: list[tuple[int, int]] = []  # changed spans of `lines`, an insertion as one point
    hunks: list[tuple[int, int, list[str]]] = []
    included: list[int] = []
    for index, text in enumerate(fixed_texts):
        new_lines = text.splitlines(keepends=True)
        matcher = difflib.SequenceMatcher(None, lines, new_lines, autojunk=False)
        changes = [
            (i1, i2, new_lines[j1:j2])
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            if tag != "equal"
        ]
        if not changes or any(_overlaps(i1, i2, t) for i1, i2, _ in changes for t in taken):
            continue
        taken.extend((i1, i2) for i1, i2, _ in changes)
        hunks.extend(changes)
        included.append(index)
    for i1, i2, replacement in sorted(hunks, key=lambda h: (h[0], h[1]), reverse=True):
        lines[i1:i2] = replacement
    return "".join(lines), included


def _overlaps(i1: int, i2: int, span: tuple[int, int]) -> bool:
    """Two changes touch or neighbour the same lines, or insert at the same place (whose
    order would be a guess)."""
    j1, j2 = span
    return max(i1, j1) <= min(i2, j2)


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


def write_in_place(path: str, original: bytes, data: bytes) -> str | None:
    """Replace the file's content with `data` unless it changed since it was read as `original`.
    Returns None when written, else why not, in the user's words.

    The file is rewritten in place, as ruff and black do, not replaced by a renamed temporary
    file: a new file would lose its owner and group, split hard links, turn a symbolic link into
    a copy and need a writable folder. The new bytes are whole and checked before the file is
    opened, their room is reserved first, Ctrl-C waits until they are written, and they go over
    the old bytes before the file is cut to length, so the file is never found empty.
    """
    try:
        if not os.stat(path).st_mode & 0o222:  # root may write anyway; the user said no
            return "not fixed: the file is read-only"
        with open(path, "r+b") as handle:
            if handle.read() != original:
                return "not fixed: the file changed since it was read"
            if len(data) > len(original):
                _reserve(handle.fileno(), len(data))
            with _interruptions_held():
                handle.seek(0)
                handle.write(data)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as error:
        return f"not fixed: cannot write the file: {error.strerror or error}"
    return None


def _reserve(descriptor: int, size: int) -> None:
    """Room on the disk for `size` bytes before any byte is overwritten, so that a full disk
    stops the fix before it starts; a file system that cannot promise it is written all the same."""
    if not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(descriptor, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


@contextmanager
def _interruptions_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the file is whole; they take effect right after."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
