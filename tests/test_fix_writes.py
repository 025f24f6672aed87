"""What `--fix` writes is what the user had, plus the fix, and nothing else; `--diff` shows
what it could not do; selection ties go to `ignore`; the output format never changes which
findings are reported."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, STALE, CliRunner

from gradlint import fixes
from gradlint.cli import main
from gradlint.config import Selection, resolve

INSERTED = "    opt.zero_grad()\n"
STALE_FIXED = STALE.replace("batches:\n", "batches:\n" + INSERTED)
DISCARDED = textwrap.dedent(
    """\
    for x, y in batches:
        net(x).sum().backward()
        optim_g.zero_grad()
        optim_g.step()
    """
)
# GL105 has no fix
UNFIXABLE = (FIXTURES / "GL105" / "two_batches_one_step_between.py").read_bytes()


def check(folder: Path, *args: str, input: bytes | None = None) -> tuple[int, bytes, str]:
    """`gradlint check` run in `folder`: exit code, standard output (bytes), standard error."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, ["check", "--no-cache", *args], input=input)
    finally:
        os.chdir(cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout_bytes, result.stderr


def _added(diff: bytes) -> list[str]:
    """The lines a diff adds."""
    lines = diff.decode().splitlines(keepends=True)
    return [line for line in lines if line.startswith("+") and not line.startswith("+++")]


# --- 1. a fix filter always hands the text back -------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        STALE_FIXED.encode(),  # nothing to fix
        UNFIXABLE,  # a finding without a fix
        b"import torch\nfor x in (:\n    loss.backward()\n",  # syntax error
        b"import torch\nname = '\xff'\nloss.backward()\n",  # not UTF-8
        b"",
        STALE_FIXED.replace("\n", "\r\n").encode()[:-2],  # CR LF, no final newline
    ],
    ids=["clean", "no-fix", "syntax-error", "undecodable", "empty", "crlf-no-final-newline"],
)
def test_fix_filter_hands_back_what_it_cannot_fix(tmp_path: Path, data: bytes) -> None:
    _, out, _ = check(tmp_path, "--fix", "-", "--stdin-filename", "train.py", input=data)
    assert out == data


def test_fix_filter_prints_the_fixed_text(tmp_path: Path) -> None:
    _, out, _ = check(tmp_path, "--fix", "-", input=STALE.encode())
    assert out == STALE_FIXED.encode()


# --- 2. a fix CPython would refuse is not written ---------------------------------------------

GLOBAL_FIRST = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


    def train(batches):
        for x in batches:
            global optimizer
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
    """
)


NONLOCAL_FIRST = textwrap.dedent(
    """\
    import torch


    def run(model, batches):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def train():
            for x in batches:
                nonlocal optimizer
                loss = model(x).sum()
                loss.backward()
                optimizer.step()

        train()
    """
)


@pytest.mark.parametrize("source", [GLOBAL_FIRST, NONLOCAL_FIRST], ids=["global", "nonlocal"])
def test_fix_that_does_not_compile_gives_way_to_one_that_does(tmp_path: Path, source: str) -> None:
    compile(source, "train.py", "exec", dont_inherit=True)  # the original is valid
    path = tmp_path / "train.py"
    path.write_text(source)
    code, out, _ = check(tmp_path, "--fix", "train.py")
    fixed = path.read_text()
    # the start of the pass is above the `global`/`nonlocal` line: the reset goes right before
    # the backward instead
    compile(fixed, "train.py", "exec", dont_inherit=True)
    lines = fixed.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "loss.backward()" in line)
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    assert lines[at - 1] == f"{indent}optimizer.zero_grad()\n"
    assert "".join(lines[: at - 1] + lines[at:]) == source  # nothing else changed
    assert code == 0 and b"GL001" not in out
    _, out, _ = check(tmp_path, "--fix", "-", "--stdin-filename", "train.py", input=source.encode())
    assert out == fixed.encode()


def test_parses_refuses_only_what_newly_fails_to_compile() -> None:
    fixed = GLOBAL_FIRST.replace("        global", "        optimizer.zero_grad()\n        global")
    assert not fixes.parses(fixed, GLOBAL_FIRST)
    # newer grammar than this Python compiles (PEP 695): libcst alone decides
    newer = "type Batch = list[int]\n" + GLOBAL_FIRST
    assert fixes.parses("type Batch = list[int]\nx = 1\n", newer)
    assert fixes.parses(STALE_FIXED, STALE)


def test_fix_applied_in_a_file_of_newer_grammar(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text("type Batch = list[int]\n" + STALE)
    check(tmp_path, "--fix", "train.py")
    assert path.read_text() == "type Batch = list[int]\n" + STALE_FIXED


# --- 3. symlinks ----------------------------------------------------------------------------


def test_fix_through_a_symlink_fixes_the_target_once(tmp_path: Path) -> None:
    target = tmp_path / "target.py"
    target.write_text(STALE)
    alias = tmp_path / "alias.py"  # walked before its target
    alias.symlink_to("target.py")
    code, _, err = check(tmp_path, "--fix", ".")
    assert code == 0, err
    assert alias.is_symlink() and os.readlink(alias) == "target.py"
    assert target.read_text() == STALE_FIXED


def test_fix_of_a_symlink_named_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.py"
    target.write_text(STALE)
    (tmp_path / "alias.py").symlink_to(target)
    check(tmp_path, "--fix", "alias.py")
    assert (tmp_path / "alias.py").is_symlink()
    assert target.read_text() == STALE_FIXED


# --- 4. owner, group, links, read-only files, write failures ---------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_fix_keeps_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(STALE)
    os.chown(path, 12345, 23456)
    check(tmp_path, "--fix", "train.py")
    after = path.stat()
    assert (after.st_uid, after.st_gid) == (12345, 23456)
    assert path.read_text() == STALE_FIXED


def test_fix_keeps_hard_links(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(STALE)
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / "same.py"
    os.link(path, twin)
    code, _, err = check(tmp_path, "--fix", "train.py", "other")
    assert code == 0, err
    assert path.stat().st_ino == twin.stat().st_ino
    assert twin.read_text() == STALE_FIXED


def test_read_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(STALE)
    path.chmod(0o444)
    code, out, err = check(tmp_path, "--fix", "train.py")
    assert path.read_text() == STALE
    assert code == 2
    assert "train.py" in err and "read-only" in err
    assert b"train.py:7:5: GL001" in out  # not fixed, so still reported


def test_read_only_folder_does_not_stop_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    path = folder / "train.py"
    path.write_text(STALE)
    folder.chmod(0o555)
    try:
        code, _, err = check(tmp_path, "--fix", "src")
    finally:
        folder.chmod(0o755)
    assert code == 0, err
    assert path.read_text() == STALE_FIXED
    assert [p.name for p in folder.iterdir()] == ["train.py"]  # nothing created beside it


def test_write_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "train.py"
    path.write_text(STALE)
    (tmp_path / "other.py").write_text(STALE)

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    code, _, err = check(tmp_path, "--fix", "train.py", "other.py")
    assert code == 2
    assert "train.py" in err and "other.py" in err and "No space left on device" in err


# --- 5. bytes libcst would change -------------------------------------------------------------


def test_cr_only_file_keeps_its_last_line_ending(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_bytes(STALE.replace("\n", "\r").encode())
    check(tmp_path, "--fix", "train.py")
    assert path.read_bytes() == STALE_FIXED.replace("\n", "\r").encode()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("\n    loss = ((", "\n\f    loss = (("),  # the first line of the block
        ("\n    loss.backward", "\n\f    loss.backward"),  # a later line of the block
        ("\nmodel = ", "\n\fmodel = "),  # a top-level line
    ],
    ids=["first-in-block", "later-in-block", "top-level"],
)
def test_form_feed_kept(tmp_path: Path, before: str, after: str) -> None:
    path = tmp_path / "train.py"
    path.write_bytes(STALE.replace(before, after).encode())
    check(tmp_path, "--fix", "train.py")
    assert path.read_bytes() == STALE_FIXED.replace(before, after).encode()
    _, out, _ = check(tmp_path, "--diff", "-", input=STALE.replace(before, after).encode())
    assert _added(out) == ["+" + INSERTED]  # the diff shows the inserted line only


# --- 6. the output format does not change what is found ----------------------------------------


def _many_findings(count: int) -> str:
    parts = [
        "import torch\n\nmodel = torch.nn.Linear(4, 1)\n",
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
    ]
    for index in range(count):
        parts.append(
            f"\n\ndef train_{index}(data):\n"
            "    for x in data:\n"
            "        loss = model(x).sum()\n"
            "        loss.backward()\n"
            "        opt.step()\n"
        )
    return "".join(parts)


_LOCATION = re.compile(r"^many\.py:(\d+):(\d+): (GL\d{3}) ", re.MULTILINE)


def _sites(output_format: str, out: str) -> set[tuple[str, int, int | None]]:
    if output_format in ("concise", "full"):
        return {(c, int(line), int(col)) for line, col, c in _LOCATION.findall(out)}
    if output_format == "pylint":  # no column in this format
        found = re.findall(r"^many\.py:(\d+): \[(GL\d{3})", out, re.MULTILINE)
        return {(c, int(line), None) for line, c in found}
    if output_format == "github":
        found = re.findall(r"line=(\d+),col=(\d+),.*\((GL\d{3})\)::", out)
        return {(c, int(line), int(col)) for line, col, c in found}
    if output_format == "json":
        return {(d["code"], d["location"]["row"], d["location"]["column"]) for d in json.loads(out)}
    results = json.loads(out)["runs"][0]["results"]
    regions = [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]) for r in results]
    return {(c, r["startLine"], r["startColumn"]) for c, r in regions}


def test_output_format_does_not_change_the_findings(tmp_path: Path) -> None:
    (tmp_path / "many.py").write_text(_many_findings(100))
    # 15 s instead of the default 30 keeps the test short and leaves room for a busy machine
    limit = ["--timeout", "15", "many.py"]
    _, out, _ = check(tmp_path, *limit)
    expected = _sites("concise", out.decode())
    assert len(expected) == 100 and {code for code, _, _ in expected} == {"GL001"}
    for output_format in ("json", "sarif", "full", "pylint", "github"):
        _, out, _ = check(tmp_path, "--format", output_format, *limit)
        found = _sites(output_format, out.decode())
        if output_format == "pylint":
            assert found == {(c, line, None) for c, line, _ in expected}, output_format
        else:
            assert found == expected, output_format


# --- 7. --diff says what it could not do -------------------------------------------------------


def test_diff_reports_files_it_did_not_analyse(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import torch\nfor x in (:\n    loss.backward()\n")
    (tmp_path / "latin.py").write_bytes(b"import torch\nname = '\xff'\n")
    code, out, err = check(tmp_path, "--diff", "broken.py", "latin.py")
    assert code == 1
    assert out == b""
    assert re.search(r"^broken\.py:\d+:\d+: GL900 ", err, re.MULTILINE)
    assert "latin.py:2:" in err and "GL901" in err


def test_diff_shows_fixes_and_problems(tmp_path: Path) -> None:
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "broken.py").write_text("import torch\nfor x in (:\n    loss.backward()\n")
    code, out, err = check(tmp_path, "--diff", ".")
    assert code == 1
    assert _added(out) == ["+" + INSERTED]
    assert re.search(r"^broken\.py:\d+:\d+: GL900 ", err, re.MULTILINE)


def test_diff_of_clean_files_exits_0(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text(STALE_FIXED)
    code, out, _ = check(tmp_path, "--diff", ".")
    assert (code, out) == (0, b"")


# --- 8. select and ignore: ignore wins a tie ---------------------------------------------------


def test_ignore_wins_a_tie_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "discarded.py").write_text(DISCARDED)
    _, out, _ = check(tmp_path, "--select", "GL001,GL002", "--ignore", "GL002", ".")
    assert set(re.findall(rb"GL\d{3}", out)) == {b"GL001"}


def test_ignore_wins_a_tie_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradlint]\nselect = ["GL001", "GL002"]\nignore = ["GL002"]\n'
    )
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "discarded.py").write_text(DISCARDED)
    _, out, _ = check(tmp_path, ".")
    assert set(re.findall(rb"GL\d{3}", out)) == {b"GL001"}


def test_ignore_wins_a_tie_in_extend_select() -> None:
    codes = resolve([Selection(extend_select=("GL101",), ignore=("GL101",))])
    assert "GL101" not in codes and "GL001" in codes
    codes = resolve([Selection(select=("GL9",), ignore=("GL9",))])
    assert not any(c.startswith("GL9") for c in codes)


# --- a docstring stays first ----------------------------------------------------------------

CLOSURE_WITH_DOCSTRING = textwrap.dedent(
    '''\
    import torch
    import torch.nn as nn

    model = nn.Linear(3, 1)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    x, y = torch.randn(16, 3), torch.randn(16, 1)


    def closure():
        """One evaluation of the loss, as LBFGS asks for it."""
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss


    for epoch in range(2):
        optimizer.zero_grad()
        optimizer.step(closure)
    '''
)


def test_fix_inserted_after_the_docstring(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(CLOSURE_WITH_DOCSTRING)
    check(tmp_path, "--fix", "train.py")
    docstring = '    """One evaluation of the loss, as LBFGS asks for it."""\n'
    assert path.read_text() == CLOSURE_WITH_DOCSTRING.replace(
        docstring, docstring + "    optimizer.zero_grad()\n"
    )
