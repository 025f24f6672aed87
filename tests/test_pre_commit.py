"""The hooks of .pre-commit-hooks.yaml, run by the real pre-commit in a throwaway repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

if shutil.which("git") is None and not os.environ.get("CI"):
    pytest.skip("pre-commit needs git", allow_module_level=True)

STALE = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    """
)
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

    try-repo on a repository with uncommitted changes commits only the tracked files (`git add
    -u`) into a new temporary clone on every call, so each call would install gradlint again;
    one snapshot shared by the tests is installed once.
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
    hooks = ".pre-commit-hooks.yaml"
    assert (snapshot / hooks).read_bytes() == (ROOT / hooks).read_bytes()
    return snapshot


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's cache of hook environments, kept apart from the user's."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path, hooks_repository: Path) -> Path:
    """A user's repository: one buggy and one clean training script, and a config with a rev."""
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "train.py").write_text(STALE)
    (tmp_path / "clean.py").write_text(FIXED)
    rev = git("rev-parse", "HEAD", cwd=hooks_repository)
    (tmp_path / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks_repository}\n    rev: {rev}\n    hooks:\n      - id: gradlint\n"
    )
    return tmp_path


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=cwd,
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=900,
    )


def try_repo(
    hook: str, *files: str, cwd: Path, repository: Path, home: Path
) -> subprocess.CompletedProcess[str]:
    return pre_commit("try-repo", str(repository), hook, "--files", *files, cwd=cwd, home=home)


def test_check_hook_fails_on_the_stale_gradient(
    project: Path, hooks_repository: Path, pre_commit_home: Path
) -> None:
    done = try_repo(
        "gradlint",
        "train.py",
        "clean.py",
        cwd=project,
        repository=hooks_repository,
        home=pre_commit_home,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "- hook id: gradlint\n" in done.stdout
    assert "train.py:7:5: GL001 `loss.backward()` adds onto gradient" in done.stdout
    assert "clean.py:" not in done.stdout
    assert (project / "train.py").read_text() == STALE


def test_check_hook_passes_the_clean_file_and_lints_only_the_files_given(
    project: Path, hooks_repository: Path, pre_commit_home: Path
) -> None:
    # train.py is buggy but not given: the hook must not look at it
    done = try_repo(
        "gradlint", "clean.py", cwd=project, repository=hooks_repository, home=pre_commit_home
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout and "GL001" not in done.stdout


def test_fix_hook_rewrites_the_file(
    project: Path, hooks_repository: Path, pre_commit_home: Path
) -> None:
    done = try_repo(
        "gradlint-fix",
        "train.py",
        "clean.py",
        cwd=project,
        repository=hooks_repository,
        home=pre_commit_home,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "- hook id: gradlint-fix\n" in done.stdout
    assert "- files were modified by this hook" in done.stdout
    fixed = (project / "train.py").read_text()
    assert fixed == FIXED
    assert fixed.index("zero_grad()") < fixed.index("loss = ") < fixed.index("backward()")
    assert (project / "clean.py").read_text() == FIXED


def test_config_with_a_rev_runs_the_hook(
    project: Path, hooks_repository: Path, pre_commit_home: Path
) -> None:
    # the form the README shows; it shares the environment try-repo installed
    done = pre_commit("run", "--files", "train.py", "clean.py", cwd=project, home=pre_commit_home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "train.py:7:5: GL001 " in done.stdout and "clean.py:" not in done.stdout
