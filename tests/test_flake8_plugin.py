"""The real flake8, finding the plugin through its installed entry point, says what `gradlint check` says."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradlint.flake8_plugin import TRIGGERS, Plugin
from gradlint.rules.base import Rule
from gradlint.rules.registry import RULES
from gradlint.triggers import words_of

FIXTURES = Path(__file__).parent / "fixtures"

STALE = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        loss = ((model(x) - y) ** 2).mean()
        loss.backward(){comment}
        opt.step()
    """
)
DISCARDED = textwrap.dedent(
    """\
    for x, y in batches:
        net(x).sum().backward()
        optim_g.zero_grad()
        optim_g.step()
    """
)
CLEAN = STALE.format(comment="").replace("    loss = ", "    opt.zero_grad()\n    loss = ")


def flake8(*args: str, cwd: Path, stdin: str | None = None) -> list[str]:
    """flake8's lines for the GL codes (and any others selected), from a fresh process."""
    command = [sys.executable, "-m", "flake8", "--isolated", "--jobs", "1", *args]
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.splitlines()


def gradlint(*args: str, cwd: Path, stdin: str | None = None) -> list[str]:
    """gradlint check's lines as flake8 prints them: without the `[*]` fixable mark, and without
    GL800 (flake8 judges `# noqa` comments itself)."""
    command = [sys.executable, "-m", "gradlint", "check", "-q", "--ignore", "GL800", *args]
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    return [line.replace(" [*] ", " ", 1) for line in done.stdout.splitlines()]


@pytest.mark.parametrize(
    ("comment", "reported"),
    [
        ("", True),
        ("  # noqa: GL001", False),
        ("  # noqa", False),
        ("  # noqa:GL001,E501", False),
        ("  # NOQA: gl001", False),
        ("  # noqa: GL002", True),
        ("  # noqa: E501", True),
    ],
)
def test_noqa_as_the_cli_does(tmp_path: Path, comment: str, reported: bool) -> None:
    (tmp_path / "train.py").write_text(STALE.format(comment=comment))
    lines = flake8("--select", "GL", "train.py", cwd=tmp_path)
    assert lines == gradlint("train.py", cwd=tmp_path)
    assert len(lines) == reported
    if reported:
        # the CLI's line and column for the backward() at line 7, column 5
        assert lines[0].startswith("train.py:7:5: GL001 gradients accumulate across iterations")


def test_files_and_findings_as_the_cli_reports_them(tmp_path: Path) -> None:
    (tmp_path / "stale.py").write_text(STALE.format(comment=""))
    (tmp_path / "discarded.py").write_text(DISCARDED)
    (tmp_path / "clean.py").write_text(CLEAN)
    # a column after non-ASCII text, in a file that declares another encoding
    latin = "# -*- coding: latin-1 -*-\n" + DISCARDED.replace(
        "    optim_g.zero_grad()", '    tag = "caf\u00e9"; optim_g.zero_grad()'
    )
    (tmp_path / "latin.py").write_bytes(latin.encode("latin-1"))
    files = ["clean.py", "discarded.py", "latin.py", "stale.py"]
    lines = flake8("--select", "GL", *files, cwd=tmp_path)
    assert sorted(lines) == sorted(gradlint(*files, cwd=tmp_path))
    assert [line.split(": ")[1].split()[0] for line in sorted(lines)] == [
        "GL002",
        "GL002",
        "GL001",
    ]
    assert any(line.startswith("latin.py:4:19: GL002") for line in lines)


def test_every_fixture_as_the_cli_reports_it(tmp_path: Path) -> None:
    files = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.py"))
    lines = flake8("--select", "GL", *files, cwd=FIXTURES)
    assert lines, "the fixtures hold findings"
    assert sorted(lines) == sorted(gradlint(*files, cwd=FIXTURES))


def test_stdin_uses_the_buffer_not_the_file_on_disk(tmp_path: Path) -> None:
    # the saved file is clean; the editor's buffer has the bug
    (tmp_path / "train.py").write_text(CLEAN)
    buffer = STALE.format(comment="")
    lines = flake8(
        "--select", "GL", "--stdin-display-name", "train.py", "-", cwd=tmp_path, stdin=buffer
    )
    expected = gradlint("-", "--stdin-filename", "train.py", cwd=tmp_path, stdin=buffer)
    assert lines == expected
    assert len(lines) == 1 and lines[0].startswith("train.py:7:5: GL001 ")
    quiet = STALE.format(comment="  # noqa: GL001")
    assert (
        flake8("--select", "GL", "--stdin-display-name", "t.py", "-", cwd=tmp_path, stdin=quiet)
        == []
    )


def test_selected_by_default_beside_other_plugins(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(STALE.format(comment=""))
    lines = flake8("train.py", cwd=tmp_path)
    assert [line for line in lines if ": GL" in line] == gradlint("train.py", cwd=tmp_path)
    assert flake8("--extend-ignore", "GL001", "train.py", cwd=tmp_path) == [
        line for line in lines if ": GL001 " not in line
    ]


def test_syntax_errors_are_left_to_flake8(tmp_path: Path) -> None:
    # flake8 reports E999 and runs no tree plugin; GL900 would say the same thing twice
    (tmp_path / "broken.py").write_text("for x in loader:\n    loss.backward(\n")
    assert gradlint("broken.py", cwd=tmp_path)[0].startswith("broken.py:2:")
    lines = flake8("--select", "GL,E999", "broken.py", cwd=tmp_path)
    assert len(lines) == 1 and ": E999 " in lines[0]


@pytest.mark.parametrize(
    "rule", [r for r in RULES.values() if r.code != "GL800"], ids=lambda rule: rule.code
)
def test_prefilter_lets_every_rule_through(rule: Rule) -> None:
    # a rule whose trigger pattern needs none of the words would never run under flake8
    def covered(item: str | tuple[str, ...]) -> bool:  # a word, or words one of which occurs
        alternatives = (item,) if isinstance(item, str) else item
        return all(any(word in part for word in TRIGGERS) for part in alternatives)

    for trigger in rule.triggers:
        assert any(covered(item) for item in words_of(trigger)), (
            f"add a word of {trigger!r} to gradlint.flake8_plugin.TRIGGERS"
        )
    example = re.search(r"## Example\n```python\n(.*?)```", rule.docs, re.S)
    if example:
        lines = example.group(1).splitlines(keepends=True)
        found = Plugin(ast.parse("".join(lines)), lines, "example.py").run()
        assert rule.code in {text.split()[0] for _, _, text, _ in found}


def test_cheap_to_load_and_to_run_on_other_files(tmp_path: Path) -> None:
    probe = textwrap.dedent(
        """\
        import ast, sys
        from gradlint.flake8_plugin import Plugin
        lines = ["import os\\n", "print(os.name)\\n"]
        assert list(Plugin(ast.parse("".join(lines)), lines, "other.py").run()) == []
        print(sorted(m for m in ("libcst", "torch", "gradlint.engine") if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_project_configuration_applies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradlint]\nper-file-ignores = { "legacy_*.py" = ["GL001"] }\n', encoding="utf-8"
    )
    (tmp_path / "legacy_train.py").write_text(STALE.format(comment=""), encoding="utf-8")
    (tmp_path / "train.py").write_text(STALE.format(comment=""), encoding="utf-8")
    lines = flake8("--select", "GL", "legacy_train.py", "train.py", cwd=tmp_path)
    assert [line.split(":")[0] for line in lines] == ["train.py"]
