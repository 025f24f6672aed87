"""The language server as an editor sees it: a real `gradlint server` process driven over stdio."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Callable

import pytest
from conftest import CliRunner

from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import lint_text
from gradlint.limits import Cancel, Cancelled, run_bounded
from gradlint.server import (
    changed_lines,
    finding_span,
    lint_document,
    lint_open_file,
    noqa_insertion,
    split_lines,
)

pytest.importorskip("pygls")
from lsprotocol import types  # noqa: E402
from pygls.exceptions import JsonRpcRequestCancelled  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

TIMEOUT = 60  # seconds for a whole session; a hang fails the test instead of blocking the run
PREFIX = '    _ = "학습 🔥"; '  # Korean and an emoji (two UTF-16 units) before the finding
BUGGY = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        loss = ((model(x) - y) ** 2).mean()  # 손실 계산
    """
) + (PREFIX + "loss.backward()\n    opt.step()\n")
FINDING_LINE = 6  # 0-based, the `loss.backward()` line
MERGE_NOQA = textwrap.dedent(
    """\
    for x, y in batches:
        loss = model(x).sum()
        loss.backward()  # noqa: GL002 累积
        opt.step()
    """
)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _offset(lines: list[str], position: types.Position) -> int:
    """Offset into the joined lines of an LSP position counted in UTF-16 units."""
    offset = sum(len(line) for line in lines[: position.line])
    line = lines[position.line] if position.line < len(lines) else ""
    units = 0
    for index, char in enumerate(line):
        if units >= position.character:
            return offset + index
        units += _utf16(char)
    return offset + len(line)


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.splitlines(keepends=True)
    spans = [
        (_offset(lines, e.range.start), _offset(lines, e.range.end), e.new_text) for e in edits
    ]
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _cli_fix(text: str) -> str:
    result = CliRunner().invoke(
        main, ["check", "--fix", "-", "--stdin-filename", "train.py"], input=text
    )
    assert result.exit_code == 0, result.output
    return result.stdout


class Session:
    """A client talking to a `gradlint server` subprocess, collecting published diagnostics."""

    def __init__(self) -> None:
        self.client = LanguageClient("gradlint-tests", "1")
        self.published: asyncio.Queue[types.PublishDiagnosticsParams] = asyncio.Queue()
        self.history: list[types.PublishDiagnosticsParams] = []

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.put_nowait(params)
            self.history.append(params)

    async def start(
        self, capabilities: types.ClientCapabilities, *server: str
    ) -> types.InitializeResult:
        await self.client.start_io(sys.executable, *(server or ("-m", "gradlint", "server")))
        result = await self.client.initialize_async(
            types.InitializeParams(capabilities=capabilities, process_id=None)
        )
        self.client.initialized(types.InitializedParams())
        return result

    async def diagnostics(self, uri: str, version: int | None) -> list[types.Diagnostic]:
        while True:
            params = await self.published.get()
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)

    def open(self, uri: str, text: str) -> None:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )

    def change(self, uri: str, version: int, text: str) -> None:
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    async def actions(
        self, uri: str, diagnostic: types.Diagnostic, only: list[str] | None = None
    ) -> list[types.CodeAction]:
        found = await self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=diagnostic.range,
                context=types.CodeActionContext(diagnostics=[diagnostic], only=only),
            )
        )
        assert found is not None
        return [a for a in found if isinstance(a, types.CodeAction)]

    async def stop(self) -> int | None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()
        return self.client._server.returncode if self.client._server else None

    def kill(self) -> None:
        server = self.client._server
        if server is not None and server.returncode is None:
            server.kill()


def _run(scenario: Callable[[Session], Awaitable[None]]) -> None:
    async def bounded() -> None:
        session = Session()
        try:
            await asyncio.wait_for(scenario(session), TIMEOUT)
        finally:
            session.kill()

    asyncio.run(bounded())


def _edits(action: types.CodeAction, uri: str) -> list[types.TextEdit]:
    assert action.edit is not None and action.edit.changes is not None
    return list(action.edit.changes[uri])


def test_diagnostics_code_actions_and_clean_shutdown(tmp_path: Path) -> None:
    uri = (tmp_path / "train.py").as_uri()
    merge_uri = (tmp_path / "merge.py").as_uri()

    async def scenario(session: Session) -> None:
        started = await session.start(types.ClientCapabilities())
        assert started.capabilities.position_encoding == types.PositionEncodingKind.Utf16

        session.open(uri, BUGGY)
        (diagnostic,) = await session.diagnostics(uri, 1)
        assert diagnostic.code == "GL001"
        assert diagnostic.source == "gradlint"
        assert diagnostic.severity == types.DiagnosticSeverity.Warning
        assert "`loss.backward()`" in diagnostic.message
        start = _utf16(PREFIX)
        assert start == len(PREFIX) + 1  # the emoji: the code-point column would be off by one
        assert diagnostic.range == types.Range(
            start=types.Position(line=FINDING_LINE, character=start),
            end=types.Position(line=FINDING_LINE, character=start + len("loss.backward()")),
        )

        actions = await session.actions(uri, diagnostic)
        (fix,) = [a for a in actions if a.is_preferred]
        assert fix.kind == types.CodeActionKind.QuickFix
        assert "zero_grad" in fix.title
        assert fix.diagnostics is not None and fix.diagnostics[0].code == "GL001"
        (edit,) = _edits(fix, uri)
        # only the inserted line, not the whole document
        assert edit.range.start == edit.range.end == types.Position(line=5, character=0)
        assert edit.new_text == "    opt.zero_grad()\n"
        fixed = _apply(BUGGY, [edit])
        assert fixed == _cli_fix(BUGGY) != BUGGY

        (disable,) = [a for a in actions if "Disable GL001" in a.title]
        assert disable.kind == types.CodeActionKind.QuickFix
        silenced = _apply(BUGGY, _edits(disable, uri))
        assert silenced.splitlines()[FINDING_LINE] == PREFIX + "loss.backward()  # noqa: GL001"
        assert lint_text("train.py", silenced, Settings()) == []

        (fix_all,) = await session.actions(
            uri, diagnostic, only=[types.CodeActionKind.SourceFixAll]
        )
        assert fix_all.kind == "source.fixAll.gradlint"
        assert _apply(BUGGY, _edits(fix_all, uri)) == fixed

        session.change(uri, 2, fixed)
        assert await session.diagnostics(uri, 2) == []
        session.client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        assert await session.diagnostics(uri, 2) == []

        # half-typed code: one GL900 error, and the server keeps serving
        session.change(uri, 3, fixed.replace("opt.step()", "opt.step("))
        (broken,) = await session.diagnostics(uri, 3)
        assert broken.code == "GL900"
        assert broken.severity == types.DiagnosticSeverity.Error
        assert not [a for a in await session.actions(uri, broken) if "Disable" in a.title]

        session.open(merge_uri, MERGE_NOQA)
        # GL800 (unused noqa) reports the comment's GL002 beside it
        found = await session.diagnostics(merge_uri, 1)
        (stale,) = [d for d in found if d.code == "GL001"]
        assert stale.code == "GL001" and stale.range.start == types.Position(line=2, character=4)
        actions = await session.actions(merge_uri, stale)
        (disable,) = [a for a in actions if "Disable GL001" in a.title]
        merged = _apply(MERGE_NOQA, _edits(disable, merge_uri))
        assert merged.splitlines()[2] == "    loss.backward()  # noqa: GL002, GL001 累积"
        # GL002 still suppresses nothing there
        assert [d.code for d in lint_text("merge.py", merged, Settings())] == ["GL800"]
        session.client.text_document_did_close(
            types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=merge_uri)
            )
        )
        assert await session.diagnostics(merge_uri, None) == []

        assert await session.stop() == 0

    _run(scenario)


def test_positions_follow_the_negotiated_encoding(tmp_path: Path) -> None:
    uri = (tmp_path / "train.py").as_uri()

    async def scenario(session: Session) -> None:
        capabilities = types.ClientCapabilities(
            general=types.GeneralClientCapabilities(
                position_encodings=[types.PositionEncodingKind.Utf8]
            )
        )
        started = await session.start(capabilities)
        assert started.capabilities.position_encoding == types.PositionEncodingKind.Utf8
        session.open(uri, BUGGY)
        (diagnostic,) = await session.diagnostics(uri, 1)
        assert diagnostic.range.start.character == len(PREFIX.encode("utf-8"))
        assert await session.stop() == 0

    _run(scenario)


# A server whose lint and fix-all take a minute on a text with a marker, so that a slow file is
# slow for certain; each call and each stop is written to the log file named by its argument.
SLOW_SERVER = textwrap.dedent(
    """\
    import sys, time
    from gradlint import server

    real_lint, real_fix = server.lint_text, server.fix_text

    def log(event):
        with open(sys.argv[1], "a") as out:
            out.write(event + "\\n")

    def wait(name):
        log(name + " started")
        try:
            for _ in range(600):  # in steps: an interruption lands between two of them
                time.sleep(0.1)
        except BaseException:
            log(name + " stopped")
            raise

    def lint_text(path, text, settings, with_fixes=False, **options):
        log("fixes" if with_fixes else "lint")
        if "# SLOW LINT" in text:
            wait("lint")
        if with_fixes and "# SLOW FIXES" in text:
            wait("fixes")
        return real_lint(path, text, settings, with_fixes=with_fixes, **options)

    def fix_text(text, settings):
        if "# SLOW FIX" in text:
            wait("fix")
        return real_fix(text, settings)

    server.lint_text, server.fix_text = lint_text, fix_text
    server.create_server(timeout=120).start_io()
    """
)
SLOW_LINT = BUGGY + "# SLOW LINT\n"
SLOW_FIX = BUGGY + "# SLOW FIX\n"
SLOW_FIXES = BUGGY + "# SLOW FIXES\n"
PROMPTLY = 5  # seconds for a reply while the slow lint or fix-all would take 60
RESOLVES_EDITS = types.ClientCapabilities(
    text_document=types.TextDocumentClientCapabilities(
        code_action=types.CodeActionClientCapabilities(
            resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"])
        )
    )
)


def _slow_server(log: Path) -> tuple[str, ...]:
    return ("-c", SLOW_SERVER, str(log))


def _events(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def _logged(log: Path, event: str) -> None:
    while event not in _events(log):
        await asyncio.sleep(0.05)


async def _stops_promptly(session: Session) -> None:
    await asyncio.wait_for(session.client.shutdown_async(None), PROMPTLY)
    session.client.exit(None)
    await asyncio.wait_for(session.client.stop(), PROMPTLY)
    assert session.client._server is not None and session.client._server.returncode == 0


def test_a_stale_lint_is_stopped_and_never_published(tmp_path: Path) -> None:
    uri, log = (tmp_path / "train.py").as_uri(), tmp_path / "events.log"

    async def scenario(session: Session) -> None:
        await session.start(types.ClientCapabilities(), *_slow_server(log))
        session.open(uri, BUGGY)
        assert [d.code for d in await session.diagnostics(uri, 1)] == ["GL001"]
        session.change(uri, 2, SLOW_LINT)
        await _logged(log, "lint started")
        session.change(uri, 3, BUGGY.replace("lr=0.1", "lr=0.2"))
        await asyncio.wait_for(_logged(log, "lint stopped"), PROMPTLY)
        found = await asyncio.wait_for(session.diagnostics(uri, 3), PROMPTLY)
        assert [d.code for d in found] == ["GL001"]
        assert [p.version for p in session.history] == [1, 3]
        await _stops_promptly(session)

    _run(scenario)


def test_code_actions_come_from_the_last_lint_while_another_runs(tmp_path: Path) -> None:
    uri, slow_uri = (tmp_path / "train.py").as_uri(), (tmp_path / "slow.py").as_uri()
    log = tmp_path / "events.log"

    async def scenario(session: Session) -> None:
        await session.start(types.ClientCapabilities(), *_slow_server(log))
        session.open(uri, BUGGY)
        (diagnostic,) = await session.diagnostics(uri, 1)
        session.open(slow_uri, SLOW_LINT)
        await _logged(log, "lint started")
        lints = _events(log).count("lint")

        actions = await asyncio.wait_for(session.actions(uri, diagnostic), PROMPTLY)
        titles = [a.title for a in actions]
        assert len(titles) == 3 and "Fix all gradlint findings" in titles  # fix, noqa, fix-all
        (fix_all,) = [a for a in actions if a.kind == "source.fixAll.gradlint"]
        assert _apply(BUGGY, _edits(fix_all, uri)) == _cli_fix(BUGGY)
        # the slow document's text has no finished lint yet: nothing to offer, and no lint
        assert await asyncio.wait_for(session.actions(slow_uri, diagnostic), PROMPTLY) == []
        assert _events(log).count("lint") == lints
        await _stops_promptly(session)

    _run(scenario)


def test_the_fix_all_is_computed_when_picked_and_off_the_loop(tmp_path: Path) -> None:
    uri, slow_uri = (tmp_path / "train.py").as_uri(), (tmp_path / "slow.py").as_uri()
    log = tmp_path / "events.log"

    async def scenario(session: Session) -> None:
        started = await session.start(RESOLVES_EDITS, *_slow_server(log))
        provider = started.capabilities.code_action_provider
        assert isinstance(provider, types.CodeActionOptions) and provider.resolve_provider

        session.open(uri, BUGGY)
        (diagnostic,) = await session.diagnostics(uri, 1)
        (offer,) = await session.actions(uri, diagnostic, only=[types.CodeActionKind.SourceFixAll])
        assert offer.edit is None
        fix_all = await session.client.code_action_resolve_async(offer)
        assert _apply(BUGGY, _edits(fix_all, uri)) == _cli_fix(BUGGY)

        session.open(slow_uri, SLOW_FIX)
        (diagnostic,) = await session.diagnostics(slow_uri, 1)
        (offer,) = await session.actions(slow_uri, diagnostic, only=["source.fixAll"])
        protocol = session.client.protocol
        resolving = protocol.send_request_async(types.CODE_ACTION_RESOLVE, offer, msg_id="fix")
        await _logged(log, "fix started")
        quick: list[str] = [types.CodeActionKind.QuickFix]
        assert await asyncio.wait_for(session.actions(slow_uri, diagnostic, quick), PROMPTLY)
        # the editor gives up on the fix-all: its computation stops
        protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="fix"))
        with pytest.raises(JsonRpcRequestCancelled):
            await asyncio.wait_for(resolving, PROMPTLY)
        await asyncio.wait_for(_logged(log, "fix stopped"), PROMPTLY)
        await _stops_promptly(session)

    _run(scenario)


def test_findings_are_published_before_their_fixes_are_made(tmp_path: Path) -> None:
    """Checking fixes costs several analyses: the diagnostics do not wait for them, code actions
    do (off the event loop), and the fixes of a text that changed are stopped."""
    uri, log = (tmp_path / "train.py").as_uri(), tmp_path / "events.log"

    async def scenario(session: Session) -> None:
        await session.start(types.ClientCapabilities(), *_slow_server(log))
        session.open(uri, SLOW_FIXES)
        (diagnostic,) = await asyncio.wait_for(session.diagnostics(uri, 1), PROMPTLY)
        await _logged(log, "fixes started")
        asking = asyncio.ensure_future(session.actions(uri, diagnostic))
        await asyncio.sleep(0.5)
        assert not asking.done()  # the fix is not made yet: the answer waits for it
        session.change(uri, 2, BUGGY)
        await asyncio.wait_for(_logged(log, "fixes stopped"), PROMPTLY)
        titles = [a.title for a in await asyncio.wait_for(asking, PROMPTLY)]
        # the old text's fixes were stopped: at most its noqa is offered
        assert titles in ([], ["Disable GL001 for this line"])
        await asyncio.wait_for(session.diagnostics(uri, 2), PROMPTLY)
        actions = await asyncio.wait_for(session.actions(uri, diagnostic), PROMPTLY)
        assert len(actions) == 3  # this text's fix, the noqa and the fix-all
        await _stops_promptly(session)

    _run(scenario)


def test_fixes_wait_for_the_text_to_rest_unless_a_code_action_asks(tmp_path: Path) -> None:
    uri, log = (tmp_path / "train.py").as_uri(), tmp_path / "events.log"
    resting = SLOW_SERVER.replace(
        "server.create_server(", "server.FIXES_AFTER = 600\nserver.create_server("
    )

    async def scenario(session: Session) -> None:
        await session.start(types.ClientCapabilities(), "-c", resting, str(log))
        session.open(uri, BUGGY)
        (diagnostic,) = await asyncio.wait_for(session.diagnostics(uri, 1), PROMPTLY)
        await asyncio.sleep(0.5)
        assert "fixes" not in _events(log)  # typing could go on: no fix is made yet
        actions = await asyncio.wait_for(session.actions(uri, diagnostic), PROMPTLY)
        assert len(actions) == 3 and _events(log).count("fixes") == 1
        await _stops_promptly(session)

    _run(scenario)


def test_shutdown_during_a_lint(tmp_path: Path) -> None:
    uri, log = (tmp_path / "slow.py").as_uri(), tmp_path / "events.log"

    async def scenario(session: Session) -> None:
        await session.start(types.ClientCapabilities(), *_slow_server(log))
        session.open(uri, SLOW_LINT)
        await _logged(log, "lint started")
        # the lint would take a minute: the server answers, stops it and exits at once
        await _stops_promptly(session)
        assert session.history == []

    _run(scenario)


def test_a_cancelled_analysis_is_interrupted_and_given_up_at_once() -> None:
    cancel = Cancel()
    started, interrupted = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        try:
            while True:
                time.sleep(0.01)
        except BaseException:
            interrupted.set()
            raise

    def cancel_once_started() -> None:
        started.wait(PROMPTLY)
        cancel()

    threading.Thread(target=cancel_once_started, daemon=True).start()
    with pytest.raises(Cancelled):
        run_bounded(slow, 120, cancel)
    assert interrupted.wait(PROMPTLY)


def test_a_lint_cancelled_before_it_starts_is_cancelled_not_an_internal_error() -> None:
    cancel = Cancel()
    cancel()
    with pytest.raises(Cancelled):
        lint_document("train.py", BUGGY, Settings(), cancel=cancel)


def test_settings_come_from_the_nearest_configuration(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nignore = ["GL001"]\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text("[tool.gradlint]\n")
    ignored = lint_open_file(str(tmp_path / "train.py"), BUGGY)
    reported = lint_open_file(str(tmp_path / "sub" / "train.py"), BUGGY)
    excluded = lint_open_file(str(tmp_path / "sub" / ".venv" / "train.py"), BUGGY)
    assert (ignored.findings, [d.code for d in reported.findings]) == ([], ["GL001"])
    assert (excluded.settings, excluded.findings) == (None, [])


def test_server_without_pygls_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pygls", "pygls.lsp", "pygls.lsp.server"):
        monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(main, ["server"])
    assert result.exit_code == 2
    assert 'pip install "torch-gradlint[lsp]"' in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("a\nb\nc\n", "a\nz\nb\nc\n", (1, 1, "z\n")),  # an inserted line
        ("a\nb\nc\n", "a\nc\n", (1, 2, "")),  # a removed line
        ("a\nb", "a\nb\nc", (1, 2, "b\nc")),  # the last line had no line break
        ("a\r\nb\r\n", "a\r\nB\r\n", (1, 2, "B\r\n")),
        ("same\n", "same\n", (1, 1, "")),
    ],
)
def test_changed_lines_is_the_smallest_run(
    old: str, new: str, expected: tuple[int, int, str]
) -> None:
    assert changed_lines(old, new) == expected
    first, stop, replacement = expected
    lines = split_lines(old)
    assert "".join(lines[:first]) + replacement + "".join(lines[stop:]) == new


def test_lines_split_only_where_python_breaks_them() -> None:
    assert split_lines("a\fb\x1cc\u2028d\r\ne\rf") == ["a\fb\x1cc\u2028d\r\n", "e\r", "f"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    loss.backward()   \n", (19, 22, "  # noqa: GL001")),
        ("    loss.backward()  # noqa: E501", (33, 33, ", GL001")),
        ("    loss.backward()  # noqa:GL002,GL003 # why", (39, 39, ", GL001")),
        ("    loss.backward()  # noqa", None),  # a bare noqa covers every code already
        ("    loss.backward(x, \\\n", None),  # a comment would end the continued line
    ],
)
def test_noqa_insertion(line: str, expected: tuple[int, int, str] | None) -> None:
    assert noqa_insertion(line, "GL001") == expected


@pytest.mark.parametrize(
    ("line", "col", "expected"),
    [
        ("    loss.backward()  # done\n", 4, "loss.backward()"),
        ("    scaler.scale(loss).backward()\n", 4, "scaler.scale(loss).backward()"),
        ("    opt.zero_grad(set_to_none=(a and b))\n", 4, "opt.zero_grad(set_to_none=(a and b))"),
        ("    loss.backward(\n", 4, "loss.backward("),  # arguments on the next lines
        ("    )\n", 4, ")"),
    ],
)
def test_finding_span(line: str, col: int, expected: str) -> None:
    start, end = finding_span(line, col)
    assert line[start:end] == expected


def test_finding_span_past_the_end_is_empty() -> None:
    assert finding_span("x = (\n", 9) == (5, 5)


LOOPS = """
def train_more(model, optimizer, loader):
    for x, y in loader:
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        optimizer.step()
"""


def test_the_time_limit_is_an_option_as_for_check(tmp_path: Path) -> None:
    """`gradlint server --timeout S` bounds each lint as `check --timeout S` bounds a file: a
    lint past it is one GL902 naming the limit; the default lints the same text in full."""
    uri = (tmp_path / "train.py").as_uri()

    async def scenario(session: Session) -> None:
        await session.start(
            types.ClientCapabilities(), "-m", "gradlint", "server", "--timeout", "1e-9"
        )
        # long enough that its analysis outlasts a thread switch (a lint that ends before the
        # waiting thread runs again is not past the limit)
        session.open(uri, BUGGY + LOOPS * 200)
        (diagnostic,) = await session.diagnostics(uri, 1)
        assert diagnostic.code == "GL902"
        assert "1e-09 s time limit" in diagnostic.message
        assert await session.stop() == 0

    _run(scenario)
    result = CliRunner().invoke(main, ["server", "--timeout", "nan"])
    assert result.exit_code == 2 and "not nan" in result.stderr
