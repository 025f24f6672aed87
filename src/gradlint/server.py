"""`gradlint server`: a language server over stdio for editors.

It publishes findings as diagnostics when a document is opened, changed or saved, and offers
each finding's fix, a `# noqa` for the line, and a fix-all as code actions. pygls is imported
only when the server starts, so the rest of gradlint never needs it.

Positions: gradlint counts lines from 1 and columns from 1 in code points; LSP counts both from
0 and columns in the code units the client and server agreed on (UTF-16 unless both said
otherwise). Lines are split as Python and LSP both do, on `\\r\\n`, `\\r` and `\\n` only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click
import libcst as cst

from gradlint import __version__, noqa
from gradlint.batch import DEFAULT_TIMEOUT
from gradlint.config import ConfigError, Settings, file_settings
from gradlint.diagnostics import Diagnostic
from gradlint.engine import fix_text, lint_text
from gradlint.limits import Expired, run_bounded
from gradlint.parsing import NotAnalysed

if TYPE_CHECKING:
    from lsprotocol import types
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import TextDocument

EXIT_ERROR = 2
INSTALL_HINT = 'pip install "torch-gradlint[lsp]"'  # the distribution's name, not the import's
SOURCE = "gradlint"
FIX_ALL_KIND = "source.fixAll.gradlint"
# Typing bursts are linted once, after this pause; open and save are linted at once.
DEBOUNCE_SECONDS = 0.2

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_NAME = re.compile(r"[^\W\d]\w*(?:\s*\.\s*[^\W\d]\w*)*")
_CLOSING = {"(": ")", "[": "]"}
logger = logging.getLogger(__name__)


def _settings_for(path: str) -> Settings | None:
    """The settings of the nearest configuration for `path`; None when it excludes the file.

    Read again for every lint, so an edited configuration applies from the next change on.
    """
    try:
        return file_settings(path)
    except ConfigError as error:
        logger.warning("%s; using the default settings", error)
        return Settings()


# --- what to report, without any LSP types ---------------------------------------------------


def lint_document(
    path: str, text: str, settings: Settings, timeout: float | None = DEFAULT_TIMEOUT
) -> list[Diagnostic]:
    """Findings with their fixes; text that does not parse (yet) is one GL900, never an error.
    Linted as the CLI lints a file: on a thread with a large stack, under its time limit."""
    try:
        diagnostics = run_bounded(lambda: lint_text(path, text, settings, with_fixes=True), timeout)
    except Expired:
        message = f"not analysed: took longer than the {timeout:g} s time limit"
        diagnostics = [Diagnostic("GL902", path, 1, 1, message)]
    except NotAnalysed as error:
        diagnostics = [Diagnostic("GL902", path, error.line, error.col, str(error))]
    except cst.ParserSyntaxError as error:
        message = f"cannot parse: {error.message}"
        diagnostics = [
            Diagnostic("GL900", path, max(error.raw_line, 1), error.raw_column + 1, message)
        ]
    except RecursionError:  # CPython parsed it: the analysis went deeper than its stack
        diagnostics = [
            Diagnostic("GL902", path, 1, 1, "not analysed: nesting too deep for the analysis")
        ]
    except Exception as error:  # noqa: BLE001 -- a failure on one buffer must not end the server
        message = f"internal error ({type(error).__name__}: {error}); please report this file"
        diagnostics = [Diagnostic("GL999", path, 1, 1, message)]
    return [d for d in diagnostics if settings.enabled(d.code)]


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their line endings, as LSP numbers them."""
    return _LINE.findall(text)


def _content(line: str) -> str:
    return line.rstrip("\r\n")


def finding_span(line: str, col: int) -> tuple[int, int]:
    """The code-point columns (0-based, end exclusive) to underline for a finding at `col`.

    A finding points at the start of a call such as `loss.backward()` or `opt.zero_grad()`: the
    span covers the dotted name and its bracketed arguments, or the rest of the line when the
    brackets do not close on it.
    """
    text = _content(line)
    start = min(col, len(text))
    end = start
    while True:
        name = _NAME.match(text, end)
        if name is None:
            break
        end = name.end()
        while end < len(text) and text[end] in _CLOSING:
            closed = _bracket_end(text, end)
            if closed is None:
                return start, len(text.rstrip())
            end = closed
        if not text.startswith(".", end):
            break
        end += 1
    return start, max(end, min(start + 1, len(text)))


def _bracket_end(text: str, start: int) -> int | None:
    depth = 0
    for index in range(start, len(text)):
        if text[index] in "([{":
            depth += 1
        elif text[index] in ")]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def changed_lines(old: str, new: str) -> tuple[int, int, str]:
    """The smallest run of whole lines that turns `old` into `new`.

    Returns (first line, line after the last replaced one, replacement text), 0-based; the lines
    before and after the run are the same in both texts.
    """
    before, after = split_lines(old), split_lines(new)
    prefix = 0
    while prefix < min(len(before), len(after)) and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < min(len(before), len(after)) - prefix and before[-1 - suffix] == after[-1 - suffix]
    ):
        suffix += 1
    return prefix, len(before) - suffix, "".join(after[prefix : len(after) - suffix])


def noqa_insertion(line: str, code: str) -> tuple[int, int, str] | None:
    """How to add `code` to the line's `# noqa`: (start col, end col, new text) in code points.

    The code joins an existing `# noqa: ...` list; otherwise a comment goes at the end of the
    line. None when the line cannot take a comment (it continues with a backslash) or a bare
    `# noqa` already covers every code.
    """
    text = _content(line)
    match = noqa._NOQA.search(text)
    if match is not None:
        if match.group("codes") is None:
            return None
        end = match.end("codes")
        return end, end, f", {code}"
    kept = text.rstrip()
    if kept.endswith("\\"):
        return None
    separator = "  " if kept else ""
    return len(kept), len(text), f"{separator}# noqa: {code}"


# --- the documents the editor has open -------------------------------------------------------


@dataclass
class Documents:
    """The findings of each open document, kept until its text changes."""

    linted: dict[str, tuple[str, list[Diagnostic]]] = field(default_factory=dict)

    def findings(self, uri: str, path: str, text: str) -> list[Diagnostic]:
        cached = self.linted.get(uri)
        if cached is not None and cached[0] == text:
            return cached[1]
        settings = _settings_for(path)
        found = [] if settings is None else lint_document(path, text, settings)
        self.linted[uri] = (text, found)
        return found

    def forget(self, uri: str) -> None:
        self.linted.pop(uri, None)


# --- LSP ---------------------------------------------------------------------------------------


def create_server() -> LanguageServer:
    """A language server with gradlint's features; raises ImportError without pygls."""
    from lsprotocol import types
    from pygls.lsp.server import LanguageServer

    server = LanguageServer(SOURCE, __version__)
    documents = Documents()

    async def publish(ls: LanguageServer, document: TextDocument) -> None:
        # off the event loop: the server keeps answering while a document is linted
        found = await asyncio.get_running_loop().run_in_executor(
            None, documents.findings, document.uri, document.path, document.source
        )
        lines = split_lines(document.source)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=document.uri,
                version=document.version,
                diagnostics=[_to_lsp(d, lines, document) for d in found],
            )
        )

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        await publish(ls, ls.workspace.get_text_document(params.text_document.uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        await asyncio.sleep(DEBOUNCE_SECONDS)
        document = ls.workspace.get_text_document(params.text_document.uri)
        if document.version == params.text_document.version:  # else a later change publishes
            await publish(ls, document)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: LanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        await publish(ls, ls.workspace.get_text_document(params.text_document.uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        documents.forget(params.text_document.uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND]),
    )
    def code_action(ls: LanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        document = ls.workspace.get_text_document(params.text_document.uri)
        return _code_actions(documents, document, params)

    return server


def _to_lsp(
    diagnostic: Diagnostic, lines: Sequence[str], document: TextDocument
) -> types.Diagnostic:
    from lsprotocol import types

    line = diagnostic.line - 1
    text = lines[line] if line < len(lines) else ""
    start, end = finding_span(text, diagnostic.col - 1)
    message = diagnostic.message
    if diagnostic.trail:
        message += "\npath: " + " → ".join(diagnostic.trail)
    return types.Diagnostic(
        range=types.Range(
            start=_position(document, line, text, start), end=_position(document, line, text, end)
        ),
        message=message,
        severity=(
            types.DiagnosticSeverity.Error
            if diagnostic.code.startswith("GL9")
            else types.DiagnosticSeverity.Warning
        ),
        code=diagnostic.code,
        source=SOURCE,
    )


def _position(document: TextDocument, line: int, text: str, col: int) -> types.Position:
    """LSP position of code-point column `col` on `line`, in the negotiated code units."""
    from lsprotocol import types

    return types.Position(line=line, character=document.position_codec.client_num_units(text[:col]))


def _line_edit(
    document: TextDocument, lines: Sequence[str], line: int, start: int, end: int, new: str
) -> types.TextEdit:
    from lsprotocol import types

    text = lines[line] if line < len(lines) else ""
    return types.TextEdit(
        range=types.Range(
            start=_position(document, line, text, start), end=_position(document, line, text, end)
        ),
        new_text=new,
    )


def _file_edit(document: TextDocument, old: str, new: str) -> types.TextEdit:
    """A TextEdit replacing only the lines that differ between `old` and `new`."""
    from lsprotocol import types

    lines = split_lines(old)
    first, stop, replacement = changed_lines(old, new)
    end = types.Position(line=stop, character=0)
    if stop == len(lines) and lines and _content(lines[-1]) == lines[-1]:
        # the old text ends without a line break: its end is on its last line, not after it
        end = _position(document, stop - 1, lines[-1], len(lines[-1]))
    return types.TextEdit(
        range=types.Range(start=types.Position(line=first, character=0), end=end),
        new_text=replacement,
    )


def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    return only is None or any(kind == o or kind.startswith(f"{o}.") for o in only)


def _code_actions(
    documents: Documents, document: TextDocument, params: types.CodeActionParams
) -> list[types.CodeAction]:
    from lsprotocol import types

    text = document.source
    found = documents.findings(document.uri, document.path, text)
    lines = split_lines(text)
    only = params.context.only
    first, last = params.range.start.line, params.range.end.line
    actions: list[types.CodeAction] = []
    quick_fixes = _wanted(types.CodeActionKind.QuickFix, only)
    for diagnostic in found:
        if not (quick_fixes and first <= diagnostic.line - 1 <= last):
            continue
        lsp_diagnostic = [_to_lsp(diagnostic, lines, document)]
        fix = diagnostic.fix
        if fix is not None:
            unsafe = "" if fix.applicability == "safe" else " (unsafe)"
            actions.append(
                types.CodeAction(
                    title=f"{fix.description} ({diagnostic.code}){unsafe}",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=lsp_diagnostic,
                    is_preferred=fix.applicability == "safe",
                    edit=types.WorkspaceEdit(
                        changes={document.uri: [_file_edit(document, text, fix.fixed_source)]}
                    ),
                )
            )
        line = diagnostic.line - 1
        insertion = (
            noqa_insertion(lines[line], diagnostic.code)
            if not diagnostic.code.startswith("GL9") and line < len(lines)
            else None
        )
        if insertion is not None:
            actions.append(
                types.CodeAction(
                    title=f"Disable {diagnostic.code} for this line",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=lsp_diagnostic,
                    edit=types.WorkspaceEdit(
                        changes={document.uri: [_line_edit(document, lines, line, *insertion)]}
                    ),
                )
            )
    settings = _settings_for(document.path) if any(d.fix for d in found) else None
    if settings is not None and _wanted(FIX_ALL_KIND, only):
        try:
            fixed, count = run_bounded(lambda: fix_text(text, settings), DEFAULT_TIMEOUT)
        except (Expired, cst.ParserSyntaxError, NotAnalysed, RecursionError):
            count = 0
        if count:
            actions.append(
                types.CodeAction(
                    title="Fix all gradlint findings",
                    kind=FIX_ALL_KIND,
                    edit=types.WorkspaceEdit(
                        changes={document.uri: [_file_edit(document, text, fixed)]}
                    ),
                )
            )
    return actions


@click.command()
def server() -> None:
    """Run the language server on standard input and output (for editors)."""
    try:
        language_server = create_server()
    except ImportError as error:
        click.echo(
            f"gradlint server needs pygls, which is not installed ({error}); run: {INSTALL_HINT}",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    language_server.start_io()
