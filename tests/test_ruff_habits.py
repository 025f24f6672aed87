"""The command-line habits users bring from ruff, each checked against what ruff's flag does;
where ruff is installed (CI installs it), its own output is the reference for the wording."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import STALE

from gradlint.diagnostics import Diagnostic, Fix
from gradlint.report import summary
from gradlint.report.options import ReportOptions
from gradlint.rules.registry import RULES

FIXED = STALE.replace("for x, y in batches:\n", "for x, y in batches:\n    opt.zero_grad()\n")
# GL106's only fix is unsafe (`retain_graph=True`)
UNSAFE_ONLY = "import torch\n" + re.search(
    r"## Example\n```python\n(.*?)```", RULES["GL106"].docs, re.S
).group(1)
RUFF = shutil.which("ruff")
needs_ruff = pytest.mark.skipif(RUFF is None, reason="ruff is the reference; not installed")


def gradlint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gradlint", "check", "--no-cache", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def ruff(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(RUFF), "check", "--no-cache", "--isolated", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "unsafe.py").write_text(UNSAFE_ONLY)
    (tmp_path / "clean.py").write_text(FIXED)
    (tmp_path / "helpers.py").write_text("def add(a, b):\n    return a + b\n")
    return tmp_path


# ruff's own findings for the same situations: F401 has a safe fix, E731 an unsafe one
RUFF_SAFE_AND_UNSAFE = "import os\nf = lambda: 0\n"


def _shape(line: str) -> str:
    """A summary line with its numbers and rule words taken out, to compare with ruff's."""
    return re.sub(r"\d+", "N", line)


# --- the `[*]` mark and the fixable lines -----------------------------------------------------


def test_fixable_mark_and_lines_follow_the_applicability(project: Path) -> None:
    done = gradlint(project, "stale.py", "unsafe.py")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("stale.py:7:5: GL001 [*] ")
    assert lines[1].startswith("unsafe.py:8:5: GL106 ") and "[*]" not in lines[1]
    assert done.stderr.splitlines()[1] == (
        "[*] 1 fixable with `--fix` (1 unsafe fix available with `--fix --unsafe-fixes`)."
    )
    unsafe = gradlint(project, "--unsafe-fixes", "stale.py", "unsafe.py")
    assert "GL106 [*] " in unsafe.stdout
    assert unsafe.stderr.splitlines()[1] == "[*] 2 fixable with `--fix`."
    # a safe --fix that leaves an unsafe finding says why it is left
    fixed = gradlint(project, "--fix", "stale.py", "unsafe.py")
    assert fixed.stderr.splitlines() == [
        "Found 2 findings (1 fixed, 1 remaining) in 2 of 2 files checked.",
        "1 unsafe fix available with `--fix --unsafe-fixes`.",
    ]


@needs_ruff
def test_fixable_lines_are_worded_as_ruff_words_them(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(RUFF_SAFE_AND_UNSAFE)
    theirs = ruff(tmp_path, "--select", "F401,E731", "--output-format", "concise", "a.py")
    theirs_safe = ruff(tmp_path, "--select", "F401", "--output-format", "concise", "a.py")
    theirs_unsafe = ruff(tmp_path, "--select", "E731", "--output-format", "concise", "a.py")
    safe = Diagnostic("GL001", "a.py", 1, 1, "m", fix=Fix("d", "safe", ""))
    unsafe = Diagnostic("GL106", "a.py", 2, 1, "m", fix=Fix("d", "unsafe", ""))
    options = ReportOptions()
    assert summary.fixable_line([safe, unsafe], options) == theirs.stdout.splitlines()[-1]
    assert summary.fixable_line([safe], options) == theirs_safe.stdout.splitlines()[-1]
    assert summary.fixable_line([unsafe], options) == theirs_unsafe.stdout.splitlines()[-1]
    # and the mark sits where ruff puts it, between the code and the message
    assert re.match(r"a\.py:1:8: F401 \[\*\] ", theirs.stdout)


def test_summary_says_how_many_files_were_checked_and_what_was_skipped(project: Path) -> None:
    (project / "broken.py").write_text("def f(:\n")  # no trigger word: not parsed
    done = gradlint(project, "stale.py", "clean.py", "helpers.py", "broken.py")
    assert done.stderr.splitlines()[0] == (
        "Found 1 finding in 1 of 4 files checked (2 without training code)."
    )
    clean = gradlint(project, "clean.py", "helpers.py")
    assert clean.stderr == "All checks passed (2 files checked, 1 without training code).\n"
    (project / "broken_loop.py").write_text("loss.backward(\n")
    broken = gradlint(project, "clean.py", "broken_loop.py")
    assert "GL900" in broken.stdout
    assert (
        broken.stderr.splitlines()[0] == "Found 1 finding in 1 of 2 files checked (1 not analysed)."
    )


# --- --statistics -----------------------------------------------------------------------------


def test_statistics_counts_each_rule(project: Path) -> None:
    (project / "stale2.py").write_text(STALE)
    done = gradlint(project, "--statistics", "stale.py", "stale2.py", "unsafe.py")
    assert done.returncode == 1
    assert done.stdout == "2\tGL001\t[*] stale-gradients\n1\tGL106\t[ ] second-backward\n"
    as_json = gradlint(project, "--statistics", "--format", "json", "stale.py")
    assert '"fixable_count": 1' in as_json.stdout


@needs_ruff
def test_statistics_lines_have_ruffs_shape(tmp_path: Path, project: Path) -> None:
    (tmp_path / "a.py").write_text(RUFF_SAFE_AND_UNSAFE + "g = lambda: 1\n")
    theirs = ruff(tmp_path, "--select", "F401,E731", "--statistics", "a.py").stdout.splitlines()
    ours = gradlint(project, "--statistics", "stale.py", "unsafe.py", "unsafe.py").stdout
    pattern = re.compile(r"^ *\d+\t[A-Z]+\d+ *\t\[[* ]\] [a-z-]+$")
    assert all(pattern.match(line) for line in theirs[:2]), theirs
    assert all(pattern.match(line) for line in ours.splitlines()), ours


# --- --output-file, --show-fixes, --exit-non-zero-on-fix --------------------------------------


def test_output_file_holds_the_report(project: Path) -> None:
    done = gradlint(project, "--output-file", "report.txt", "stale.py")
    assert done.returncode == 1 and done.stdout == ""
    assert (project / "report.txt").read_text().startswith("stale.py:7:5: GL001 [*] ")
    as_json = gradlint(project, "-o", "out.json", "--format", "json", "stale.py")
    assert as_json.stdout == "" and '"code": "GL001"' in (project / "out.json").read_text()


def test_show_fixes_lists_what_was_fixed(project: Path) -> None:
    done = gradlint(project, "--fix", "--show-fixes", "stale.py", "clean.py")
    assert done.returncode == 0
    assert "\nFixed 1 finding:\n- stale.py:\n    1 × GL001 (stale-gradients)\n" in done.stderr
    assert (project / "stale.py").read_text() == FIXED


@needs_ruff
def test_show_fixes_block_has_ruffs_shape(tmp_path: Path, project: Path) -> None:
    (tmp_path / "a.py").write_text("import os\n")
    theirs = ruff(tmp_path, "--select", "F401", "--fix", "--show-fixes", "a.py").stdout
    ours = gradlint(project, "--fix", "--show-fixes", "stale.py").stderr
    block = re.compile(r"\nFixed 1 (?:error|finding):\n- a\.py:\n    1 × F401 \(unused-import\)\n")
    assert block.search(theirs), theirs
    assert block.search(
        ours.replace("stale.py", "a.py")
        .replace("GL001 (stale-gradients)", "F401 (unused-import)")
        .replace("finding", "finding")
    )


@pytest.mark.parametrize("flag", [(), ("--exit-non-zero-on-fix",)])
def test_exit_non_zero_on_fix(project: Path, flag: tuple[str, ...]) -> None:
    done = gradlint(project, "--fix", *flag, "stale.py")
    assert done.returncode == (1 if flag else 0)
    again = gradlint(project, "--fix", *flag, "stale.py")  # nothing left to fix
    assert again.returncode == 0


@needs_ruff
def test_exit_non_zero_on_fix_as_ruff(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import os\n")
    assert (
        ruff(tmp_path, "--select", "F401", "--fix", "--exit-non-zero-on-fix", "a.py").returncode
        == 1
    )
    assert (
        ruff(tmp_path, "--select", "F401", "--fix", "--exit-non-zero-on-fix", "a.py").returncode
        == 0
    )


# --- --add-noqa and GL800 ---------------------------------------------------------------------


def test_add_noqa_keeps_existing_codes(project: Path) -> None:
    marked = STALE.replace("    loss.backward()\n", "    loss.backward()  # noqa: E501\n")
    (project / "marked.py").write_text(marked)
    done = gradlint(project, "--add-noqa", "stale.py", "marked.py")
    assert done.returncode == 0 and done.stderr == "Added 2 noqa directives.\n"
    assert "    loss.backward()  # noqa: GL001\n" in (project / "stale.py").read_text()
    assert "    loss.backward()  # noqa: E501, GL001\n" in (project / "marked.py").read_text()
    assert gradlint(project, "stale.py", "marked.py").returncode == 0  # all suppressed, all used
    assert gradlint(project, "--add-noqa", "stale.py").stderr == "Added 0 noqa directives.\n"


@needs_ruff
def test_add_noqa_writes_what_ruff_writes(tmp_path: Path, project: Path) -> None:
    (tmp_path / "a.py").write_text("import os  # noqa: E501\n")
    ruff(tmp_path, "--select", "F401", "--add-noqa", "a.py")
    theirs = (tmp_path / "a.py").read_text()
    marked = STALE.replace("    loss.backward()\n", "    loss.backward()  # noqa: E501\n")
    (project / "marked.py").write_text(marked)
    gradlint(project, "--add-noqa", "marked.py")
    ours = (project / "marked.py").read_text().splitlines()[6]
    assert theirs == "import os  # noqa: E501, F401\n"
    assert ours == "    loss.backward()  # noqa: E501, GL001"


def test_unused_noqa_is_reported_for_gradlint_codes_only(project: Path) -> None:
    source = textwrap.dedent(
        """\
        import torch
        for x, y in batches:
            opt.zero_grad()
            loss = model(x).sum()
            loss.backward()  # noqa: GL001, E501
            opt.step()  # noqa: E501
            note = "# noqa: GL002"  # a string, not a comment
        """
    )
    (project / "noqa.py").write_text(source)
    done = gradlint(project, "noqa.py")
    assert done.stdout == (
        "noqa.py:5:22: GL800 `# noqa` comment that suppresses nothing (unused: `GL001`)\n"
    )
    assert gradlint(project, "--ignore", "GL800", "noqa.py").returncode == 0
    # a code that is not selected is not judged
    assert gradlint(project, "--select", "GL002", "noqa.py").returncode == 0
    # a suppression that works is used
    (project / "used.py").write_text(
        STALE.replace("loss.backward()", "loss.backward()  # noqa: GL001")
    )
    assert gradlint(project, "used.py").returncode == 0


# --- --exclude and --extend-exclude -----------------------------------------------------------


def test_exclude_and_extend_exclude_on_the_command_line(project: Path) -> None:
    (project / "generated").mkdir()
    (project / "generated" / "stale.py").write_text(STALE)
    (project / "pyproject.toml").write_text('[tool.gradlint]\nextend-exclude = ["unsafe.py"]\n')

    def linted(*args: str) -> set[str]:
        out = gradlint(project, *args, ".").stdout
        return {line.split(":")[0] for line in out.splitlines()}

    assert linted() == {"stale.py", "generated/stale.py"}
    assert linted("--extend-exclude", "generated/") == {"stale.py"}
    assert linted("--extend-exclude", "/generated/stale.py") == {"stale.py"}
    # --exclude replaces the configuration's `exclude` (here the default list); its
    # `extend-exclude` still applies, as in ruff
    assert linted("--exclude", "generated,stale.py") == set()
    assert linted("--exclude", "generated") == {"stale.py"}


@needs_ruff
def test_exclude_replaces_and_extend_exclude_adds_as_in_ruff(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import os\n")
    (tmp_path / "b.py").write_text("import os\n")
    (tmp_path / "pyproject.toml").write_text('[tool.ruff]\nextend-exclude = ["a.py"]\n')

    def linted(*args: str) -> set[str]:
        command = [
            str(RUFF),
            "check",
            "--no-cache",
            "--select",
            "F401",
            "--output-format",
            "concise",
            *args,
            ".",
        ]
        out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True).stdout
        return {line.split(":")[0] for line in out.splitlines() if ".py:" in line}

    assert linted() == {"b.py"}
    assert linted("--extend-exclude", "b.py") == set()
    assert linted("--exclude", "b.py") == set()  # the file's extend-exclude still applies
