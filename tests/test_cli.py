"""The command line as users and editors see it: output lines, exit codes, fixes, noqa, stdin."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, STALE, CliRunner

from gradlint.cli import main

STALE_FIXED = STALE.replace("for x, y in batches:\n", "for x, y in batches:\n    opt.zero_grad()\n")
DISCARDED = textwrap.dedent(
    """\
    for x, y in batches:
        net(x).sum().backward()
        optim_g.zero_grad()
        optim_g.step()
    """
)
CLEAN = STALE_FIXED
FLAKE8_LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>GL\d{3}) (?P<msg>.+)$"
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "discarded.py").write_text(DISCARDED)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_concise_output_is_flake8_style(runner, project):
    result = runner.invoke(main, ["check", "stale.py", "discarded.py", "clean.py"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    parsed = [FLAKE8_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["path"], m["line"], m["col"], m["code"]) for m in parsed] == [
        ("discarded.py", "3", "5", "GL002"),
        ("stale.py", "7", "5", "GL001"),
    ]
    assert "opt.step()" in parsed[1]["msg"] and "line 8" in parsed[1]["msg"]
    assert (
        "Found 2 findings in 2 of 3 files checked.\n[*] 2 fixable with `--fix`.\n" in result.stderr
    )


def test_clean_exits_zero(runner, project):
    result = runner.invoke(main, ["check", "clean.py"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "All checks passed" in result.stderr


def test_exit_zero(runner, project):
    result = runner.invoke(main, ["check", "--exit-zero", "stale.py"])
    assert result.exit_code == 0
    assert "GL001" in result.stdout


def test_folder_walk_skips_ignored_and_virtualenvs(runner, project):
    (project / ".gitignore").write_text("generated/\n")
    (project / ".git").mkdir()
    for skipped in ("generated", ".venv", "__pycache__", "build"):
        (project / skipped).mkdir()
        (project / skipped / "bad.py").write_text(STALE)
    (project / "pkg").mkdir()
    (project / "pkg" / "bad.py").write_text(STALE)
    result = runner.invoke(main, ["check", "."])
    paths = sorted({line.split(":")[0] for line in result.stdout.splitlines()})
    assert paths == ["pkg/bad.py", "stale.py"] or paths == [
        "discarded.py",
        "pkg/bad.py",
        "stale.py",
    ]
    assert "discarded.py" in paths


def test_select_and_ignore(runner, project):
    both = ["stale.py", "discarded.py"]
    only_001 = runner.invoke(main, ["check", "--select", "GL001", *both]).stdout
    assert "GL001" in only_001 and "GL002" not in only_001
    no_001 = runner.invoke(main, ["check", "--ignore", "GL001", *both]).stdout
    assert "GL002" in no_001 and "GL001" not in no_001
    prefix = runner.invoke(main, ["check", "--select", "GL00", "--ignore", "GL002", *both]).stdout
    assert "GL001" in prefix and "GL002" not in prefix


def test_unknown_code_is_a_usage_error(runner, project):
    result = runner.invoke(main, ["check", "--select", "XY123", "stale.py"])
    assert result.exit_code == 2
    assert "XY123" in result.stderr


@pytest.mark.parametrize(
    ("comment", "suppressed"),
    [
        ("  # noqa", True),
        ("  # noqa: GL001", True),
        ("  # noqa: GL002", False),
        ("  # NOQA:GL001", True),
    ],
)
def test_noqa(runner, project, comment, suppressed):
    text = STALE.replace("loss.backward()", "loss.backward()" + comment)
    (project / "stale.py").write_text(text)
    result = runner.invoke(main, ["check", "stale.py"])
    assert (result.exit_code == 0) == suppressed
    assert ("GL001" in result.stdout) != suppressed


def test_fix_rewrites_and_is_idempotent(runner, project):
    result = runner.invoke(main, ["check", "--fix", "stale.py"])
    assert result.exit_code == 0, result.output
    assert (project / "stale.py").read_text() == STALE_FIXED
    second = runner.invoke(main, ["check", "--fix", "stale.py"])
    assert second.exit_code == 0
    assert (project / "stale.py").read_text() == STALE_FIXED


def test_fix_moves_reset_after_step(runner, project):
    runner.invoke(main, ["check", "--fix", "discarded.py"])
    assert (project / "discarded.py").read_text() == textwrap.dedent(
        """\
        for x, y in batches:
            net(x).sum().backward()
            optim_g.step()
            optim_g.zero_grad()
        """
    )


def test_diff_prints_and_writes_nothing(runner, project):
    result = runner.invoke(main, ["check", "--diff", "stale.py"])
    assert result.exit_code == 1
    assert "+    opt.zero_grad()" in result.stdout
    assert (project / "stale.py").read_text() == STALE
    clean = runner.invoke(main, ["check", "--diff", "clean.py"])
    assert clean.exit_code == 0 and clean.stdout == ""


def test_fix_keeps_crlf_and_bom(runner, project):
    data = b"\xef\xbb\xbf" + STALE.replace("\n", "\r\n").encode()
    (project / "stale.py").write_bytes(data)
    runner.invoke(main, ["check", "--fix", "stale.py"])
    written = (project / "stale.py").read_bytes()
    assert written == b"\xef\xbb\xbf" + STALE_FIXED.replace("\n", "\r\n").encode()


def test_stdin_with_filename(runner, project):
    result = runner.invoke(main, ["check", "-", "--stdin-filename", "train.py"], input=STALE)
    assert result.exit_code == 1
    assert result.stdout.startswith("train.py:7:5: GL001 ")


def test_stdin_fix_prints_fixed_source(runner, project):
    result = runner.invoke(main, ["check", "--fix", "-"], input=STALE)
    assert result.stdout == STALE_FIXED


def test_full_format_shows_frame_path_and_fix(runner, project):
    result = runner.invoke(main, ["check", "--format", "full", "stale.py"])
    out = result.stdout
    assert "> 7 |     loss.backward()" in out
    assert "path: opt.step() at line 8 → next iteration → loss.backward() at line 7" in out
    assert "+    opt.zero_grad()" in out


def test_bad_input_does_not_stop_the_run(runner, project):
    (project / "broken.py").write_text("loss.backward(\n")
    (project / "binary.py").write_bytes(b"\x00\x01\x02")
    result = runner.invoke(main, ["check", "broken.py", "binary.py", "missing.py", "stale.py"])
    assert result.exit_code == 1
    codes = [line.split(": ")[1].split()[0] for line in result.stdout.splitlines()]
    assert codes == ["GL901", "GL900", "GL901", "GL001"]


def test_rule_docs(runner):
    result = runner.invoke(main, ["rule", "GL001"])
    assert result.exit_code == 0
    for section in (
        "## What it does",
        "## Why is this bad?",
        "## Example",
        "## Use instead",
        "## Fix safety",
    ):
        assert section in result.stdout
    listing = runner.invoke(main, ["rules"]).stdout
    assert "GL001" in listing and "GL002" in listing


def test_unsafe_fixes_are_applied_only_when_asked_for(tmp_path):
    source = (FIXTURES / "GL106" / "aux_loss_second_backward.py").read_text(encoding="utf-8")
    script = tmp_path / "train.py"
    script.write_text(source, encoding="utf-8")
    runner = CliRunner()
    runner.invoke(main, ["check", "--fix", "--no-cache", str(script)])
    assert script.read_text(encoding="utf-8") == source  # GL106's fix is unsafe
    runner.invoke(main, ["check", "--fix", "--unsafe-fixes", "--no-cache", str(script)])
    assert "retain_graph=True" in script.read_text(encoding="utf-8")


def test_overlapping_paths_lint_each_file_once(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "train.py").write_text(STALE, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--no-cache", str(tmp_path), str(tmp_path / "pkg")])
    assert len([line for line in result.output.splitlines() if " GL001 " in line]) == 1
