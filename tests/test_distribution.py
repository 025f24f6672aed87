"""The name users install: `gradlint` on the package index is an unrelated project, so every
install line this project shows names its own distribution, `torch-gradlint`."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import gradlint
from gradlint import server
from gradlint.trace import command

ROOT = Path(__file__).parent.parent
DISTRIBUTION = "torch-gradlint"
TAKEN = "gradlint"


def _shown_files() -> list[Path]:
    """Everything a user reads or runs: docs, CI, the action, error messages in the source."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
    files += [ROOT / "action.yml", ROOT / ".ci" / "run", ROOT / ".pre-commit-hooks.yaml"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "src" / "gradlint").rglob("*.py"))
    return [f for f in files if f.is_file()]


def _installed_names(line: str) -> list[str]:
    """The requirement names of each `pip install ...` command on a line."""
    names = []
    for match in re.finditer(r"pip3? install\s+([^\n`&;|)]*)", line):
        try:
            words = shlex.split(match.group(1))
        except ValueError:  # an unterminated quote: the rest of the line is one argument
            words = match.group(1).split()
        for word in words:
            if word.startswith("-") or word.startswith((".", "/")) or "://" in word:
                continue
            names.append(re.split(r"[\[<>=!~; ]", word, maxsplit=1)[0].lower())
    return names


def test_the_taken_name_is_never_installed():
    offenders = []
    for path in _shown_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            if TAKEN in _installed_names(line):
                offenders.append(where)
            if re.search(r"""["'(\s]gradlint\[""", line):  # an extra of the taken name
                offenders.append(where)
    assert offenders == []


def test_the_checker_catches_the_taken_name():
    assert _installed_names("pip install gradlint") == ["gradlint"]
    assert _installed_names("""pip install -U "gradlint[lsp]" && gradlint check""") == ["gradlint"]
    assert _installed_names("pip install . && gradlint check examples/") == []
    assert _installed_names("pip install 'torch-gradlint[trace]'") == [DISTRIBUTION]


def test_the_distribution_is_named_and_versioned_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DISTRIBUTION
    assert project["dynamic"] == ["version"]  # read from gradlint.__version__
    assert project["scripts"] == {"gradlint": "gradlint.cli:main"}


def test_error_messages_install_this_project():
    assert f"{DISTRIBUTION}[trace]" in command.INSTALL_HINT
    assert f"{DISTRIBUTION}[lsp]" in server.INSTALL_HINT
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"pip install {DISTRIBUTION}" in readme


def test_the_pre_commit_snippet_names_this_version_and_repository():
    """The `rev:` a user copies is the tag of the version being released (see CONTRIBUTING.md,
    "Releasing"), and `repo:` is this repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"    rev: v{gradlint.__version__}\n" in readme
    assert f"  - repo: {gradlint.REPOSITORY}\n" in readme
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "## Releasing" in contributing and "git tag" in contributing
