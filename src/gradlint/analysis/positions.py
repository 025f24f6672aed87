"""Line and column of nodes, as libcst's PositionProvider gives them, at a third of its cost.

libcst finds positions by printing the module with a codegen state that records each node's
range (a `CodeRange` object per node, a regular expression per token). Findings need only
where a node starts, so `_Starts` records that and tells lines apart with a plain substring
test. The same codegen hooks (`before_codegen`, `after_codegen`, `record_syntactic_position`)
decide each position, so the answers are the provider's (a test compares them on every
fixture); should libcst's codegen interface change, the provider itself is used.
`CodegenState` is libcst's, not public: the lowest and newest libcst the project allows are
both tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import libcst as cst
from libcst._nodes.internal import CodegenState  # what libcst's own position providers extend
from libcst.metadata import MetadataWrapper, PositionProvider


class Positions:
    """Line (from 1) and column (from 0) where nodes start, computed for the whole module on
    first use only: clean files never pay for it.

    Given the line each top-level statement starts on (`lines`, known to an editor's
    `reparse.Reparser`) and a way to tell which statement holds a node (`statement_of`: its
    index in `module.body`, or None), only the statements asked about are printed."""

    def __init__(
        self,
        module: cst.Module,
        lines: Sequence[int] | None = None,
        statement_of: Callable[[cst.CSTNode], int | None] | None = None,
    ):
        self.module = module
        self._found: dict[cst.CSTNode, tuple[int, int]] | None = None
        self._lines = lines if lines is not None and statement_of is not None else None
        self._statement_of = statement_of
        self._printed: dict[cst.CSTNode, tuple[int, int]] = {}
        self._done: set[int] = set()

    def of(self, node: cst.CSTNode) -> tuple[int, int]:
        if self._found is None and self._lines is not None and self._statement_of is not None:
            index = self._statement_of(node)
            if index is not None:
                if index not in self._done:
                    self._done.add(index)
                    self._printed.update(_statement_starts(self.module, index, self._lines[index]))
                found = self._printed.get(node)
                if found is not None:
                    return found
        if self._found is None:
            self._found = starts(self.module)
        return self._found.get(node, (0, 0))


def _statement_starts(
    module: cst.Module, index: int, line: int
) -> dict[cst.CSTNode, tuple[int, int]]:
    """Where the nodes of `module.body[index]`, which starts on `line`, start."""
    state = _Starts(module)
    state.line = line
    module.body[index]._codegen(state)
    return state.starts


def starts(module: cst.Module) -> dict[cst.CSTNode, tuple[int, int]]:
    """Where each node of `module` starts, as PositionProvider's `start` says."""
    try:
        state = _Starts(module)
        module._codegen(state)
        return state.starts
    except (AttributeError, TypeError):  # pragma: no cover - another codegen interface
        pass
    found = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {node: (at.start.line, at.start.column) for node, at in found.items()}


class _Starts(CodegenState):
    """Prints the module (the tokens are kept, as libcst's states keep them) while
    following the line and column, and records where each node starts."""

    def __init__(self, module: cst.Module):
        super().__init__(
            default_indent=module.default_indent, default_newline=module.default_newline
        )
        self.line, self.column = 1, 0
        self.open: list[tuple[int, int]] = []
        self.starts: dict[cst.CSTNode, tuple[int, int]] = {}

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        if "\n" in value or "\r" in value:
            lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            self.line += len(lines) - 1
            self.column = len(lines[-1])
        else:
            self.column += len(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.open.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self.open.pop()
        self.starts.setdefault(node, start)  # a syntactic position recorded inside wins

    @contextmanager
    def record_syntactic_position(
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> Iterator[None]:
        start = (self.line, self.column)
        try:
            yield
        finally:
            self.starts[node] = self.starts[start_node] if start_node is not None else start
