"""The values that flow out of the analysis: findings, the fixes that go with them, edits, and
what a run says about one file."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    """Replace the text between two (line, col) positions (1-based line, 0-based col) of a file."""

    start: tuple[int, int]
    end: tuple[int, int]
    content: str


@dataclass(frozen=True)
class Fix:
    description: str
    applicability: str  # "safe" or "unsafe", as ruff uses the words
    fixed_source: str  # the whole file after the fix; edits are derived from it for reporters


@dataclass(frozen=True)
class Diagnostic:
    code: str
    path: str
    line: int  # 1-based
    col: int  # 1-based, as flake8 prints it
    message: str
    trail: tuple[str, ...] = ()  # the events that prove the finding, in order
    fix: Fix | None = field(default=None, compare=False)
    cell: int | None = None  # 1-based code cell of a notebook; `line` then counts in the cell

    @property
    def location(self) -> str:
        """`path:line:col`, or `path:cell N:line:col` in a notebook, as ruff prints it."""
        cell = f"cell {self.cell}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.line}:{self.col}"

    @property
    def sort_key(self) -> tuple[str, int, int, int, str]:
        return (self.path, self.cell or 0, self.line, self.col, self.code)


def input_problem(code: str, path: str, line: int, col: int, message: str) -> Diagnostic:
    return Diagnostic(code, path, max(line, 1), max(col, 1), message)


@dataclass
class FileResult:
    path: str
    diagnostics: list[Diagnostic]
    text: str = ""  # the source as read, for code frames and diffs
    fixed_text: str | None = None  # set when fixes changed the text
    fixed_data: bytes | None = None  # fixed_text in the file's own encoding (and BOM)
    fixes_applied: int = 0
    written: bool = False
    not_written: str | None = None  # why a fix could not be written, for the user
    internal_error: bool = False
    fixed_codes: dict[str, int] = field(default_factory=dict)  # fixes applied, by rule
    skipped: str | None = None  # why the file was read but not analysed, for the summary
