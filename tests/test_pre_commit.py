"""The hooks of .pre-commit-hooks.yaml, run by the real pre-commit in a throwaway repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import STALE

from gradlint import REPOSITORY, __version__

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow  # installs the hooks' environments

if shutil.which("git") is None and not os.environ.get("CI"):
    pytest.skip("pre-commit needs git", allow_module_level=True)

HOOKS = ("gradlint", "gradlint-fix")
FIXED = STALE.replace("for x, y in batches:\n", "for x, y in batches:\n    opt.zero_grad()\n")


def _environment(home: Path) -> dict[str, str]:
    # a hook running these tests must not point git at its own repository
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**env, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}


def git(*args: str, cwd: Path) -> str:
    identity = ["-c", "user.name=gradlint tests", "-c", "user.email=tests@example.invalid"]
    command = ["git", *identity, "-c", "commit.gpgsign=false", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def hooks_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's working tree, untracked files included, committed in a copy.

    try-repo on a repository with uncommitted changes would commit only its tracked files (`git
    add -u`): a new module not yet added to git would be missing from the installed package.
    """
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    snapshot = tmp_path_factory.mktemp("hooks-repository")
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, snapshot / name)
    git("init", "-q", cwd=snapshot)
    git("add", "-A", cwd=snapshot)
    git("commit", "-q", "-m", "working tree", cwd=snapshot)
    # the tag the README's snippet names, as a release makes it (CONTRIBUTING.md, "Releasing")
    git("tag", f"v{__version__}", cwd=snapshot)
    hooks = ".pre-commit-hooks.yaml"
    assert (snapshot / hooks).read_bytes() == (ROOT / hooks).read_bytes()
    return snapshot


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=cwd,
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=900,
    )


def hook_output(stdout: str, name: str) -> str:
    """One hook's status line and output, from pre-commit's report of several hooks."""
    blocks = re.split(r"\n(?=\S[^\n]*\.{4,})", stdout)
    found = [block for block in blocks if re.match(rf"{re.escape(name)}\.{{4,}}", block)]
    assert len(found) == 1, stdout
    return found[0]


def readme_snippet() -> str:
    """The `.pre-commit-config.yaml` the README tells users to write."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### pre-commit") :]
    found = re.search(r"```yaml\n(repos:\n.*?)```", section, re.DOTALL)
    assert found is not None, "no pre-commit snippet in the README"
    return found.group(1)


def project(folder: Path, hooks_repository: Path, config: str | None = None) -> Path:
    """A user's repository: buggy and clean training scripts, and a config with a rev (by
    default every hook at the repository's last commit)."""
    folder.mkdir()
    git("init", "-q", cwd=folder)
    (folder / "train.py").write_text(STALE)
    (folder / "clean.py").write_text(FIXED)
    (folder / "untouched.py").write_text(STALE)
    if config is None:
        rev = git("rev-parse", "HEAD", cwd=hooks_repository)
        hooks = "".join(f"      - id: {hook}\n" for hook in HOOKS)
        config = f"repos:\n  - repo: {hooks_repository}\n    rev: {rev}\n    hooks:\n{hooks}"
    (folder / ".pre-commit-config.yaml").write_text(config)
    # tracked, so that pre-commit can see what a hook changed
    git("add", "-A", cwd=folder)
    return folder


@pytest.fixture(scope="module")
def tried(tmp_path_factory: pytest.TempPathFactory, hooks_repository: Path) -> tuple[Path, str]:
    """Every hook of the repository through `pre-commit try-repo` once (each call installs)."""
    folder = project(tmp_path_factory.mktemp("tried") / "project", hooks_repository)
    home = tmp_path_factory.mktemp("pre-commit-home")
    done = pre_commit(
        "try-repo", str(hooks_repository), "--files", "train.py", "clean.py", cwd=folder, home=home
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return folder, done.stdout


@pytest.fixture(scope="module")
def configured(
    tmp_path_factory: pytest.TempPathFactory, hooks_repository: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`pre-commit run` in a project configured with the README's snippet, the repository's URL
    replaced by the local copy (its `rev:` tag included); the environment is installed once
    into a cache of the module's own."""
    snippet = readme_snippet()
    assert f"  - repo: {REPOSITORY}\n" in snippet
    config = snippet.replace(REPOSITORY, str(hooks_repository))
    folder = project(tmp_path_factory.mktemp("configured") / "project", hooks_repository, config)
    home = tmp_path_factory.mktemp("pre-commit-home")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return pre_commit("run", *args, cwd=folder, home=home)

    return run


def test_check_hook_fails_on_the_stale_gradient(tried: tuple[Path, str]) -> None:
    folder, stdout = tried
    output = hook_output(stdout, "gradlint")
    assert "Failed\n- hook id: gradlint\n" in output
    assert "\ntrain.py:7:5: GL001 [*] gradients accumulate across iterations" in output
    assert "clean.py:" not in output
    # the hook lints exactly the files it is given
    assert "untouched.py" not in stdout
    assert (folder / "untouched.py").read_text() == STALE


def test_fix_hook_rewrites_the_file(tried: tuple[Path, str]) -> None:
    folder, stdout = tried
    output = hook_output(stdout, "gradlint (fix)")
    assert "- hook id: gradlint-fix\n" in output
    assert "- files were modified by this hook" in output
    fixed = (folder / "train.py").read_text()
    assert fixed == FIXED
    assert fixed.index("    opt.zero_grad()") < fixed.index("loss = ") < fixed.index("backward()")
    assert (folder / "clean.py").read_text() == FIXED


def test_clean_file_passes_the_readme_hook(
    configured: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    done = configured("--files", "clean.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in hook_output(done.stdout, "gradlint")
    assert "GL0" not in done.stdout


def test_configured_hook_reports_the_finding(
    configured: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    done = configured("gradlint", "--files", "train.py", "clean.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\ntrain.py:7:5: GL001 " in done.stdout and "clean.py:" not in done.stdout
