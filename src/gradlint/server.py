"""`gradlint server`: a language server over stdio for editors.

It publishes findings as diagnostics when a document is opened, changed or saved, and offers
each finding's fix, a `# noqa` for the line, and a fix-all as code actions. pygls is imported
only when the server starts, so the rest of gradlint never needs it.

The event loop never lints: lints and fix-alls run on worker threads under the CLI's time limit,
so the server answers every request (shutdown too) while a slow file is analysed. A lint of a
text the editor has since changed is stopped and its findings are never published; code actions
are answered from the last lint of exactly the text in the editor.

Positions: gradlint counts lines from 1 and columns from 1 in code points; LSP counts both from
0 and columns in the code units the client and server agreed on (UTF-16 unless both said
otherwise). Lines are split as Python and LSP both do, on `\\r\\n`, `\\r` and `\\n` only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import click
import libcst as cst

from gradlint import __version__, noqa
from gradlint.batch import DEFAULT_TIMEOUT
from gradlint.cli import timeout_option
from gradlint.config import ConfigError, Settings, file_settings
from gradlint.diagnostics import Diagnostic
from gradlint.engine import fix_text, lint_text
from gradlint.limits import Cancel, Cancelled, Expired, run_bounded
from gradlint.parsing import NotAnalysed
from gradlint.reparse import WHOLE_TEXT, Reparser
from gradlint.rules.catalogue import CATALOGUE

if TYPE_CHECKING:
    from lsprotocol import types
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import TextDocument

EXIT_ERROR = 2
INSTALL_HINT = 'pip install "torch-gradlint[lsp]"'  # the distribution's name, not the import's
SOURCE = "gradlint"
FIX_ALL_KIND = "source.fixAll.gradlint"
# A change after a quiet spell is linted at once; a change hard on the heels of another waits
# this long (a burst of typing is linted once, at its end). Open and save are linted at once.
DEBOUNCE_SECONDS = 0.1
# the fixes of a text are made once it has rested this long, or when a code action asks
FIXES_AFTER = 1.0

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_NAME = re.compile(r"[^\W\d]\w*(?:\s*\.\s*[^\W\d]\w*)*")
_CLOSING = {"(": ")", "[": "]"}
T = TypeVar("T")
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
    path: str,
    text: str,
    settings: Settings,
    timeout: float | None = DEFAULT_TIMEOUT,
    cancel: Cancel | None = None,
    with_fixes: bool = False,
    reparser: Reparser | None = None,
) -> list[Diagnostic]:
    """Findings (with their fixes if asked: checking them costs several analyses); text that
    does not parse (yet) is one GL900, never an error. Linted as the CLI lints a file: on a
    thread with a large stack, under its time limit. Raises Cancelled when `cancel` is called
    before the lint ends. `reparser`: the document's, to reuse the tree of its last text."""
    parser = reparser if reparser is not None else WHOLE_TEXT
    try:
        diagnostics = run_bounded(
            lambda: lint_text(path, text, settings, with_fixes=with_fixes, parser=parser),
            timeout,
            cancel,
        )
    except Cancelled:
        raise
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


@dataclass(frozen=True)
class Linted:
    """One text of a document and what gradlint says about it."""

    text: str
    settings: Settings | None  # None: the configuration excludes the file
    findings: list[Diagnostic]
    with_fixes: bool = False  # the findings carry their fixes (else they come later)

    @property
    def fixable(self) -> bool:
        """Whether some finding has a fix that a fix-all under these settings would apply."""
        settings = self.settings
        return settings is not None and any(
            d.fix is not None and (d.fix.applicability == "safe" or settings.unsafe_fixes)
            for d in self.findings
        )


def lint_open_file(
    path: str,
    text: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    cancel: Cancel | None = None,
    with_fixes: bool = False,
    reparser: Reparser | None = None,
) -> Linted:
    """`text` linted under the settings of the nearest configuration for `path`."""
    settings = _settings_for(path)
    found = (
        []
        if settings is None
        else lint_document(path, text, settings, timeout, cancel, with_fixes, reparser)
    )
    return Linted(text, settings, found, with_fixes or settings is None)


def fix_all(
    text: str,
    settings: Settings,
    timeout: float | None = DEFAULT_TIMEOUT,
    cancel: Cancel | None = None,
) -> tuple[str, int]:
    """`text` with every applicable fix, as `gradlint check --fix` makes them, and their count;
    no fix when the text cannot be analysed in time."""
    try:
        return run_bounded(lambda: fix_text(text, settings), timeout, cancel)
    except (Expired, cst.ParserSyntaxError, NotAnalysed, RecursionError):
        return text, 0


@dataclass
class Documents:
    """The last lint of each open document, and a way to stop the lints running for it.

    A text is linted twice: first for its findings, which are published at once, then for
    their fixes (checking a fix costs an analysis of the fixed text), which only code actions
    need: once the text has rested for `FIXES_AFTER` seconds (typing on goes unslowed), or at
    once when a code action asks. Used on the event loop only: the lints themselves run on
    worker threads.
    """

    timeout: float | None = DEFAULT_TIMEOUT
    linted: dict[str, Linted] = field(default_factory=dict)
    running: dict[str, Cancel] = field(default_factory=dict)
    fixing: dict[str, asyncio.Task[Linted | None]] = field(default_factory=dict)
    hurry: dict[str, asyncio.Event] = field(default_factory=dict)  # a code action waits
    # the tree of each document's last text, reused for its next (see gradlint.reparse)
    reparsers: dict[str, Reparser] = field(default_factory=dict)

    async def lint(self, uri: str, path: str, text: str) -> Linted:
        """The findings of `text`, found off the event loop unless it is the last text linted;
        the fixes are then made in the background. A lint of an older text is stopped; raises
        Cancelled when a newer one stops this one."""
        last = self.linted.get(uri)
        if last is not None and last.text == text:
            return last
        self.stop(uri)
        linted = await self._off_the_loop(uri, path, text, with_fixes=False)
        self.linted[uri] = linted
        if not linted.with_fixes and any(CATALOGUE[d.code].fixable for d in linted.findings):
            hurry = self.hurry[uri] = asyncio.Event()
            self.fixing[uri] = asyncio.ensure_future(self._fixes(uri, path, text, hurry))
        return linted

    async def _fixes(self, uri: str, path: str, text: str, hurry: asyncio.Event) -> Linted | None:
        with suppress(asyncio.TimeoutError):  # the text rested: make its fixes
            await asyncio.wait_for(hurry.wait(), FIXES_AFTER)
        try:
            linted = await self._off_the_loop(uri, path, text, with_fixes=True)
        except Cancelled:
            return None
        last = self.linted.get(uri)
        if last is None or last.text != text:
            return None
        self.linted[uri] = linted
        return linted

    async def _off_the_loop(self, uri: str, path: str, text: str, with_fixes: bool) -> Linted:
        cancel = self.running[uri] = Cancel()
        reparser = self.reparsers.setdefault(uri, Reparser())
        try:
            return await off_the_loop(
                lambda: lint_open_file(path, text, self.timeout, cancel, with_fixes, reparser),
                cancel,
            )
        finally:
            if self.running.get(uri) is cancel:
                del self.running[uri]

    def last(self, uri: str, text: str) -> Linted | None:
        """The last lint of the document if it was of exactly `text`."""
        last = self.linted.get(uri)
        return last if last is not None and last.text == text else None

    async def last_with_fixes(self, uri: str, text: str) -> Linted | None:
        """The last lint of exactly `text`, with its fixes once they are made (waiting for
        them off the event loop); without them if making them was stopped."""
        last = self.last(uri, text)
        task = self.fixing.get(uri)
        if last is None or last.with_fixes or task is None:
            return last
        self.hurry[uri].set()
        # neither stops the other: a code action given up on leaves the fixes to be made, and
        # fixes stopped by a newer text end the wait
        await asyncio.wait({task})
        return self.last(uri, text)

    def stop(self, uri: str) -> None:
        cancel = self.running.pop(uri, None)
        if cancel is not None:
            cancel()
        task = self.fixing.pop(uri, None)
        if task is not None:
            task.cancel()  # while it waits for the text to rest (once running, `cancel` above)
        self.hurry.pop(uri, None)

    def forget(self, uri: str) -> None:
        self.stop(uri)
        self.linted.pop(uri, None)
        self.reparsers.pop(uri, None)

    def stop_all(self) -> None:
        for uri in list(self.running):
            self.stop(uri)


async def off_the_loop(work: Callable[[], T], cancel: Cancel) -> T:
    """`work()` on a worker thread, so the server goes on answering; when the awaiting task is
    cancelled (a cancelled request, shutdown) the work is cancelled too."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, work)
    except asyncio.CancelledError:
        cancel()
        raise


# --- LSP ---------------------------------------------------------------------------------------


def create_server(timeout: float | None = DEFAULT_TIMEOUT) -> LanguageServer:
    """A language server with gradlint's features; raises ImportError without pygls.

    `timeout`: seconds for one lint or fix-all, as `gradlint check --timeout`."""
    from lsprotocol import types
    from pygls.lsp.server import LanguageServer

    server = LanguageServer(SOURCE, __version__)
    documents = Documents(timeout)
    changed: dict[str, float] = {}  # when each document last changed (event loop time)

    async def publish(ls: LanguageServer, uri: str) -> None:
        document = ls.workspace.get_text_document(uri)
        version, text = document.version, document.source
        try:
            linted = await documents.lint(document.uri, document.path, text)
        except Cancelled:  # a newer text (or closing the document) made this lint useless
            return
        if ls.workspace.get_text_document(uri) is not document or document.version != version:
            return  # changed or closed meanwhile: never publish findings of an outdated text
        lines = split_lines(text)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=document.uri,
                version=version,
                diagnostics=[_to_lsp(d, lines, document) for d in linted.findings],
            )
        )

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        await publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        documents.stop(uri)  # the running lint is of an older text: free its worker now
        now = asyncio.get_running_loop().time()
        previous, changed[uri] = changed.get(uri), now
        if previous is not None and now - previous < DEBOUNCE_SECONDS:
            await asyncio.sleep(DEBOUNCE_SECONDS)  # typing: lint once the burst ends
        if ls.workspace.get_text_document(uri).version == params.text_document.version:
            await publish(ls, uri)  # else a later change publishes

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: LanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        await publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        documents.forget(params.text_document.uri)
        changed.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: LanguageServer, params: None) -> None:
        documents.stop_all()

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND], resolve_provider=True
        ),
    )
    async def code_action(
        ls: LanguageServer, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        # from the last lint of exactly this text, never a lint of its own: before the first
        # lint of a new text ends, there is nothing to offer yet
        document = ls.workspace.get_text_document(params.text_document.uri)
        linted = await documents.last_with_fixes(document.uri, document.source)
        if linted is None:
            return []
        actions = _quick_fixes(linted.findings, document, params)
        if linted.fixable and _wanted(FIX_ALL_KIND, params.context.only):
            offer = _unresolved_fix_all(document)
            if _resolves_edits(ls.client_capabilities):
                actions.append(offer)  # its edit is computed when the user picks it
            elif (fix_all_action := await resolve_fix_all(ls, offer)).edit is not None:
                actions.append(fix_all_action)
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def code_action_resolve(ls: LanguageServer, action: types.CodeAction) -> types.CodeAction:
        return await resolve_fix_all(ls, action)

    async def resolve_fix_all(ls: LanguageServer, action: types.CodeAction) -> types.CodeAction:
        """The fix-all with its edit, computed off the loop under the lint's time limit; without
        an edit when the document changed since it was offered or nothing could be fixed."""
        if not isinstance(action.data, dict) or not isinstance(action.data.get("uri"), str):
            return action  # not a fix-all this server offered
        uri, version = action.data["uri"], action.data.get("version")
        document = ls.workspace.get_text_document(uri)
        text = document.source
        linted = documents.last(uri, text)
        if document.version != version or linted is None or linted.settings is None:
            return action
        settings, cancel = linted.settings, Cancel()
        fixed, count = await off_the_loop(
            lambda: fix_all(text, settings, documents.timeout, cancel), cancel
        )
        if count and document.version == version:
            action.edit = types.WorkspaceEdit(changes={uri: [_file_edit(document, text, fixed)]})
        return action

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


def _resolves_edits(capabilities: types.ClientCapabilities) -> bool:
    """Whether the client asks for a code action's edit only when the user picks the action."""
    code_action = capabilities.text_document and capabilities.text_document.code_action
    resolve = code_action and code_action.resolve_support
    return bool(resolve and "edit" in resolve.properties)


def _unresolved_fix_all(document: TextDocument) -> types.CodeAction:
    """The fix-all without its edit, which takes a re-analysis per fix round to compute."""
    from lsprotocol import types

    return types.CodeAction(
        title="Fix all gradlint findings",
        kind=FIX_ALL_KIND,
        data={"uri": document.uri, "version": document.version},
    )


def _quick_fixes(
    found: Sequence[Diagnostic], document: TextDocument, params: types.CodeActionParams
) -> list[types.CodeAction]:
    """Each finding's fix and a `# noqa` for its line, for the findings in the asked range."""
    from lsprotocol import types

    if not _wanted(types.CodeActionKind.QuickFix, params.context.only):
        return []
    text = document.source
    lines = split_lines(text)
    first, last = params.range.start.line, params.range.end.line
    actions: list[types.CodeAction] = []
    for diagnostic in found:
        if not first <= diagnostic.line - 1 <= last:
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
    return actions


@click.command()
@timeout_option(
    "Seconds to spend on one lint or fix-all of a document before reporting it (GL902); "
    "0 for no limit."
)
def server(timeout: float | None) -> None:
    """Run the language server on standard input and output (for editors)."""
    try:
        language_server = create_server(timeout)
    except ImportError as error:
        click.echo(
            f"gradlint server needs pygls, which is not installed ({error}); run: {INSTALL_HINT}",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    language_server.start_io()
