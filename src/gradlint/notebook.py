"""Jupyter notebooks: code cells joined into one module for the analysis, findings mapped back to
cells, fixes written back into the changed cells only.

Cells are numbered as ruff numbers them: 1-based among all cells, markdown and raw included, so
`cell 3` is the third cell a reader sees. IPython syntax (magics, shell escapes, help) is masked
line for line, so every other line keeps its number and columns, and is restored on write-back.
The notebook's JSON is never re-serialized: a changed cell's `source` value is spliced into the
text as read, so outputs, metadata, indentation and key order stay byte-identical.
"""

from __future__ import annotations

import difflib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

import libcst as cst

from gradlint.config import Settings
from gradlint.diagnostics import Diagnostic, Fix
from gradlint.engine import FileResult, fix_text, lint_text
from gradlint.parsing import NotAnalysed

# cell magics whose body is Python run in the notebook's namespace; any other `%%` cell is skipped
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
_CELL_MAGIC = re.compile(r"%%(\w*)")
# `%time stmt`: the statement runs, so it stays and only the magic before it is masked
_TIMED = re.compile(r"[ \t]*%(?:time|timeit|prun)(?:[ \t]+-\w(?:[ \t]*\w+)?)*[ \t]+(?=\S)")
_COMPOUND = re.compile(r"(?:async|class|def|for|if|try|while|with)\b")
_IPYTHON_LINE = re.compile(
    r"""[ \t]*(?:
        %[A-Za-z_]                          # line magic (not `% x` continuing a formatting)
      | !(?!=)                              # shell escape (not `!=` continuing an expression)
      | \?                                  # ?obj, ??obj
      | [\w.]+\?\??[ \t]*$                  # obj?, obj??
      | [\w.]+(?:[ \t]*,[ \t]*[\w.]+)*[ \t]*=[ \t]*[%!]   # x = !ls, x = %sx ls
    )""",
    re.VERBOSE,
)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class UnreadableNotebook(Exception):
    """The file is not a notebook that can be linted; the message says why."""


@dataclass(frozen=True)
class CodeCell:
    number: int  # 1-based among all cells of the notebook
    source: str  # as in the notebook
    lines: tuple[str, ...]  # what the analysis sees, one per source line, each with its newline
    magics: tuple[str | None, ...]  # the source line where a line was masked, else None


@dataclass(frozen=True)
class Notebook:
    text: str  # the JSON as read (without a byte order mark)
    cells: tuple[CodeCell, ...]  # the code cells that are analysed
    spans: dict[int, tuple[int, int]]  # cell number -> offsets of its `source` value in `text`


@dataclass(frozen=True)
class Origin:
    """Where a line of the joined module comes from."""

    cell: int  # cell number
    magic: str | None = None  # the masked source line, to restore on write-back


@dataclass(frozen=True)
class Joined:
    """The analysed cells as one module, and for each of its lines the cell it belongs to."""

    text: str
    origins: tuple[Origin, ...]

    def locate(self, line: int) -> tuple[int, int]:
        """(cell number, line in the cell) of a 1-based line of the joined text."""
        if not self.origins:
            return 1, 1
        index = min(max(line, 1), len(self.origins)) - 1
        cell = self.origins[index].cell
        in_cell = sum(1 for o in self.origins[:index] if o.cell == cell) + 1
        return cell, in_cell + max(line - len(self.origins), 0)


def read(data: bytes) -> Notebook:
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        text = data[3 if bom else 0 :].decode("utf-8")
        content = json.loads(text)
    except UnicodeDecodeError as error:
        raise UnreadableNotebook(f"not UTF-8: {error}") from error
    except ValueError as error:  # JSONDecodeError; an integer of more digits than Python reads
        raise UnreadableNotebook(f"invalid JSON: {error}") from error
    except RecursionError:
        raise UnreadableNotebook("invalid JSON: nested too deeply") from None
    cells = content.get("cells") if isinstance(content, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise UnreadableNotebook("not a notebook in nbformat 4 (no list of cells)")
    code_cells = []
    for number, cell in enumerate(cells, 1):
        if cell.get("cell_type") != "code" or not _python(content):
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise UnreadableNotebook(f"cell {number}: `source` is neither text nor lines")
        if _LONE_SURROGATE.search(source):  # a `\ud800` escape: no character, no encoding
            raise UnreadableNotebook(f"cell {number}: `source` holds a lone surrogate escape")
        masked = mask(source)
        if masked is not None:
            lines, magics = masked
            code_cells.append(CodeCell(number, source, lines, magics))
    return Notebook(text, tuple(code_cells), _source_spans(text))


def _python(content: dict) -> bool:
    """A notebook of another kernel (R, Julia) has nothing to lint; one that does not say is Python."""
    metadata = content.get("metadata")
    info = metadata.get("language_info") if isinstance(metadata, dict) else None
    name = info.get("name") if isinstance(info, dict) else None
    return not isinstance(name, str) or name.lower() == "python"


def mask(source: str) -> tuple[tuple[str, ...], tuple[str | None, ...]] | None:
    """The cell as Python, line for line, or None for a cell that is not Python (`%%bash`)."""
    lines = _split(source)
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    cell_magic = _CELL_MAGIC.match(lines[first]) if lines else None
    if cell_magic and cell_magic.group(1) not in PYTHON_CELL_MAGICS:
        return None
    out: list[str] = []
    magics: list[str | None] = []
    continued = ""  # the indentation of a masked line continued with a backslash
    for number, line in enumerate(lines):
        body = line.rstrip("\r\n")
        ending = line[len(body) :] or "\n"  # the last line gets one, so cells never run together
        if continued or (number == first and cell_magic) or _IPYTHON_LINE.match(body):
            indent = continued or body[: len(body) - len(body.lstrip())]
            out.append(_placeholder(body, indent) + ending)
            magics.append(line)
            continued = indent if body.endswith("\\") else ""
        else:
            out.append(body + ending)
            magics.append(None)
    return tuple(out), tuple(magics)


def _placeholder(line: str, indent: str) -> str:
    """`pass`, keeping the block valid; `%time stmt` keeps the statement in its columns."""
    timed = _TIMED.match(line)
    statement = line[timed.end() :] if timed else ""
    if timed and not _COMPOUND.match(statement) and not line.endswith("\\"):
        return indent + "pass;".ljust(timed.end() - len(indent)) + statement
    return indent + "pass"


def _split(text: str) -> list[str]:
    """Lines with their endings, split where Python counts lines (\\n, \\r\\n, \\r) only."""
    return io.StringIO(text, newline="").readlines()


def join(notebook: Notebook) -> Joined:
    """Each cell ends with a newline, so no statement runs on into the next cell."""
    text = "".join(line for cell in notebook.cells for line in cell.lines)
    origins = tuple(Origin(cell.number, magic) for cell in notebook.cells for magic in cell.magics)
    return Joined(text, origins)


def follow(joined: Joined, fixed: str) -> Joined | None:
    """The joined module after a fix, or None when the fix spans two cells or edits a masked line.

    Inserted lines belong to the cell of the line before them (fixes insert after a statement).
    """
    old, new = _split(joined.text), _split(fixed)
    origins: list[Origin] = []
    changed: set[int] = set()  # the cells the fix touches; one at most
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            origins.extend(joined.origins[i1:i2])
            continue
        touched = joined.origins[i1:i2]
        if any(o.magic is not None for o in touched):
            return None
        before = origins[-1] if origins else (joined.origins[0] if joined.origins else None)
        if touched:
            cells = {o.cell for o in touched}
        elif before is not None:
            cells = {before.cell}
        else:
            return None
        changed |= cells
        origins.extend(Origin(min(cells)) for _ in range(j2 - j1))
    return Joined(fixed, tuple(origins)) if len(changed) <= 1 else None


def cell_sources(notebook: Notebook, joined: Joined) -> dict[int, str]:
    """The source of every analysed cell as the joined module now has it, magics restored."""
    lines: dict[int, list[str]] = {cell.number: [] for cell in notebook.cells}
    for origin, line in zip(joined.origins, _split(joined.text)):
        lines[origin.cell].append(origin.magic if origin.magic is not None else line)
    out = {}
    for cell in notebook.cells:
        source = "".join(lines[cell.number])
        if not cell.source.endswith(("\n", "\r")) and source.endswith("\n"):
            source = source[:-1]  # the newline was added when joining
        out[cell.number] = source
    return out


def write(notebook: Notebook, sources: dict[int, str]) -> str:
    """The notebook's text with the `source` of changed cells replaced, in the file's own style."""
    original = {cell.number: cell.source for cell in notebook.cells}
    text = notebook.text
    ascii_only = _escapes_non_ascii(text)
    for number in sorted(sources, reverse=True):  # back to front keeps earlier offsets valid
        if sources[number] == original.get(number):
            continue
        start, end = notebook.spans[number]
        value = _render(text, start, end, sources[number], ascii_only)
        text = text[:start] + value + text[end:]
    return text


def _render(text: str, start: int, end: int, source: str, ascii_only: bool) -> str:
    old = text[start:end]
    if old.startswith('"'):
        return json.dumps(source, ensure_ascii=ascii_only)
    items = [json.dumps(line, ensure_ascii=ascii_only) for line in source.splitlines(True)]
    if not items:
        return "[]"
    layout = _layout(old) or (_layout_of_file(text, start) if old == "[]" else None)
    if layout is None:
        separator = ", " if '": ' in text else ","  # json.dumps' default or compact separators
        return "[" + separator.join(items) + "]"
    newline, inner, outer = layout
    return f"[{newline}" + f",{newline}".join(inner + i for i in items) + f"{newline}{outer}]"


def _layout(value: str) -> tuple[str, str, str] | None:
    """(newline, item indent, closing indent) of a list written one item a line, else None."""
    first = re.match(r"\[(\r?\n)([ \t]*)\S", value)
    close = re.search(r"\n([ \t]*)\]$", value)
    return (first.group(1), first.group(2), close.group(1)) if first and close else None


def _layout_of_file(text: str, start: int) -> tuple[str, str, str] | None:
    """For a list where the file had `[]`: one level deeper than its key, if the file indents."""
    unit = re.match(r"\{(\r?\n)([ \t]+)", text)
    if unit is None:
        return None
    line_start = text.rfind("\n", 0, start) + 1
    outer = text[line_start:start][: -len(text[line_start:start].lstrip())]
    return unit.group(1), outer + unit.group(2), outer


_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")


def _escapes_non_ascii(text: str) -> bool:
    """Whether the file writes non-ASCII characters as \\u escapes (json's ensure_ascii)."""
    if any(ord(c) > 127 for c in text):
        return False
    return any(int(m.group(1), 16) > 127 for m in _ESCAPE.finditer(text))


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _source_spans(text: str) -> dict[int, tuple[int, int]]:
    """Offsets of each cell's `source` value; the text is already known to be valid JSON."""
    spans: dict[int, tuple[int, int]] = {}
    for key, start, _ in _members(text, _skip(text, 0)):
        if key != "cells":
            continue
        spans = {}  # json keeps the last of repeated keys; so do we
        for number, (cell_start, _) in enumerate(_elements(text, start), 1):
            for cell_key, value_start, value_end in _members(text, cell_start):
                if cell_key == "source":
                    spans[number] = (value_start, value_end)
    return spans


def _skip(text: str, index: int) -> int:
    match = _SPACE.match(text, index)
    return match.end() if match else index


def _members(text: str, index: int) -> Iterator[tuple[str, int, int]]:
    """(key, value start, value end) of the object at `index`."""
    index = _skip(text, index + 1)
    while text[index] != "}":
        key, index = _DECODER.raw_decode(text, index)
        start = _skip(text, _skip(text, index) + 1)  # past the colon
        _, end = _DECODER.raw_decode(text, start)
        yield key, start, end
        index = _skip(text, end)
        if text[index] == ",":
            index = _skip(text, index + 1)


def _elements(text: str, index: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each value of the array at `index`."""
    index = _skip(text, index + 1)
    while text[index] != "]":
        _, end = _DECODER.raw_decode(text, index)
        yield index, end
        index = _skip(text, end)
        if text[index] == ",":
            index = _skip(text, index + 1)


def lint_notebook(
    path: str, data: bytes, settings: Settings, fix: bool = False, with_fixes: bool = False
) -> FileResult:
    """What `engine.lint_source` returns for a `.py` file, for a notebook; never raises."""
    try:
        notebook = read(data)
    except UnreadableNotebook as error:
        message = f"cannot read notebook: {error}"
        return FileResult(path, [Diagnostic("GL901", path, 1, 1, message)])
    joined = join(notebook)
    try:
        if fix:
            return _fix(path, data, notebook, joined, settings)
        diagnostics = lint_text(path, joined.text, settings, with_fixes)
        return FileResult(path, _in_cells(diagnostics, notebook, joined), notebook.text)
    except cst.ParserSyntaxError as error:
        cell, line = joined.locate(error.raw_line)
        problem = Diagnostic(
            "GL900", path, line, error.raw_column + 1, f"cannot parse: {error.message}", cell=cell
        )
        return FileResult(path, [problem], notebook.text)
    except NotAnalysed as error:
        cell, line = joined.locate(error.line)
        problem = Diagnostic("GL902", path, line, error.col, str(error), cell=cell)
        return FileResult(path, [problem], notebook.text)
    except RecursionError:  # CPython parsed it: the analysis went deeper than its stack
        message = "not analysed: nesting too deep for the analysis"
        return FileResult(path, [Diagnostic("GL902", path, 1, 1, message)], notebook.text)
    except Exception as error:  # noqa: BLE001 -- one file's failure must not end the run
        message = f"internal error ({type(error).__name__}: {error}); please report this file"
        problem = Diagnostic("GL999", path, 1, 1, message)
        return FileResult(path, [problem], notebook.text, internal_error=True)


def _fix(
    path: str, data: bytes, notebook: Notebook, joined: Joined, settings: Settings
) -> FileResult:
    current = [joined]

    def within_one_cell(before: str, after: str) -> bool:
        followed = follow(current[0], after)
        if followed is None:
            return False
        current[0] = followed
        return True

    fixed, count = fix_text(joined.text, settings, accept=within_one_cell)
    final = current[0]
    diagnostics = _in_cells(lint_text(path, fixed, settings), notebook, final)
    fixed_notebook = write(notebook, cell_sources(notebook, final))
    if fixed_notebook == notebook.text:
        return FileResult(path, diagnostics, notebook.text)
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    fixed_data = bom + fixed_notebook.encode("utf-8")
    return FileResult(path, diagnostics, notebook.text, fixed_notebook, fixed_data, count)


def _in_cells(
    diagnostics: list[Diagnostic], notebook: Notebook, joined: Joined
) -> list[Diagnostic]:
    """Lines of the joined module become (cell, line in cell); fixes become notebook text."""
    out = []
    for diagnostic in diagnostics:
        cell, line = joined.locate(diagnostic.line)
        fix = diagnostic.fix
        if fix is not None:
            followed = follow(joined, fix.fixed_source)
            fixed = write(notebook, cell_sources(notebook, followed)) if followed else None
            fix = Fix(fix.description, fix.applicability, fixed) if fixed is not None else None
        message = _cell_lines(diagnostic.message, joined, cell)
        trail = tuple(_cell_lines(step, joined, cell) for step in diagnostic.trail)
        out.append(replace(diagnostic, line=line, cell=cell, message=message, trail=trail, fix=fix))
    return sorted(out, key=lambda d: d.sort_key)


_LINE_REFERENCE = re.compile(r"\bline (\d+)\b")


def _cell_lines(text: str, joined: Joined, reported_cell: int) -> str:
    """`line 12` of the joined module as the reader counts it: in the reported cell or another."""

    def in_cell(reference: re.Match[str]) -> str:
        cell, line = joined.locate(int(reference.group(1)))
        return f"line {line}" if cell == reported_cell else f"line {line} of cell {cell}"

    return _LINE_REFERENCE.sub(in_cell, text)
