"""gradlint as a flake8 plugin (`GL` codes), so every editor that runs flake8 shows its findings.

flake8 imports this module on every run, for every project; the engine (and libcst) is imported
only when a file mentions a trigger word, so files without training loops cost a substring scan.

Input problems: flake8 runs tree plugins only on files Python's own parser accepts and reports
the others as E999 (syntax) or E902 (unreadable), so GL900 here only means a file that Python
accepts but gradlint's parser does not; it is reported because that file was not analysed.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from dataclasses import replace

from gradlint import __version__

# A word that every rule's trigger patterns require (tests check each registered rule): a file
# with none of them has nothing to report, and the engine's import is skipped.
TRIGGERS: tuple[str, ...] = (
    "backward",
    "clip_grad",
    "Variable",
    "requires_grad",
    "Parameter",
    "parameters",
    "zero_",
    "schedule",
    ".data",
)


UNUSED_NOQA = "GL800"


class Plugin:
    name = "gradlint"
    version = __version__

    def __init__(self, tree: ast.AST, lines: list[str], filename: str) -> None:
        # `lines` is what flake8 read (the editor's buffer under `-`), not the file on disk
        self.lines = lines
        self.filename = filename

    def run(self) -> Iterator[tuple[int, int, str, type[Plugin]]]:
        text = "".join(self.lines)
        if not any(word in text for word in TRIGGERS):
            return
        from gradlint.config import ConfigError, Settings, file_settings
        from gradlint.engine import lint_source
        from gradlint.limits import run_bounded

        try:  # [tool.gradlint] applies under flake8 too; flake8's --select comes on top
            settings = file_settings(self.filename)
        except ConfigError:
            settings = Settings()  # gradlint check reports the broken configuration
        if settings is None:
            return
        # flake8 judges noqa comments itself: GL800 (unused ones) is for gradlint check
        settings = replace(settings, ignore=(*settings.ignore, UNUSED_NOQA))
        # on a thread with a large stack, as gradlint check lints a file (no time limit: flake8
        # has none for its plugins either)
        data = _as_source_bytes(text)
        result = run_bounded(lambda: lint_source(self.filename, data, settings), None)
        for diagnostic in result.diagnostics:
            line, col, message = diagnostic.line, diagnostic.col, diagnostic.message
            if diagnostic.cell is not None:
                # a notebook named to flake8: lines of a cell are not lines of the file, so the
                # finding is on the file's first line and says where, as `--format github` does
                line, col = 1, 1
                message = f"cell {diagnostic.cell}, line {diagnostic.line}: {message}"
            # flake8 prints col + 1; gradlint's columns are already 1-based
            yield (line, col - 1, f"{diagnostic.code} {message}", Plugin)


def _as_source_bytes(text: str) -> bytes:
    """flake8's decoded text as bytes that gradlint decodes back to the same text."""
    data = text.encode("utf-8")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return text.encode(encoding)
    except (SyntaxError, LookupError, UnicodeEncodeError):
        return data
