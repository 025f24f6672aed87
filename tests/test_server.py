"""The language server as an editor sees it: a real `gradlint server` process driven over stdio."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Awaitable
from pathlib import Path
from typing import Callable

import pytest
from conftest import CliRunner

from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import lint_text
from gradlint.server import Documents, changed_lines, finding_span, noqa_insertion, split_lines

pytest.importorskip("pygls")
from lsprotocol import types  # noqa: E402
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

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.put_nowait(params)

    async def start(self, capabilities: types.ClientCapabilities) -> types.InitializeResult:
        await self.client.start_io(sys.executable, "-m", "gradlint", "server")
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


def test_settings_come_from_the_nearest_configuration(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nignore = ["GL001"]\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text("[tool.gradlint]\n")
    documents = Documents()
    ignored = documents.findings("file:///a", str(tmp_path / "train.py"), BUGGY)
    reported = documents.findings("file:///b", str(tmp_path / "sub" / "train.py"), BUGGY)
    excluded = documents.findings("file:///c", str(tmp_path / "sub" / ".venv" / "train.py"), BUGGY)
    assert (ignored, [d.code for d in reported], excluded) == ([], ["GL001"], [])


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
