"""An editor's successive texts re-parse only the top-level statements an edit touched; the tree
must be the one a parse of the whole text gives, and the text it prints must be the text."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradlint.reparse import Reparser

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = sorted(p for p in FIXTURES.rglob("*.py") if ".gradlint_cache" not in p.parts)[:60]
# what typing does to a line: change a number, add or drop characters, a line, an indentation
SNIPPETS = [
    "1",
    "0.5",
    "x",
    " ",
    "\n",
    "    ",
    "(",
    ")",
    ":",
    "# note\n",
    "    # note\n",
    "\n\n",
    "pass\n",
    "'",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(SOURCES),
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 12), st.sampled_from(["", *SNIPPETS])),
        min_size=1,
        max_size=4,
    ),
)
def test_a_reused_tree_is_the_tree_of_the_whole_text(source: Path, edits: list) -> None:
    text = source.read_text(encoding="utf-8")
    reparser = Reparser()
    reparser.parse(text)
    for where, removed, inserted in edits:
        at = int(where * len(text))
        text = text[:at] + inserted + text[at + removed :]
        try:
            expected = cst.parse_module(text)
        except cst.ParserSyntaxError:
            with pytest.raises(cst.ParserSyntaxError):
                reparser.parse(text)
            continue
        got = reparser.parse(text)
        assert got.code == text
        assert got.deep_equals(expected)


def test_an_edit_inside_a_function_reuses_the_other_statements() -> None:
    text = (FIXTURES / "GL101" / "trainer_log_helper_keeps_loss.py").read_text(encoding="utf-8")
    reparser = Reparser()
    first = reparser.parse(text)
    edited = text.replace("lr=0.05", "lr=0.01")
    second = reparser.parse(edited)
    assert reparser.reused == 1 and second.code == edited
    changed = [a is not b for a, b in zip(first.body, second.body)]
    # the class that holds the edit and the statements on either side (parsed with it, so a
    # comment typed at the end of a block goes where a parse of the whole text puts it)
    assert changed.count(True) == 3


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: "# a new first line\n" + text,  # the header
        lambda text: text + "# a comment at the end\n",  # the footer
        lambda text: text.replace("\n", "\r\n"),  # every line
    ],
)
def test_edits_a_statement_parse_cannot_take_parse_the_whole_text(edit) -> None:
    text = (FIXTURES / "GL101" / "trainer_log_helper_keeps_loss.py").read_text(encoding="utf-8")
    reparser = Reparser()
    reparser.parse(text)
    edited = edit(text)
    module = reparser.parse(edited)
    assert reparser.reused == 0
    assert module.code == edited and module.deep_equals(cst.parse_module(edited))


def test_the_language_server_lints_an_edit_with_the_reused_tree(tmp_path: Path) -> None:
    """The server's lint of an edited text gives the findings a lint of the whole text gives,
    re-parsing the statements the edit touched."""
    from gradlint.server import lint_open_file

    text = (FIXTURES / "GL101" / "trainer_log_helper_keeps_loss.py").read_text(encoding="utf-8")
    path = tmp_path / "train.py"
    reparser = Reparser()
    lint_open_file(str(path), text, reparser=reparser)
    edited = text.replace("epochs=2", "epochs=3").replace("momentum=0.9", "momentum=0.8")
    reused = lint_open_file(str(path), edited, reparser=reparser)
    assert reparser.reused == 1
    assert reused.findings == lint_open_file(str(path), edited).findings
    assert [d.code for d in lint_open_file(str(path), text).findings] == ["GL101"]


def test_a_comment_typed_at_the_end_of_a_block_belongs_where_the_whole_text_puts_it() -> None:
    text = "import torch\n\n\ndef f(x):\n    return x\n\n\ny = f(1)\nz = 2\n"
    reparser = Reparser()
    reparser.parse(text)
    for comment in ("    # indented\n", "# at the margin\n"):
        edited = text.replace("    return x\n", "    return x\n" + comment)
        module = reparser.parse(edited)
        assert module.code == edited and module.deep_equals(cst.parse_module(edited))
        reparser.parse(text)
    assert reparser.reused == 4


@pytest.mark.parametrize("source", SOURCES[:30], ids=lambda p: p.name)
def test_positions_from_the_statement_lines_are_the_whole_module_positions(source: Path) -> None:
    """Printing only the statement that holds a node, from the line the reparser knows it
    starts on, gives the position printing the whole module gives (after an edit too)."""
    from gradlint.analysis.positions import Positions
    from gradlint.analysis.syntax import listing
    from gradlint.rules.base import Context

    text = source.read_text(encoding="utf-8")
    reparser = Reparser()
    reparser.parse(text)
    edited = text.replace("\n\n\n", "\n\n\n# a note between statements\n\n", 1)
    for current in (text, edited):
        module = reparser.parse(current)
        lines = reparser.statement_lines(module)
        assert lines is not None
        context = Context(module, current, lines)
        whole = Positions(module)
        for node in listing(module).nodes[1:]:
            assert context.positions.of(node) == whole.of(node), cst.Module([]).code_for_node(node)
        assert context.positions._found is None  # every answer came from one statement
