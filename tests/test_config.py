"""`[tool.gradlint]` in pyproject.toml: each key, where it is found, and the CLI over it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import CliRunner

from gradlint.cli import main
from gradlint.config import Selection, Settings, resolve

STALE = textwrap.dedent(
    """\
    for x, y in batches:
        loss = model(x).sum()
        loss.backward()
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


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "discarded.py").write_text(DISCARDED)
    return tmp_path


def configure(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text("[project]\nname = 'x'\n\n[tool.gradlint]\n" + textwrap.dedent(body))
    return path


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["check", *args], input=stdin)


def found(result) -> set[tuple[str, str]]:
    """(path, code) of each finding line."""
    pairs = set()
    for line in result.stdout.splitlines():
        path, _, _, rest = line.split(":", 3)
        pairs.add((path, rest.split()[0]))
    return pairs


BOTH = {("stale.py", "GL001"), ("discarded.py", "GL002")}


def test_no_config_reports_everything(project):
    assert found(run(".")) == BOTH


def test_select(project):
    configure(project, 'select = ["GL001"]\n')
    assert found(run(".")) == {("stale.py", "GL001")}


def test_ignore(project):
    configure(project, 'ignore = ["GL001"]\n')
    assert found(run(".")) == {("discarded.py", "GL002")}


def test_extend_select_adds_to_select(project):
    configure(project, 'select = ["GL001"]\nextend-select = ["GL002"]\n')
    assert found(run(".")) == BOTH


def test_more_specific_prefix_wins(project):
    configure(project, 'select = ["GL0"]\nignore = ["GL00"]\nextend-select = ["GL002"]\n')
    assert found(run(".")) == {("discarded.py", "GL002")}


def test_exclude_replaces_the_default_folders(project):
    for folder in ("generated", "build"):
        (project / folder).mkdir()
        (project / folder / "bad.py").write_text(STALE)
    assert ("build/bad.py", "GL001") not in found(run("."))
    configure(project, 'exclude = ["generated/"]\n')
    paths = {path for path, _ in found(run("."))}
    assert paths == {"stale.py", "discarded.py", "build/bad.py"}


def test_extend_exclude_keeps_the_default_folders(project):
    for folder in ("generated", "build", "pkg"):
        (project / folder).mkdir()
        (project / folder / "bad.py").write_text(STALE)
    (project / "pkg" / "bad_pb2.py").write_text(STALE)
    configure(project, 'extend-exclude = ["generated", "*_pb2.py"]\n')
    paths = {path for path, _ in found(run("."))}
    assert paths == {"stale.py", "discarded.py", "pkg/bad.py"}


def test_anchored_exclude_is_relative_to_the_config_file(project):
    for folder in ("tests/fixtures", "src/tests/fixtures"):
        (project / folder).mkdir(parents=True)
        (project / folder / "bad.py").write_text(STALE)
    configure(project, 'extend-exclude = ["tests/fixtures"]\n')
    (project / "src").joinpath("x.py").write_text("")
    paths = {path for path, _ in found(run("src", "tests"))}
    assert paths == {"src/tests/fixtures/bad.py"}


def test_explicit_paths_are_linted_unless_force_exclude(project):
    (project / "generated").mkdir()
    (project / "generated" / "bad.py").write_text(STALE)
    configure(project, 'extend-exclude = ["generated", "stale.py"]\n')
    assert found(run(".")) == {("discarded.py", "GL002")}
    assert found(run("stale.py", "generated/bad.py")) == {
        ("stale.py", "GL001"),
        ("generated/bad.py", "GL001"),
    }
    assert found(run("generated")) == {("generated/bad.py", "GL001")}
    forced = run("--force-exclude", "stale.py", "generated/bad.py", "generated", "discarded.py")
    assert found(forced) == {("discarded.py", "GL002")}


def test_force_exclude_from_the_config_file(project):
    configure(project, 'extend-exclude = ["stale.py"]\nforce-exclude = true\n')
    result = run("stale.py")
    assert result.exit_code == 0 and result.stdout == ""


def test_default_folders_are_force_excluded_too(project):
    (project / ".venv").mkdir()
    (project / ".venv" / "bad.py").write_text(STALE)
    assert found(run(".venv/bad.py")) == {(".venv/bad.py", "GL001")}
    assert found(run("--force-exclude", ".venv/bad.py")) == set()


def test_per_file_ignores_by_glob(project):
    (project / "tests" / "unit").mkdir(parents=True)
    (project / "tests" / "unit" / "stale.py").write_text(STALE)
    (project / "tests" / "unit" / "discarded.py").write_text(DISCARDED)
    (project / "notebooks").mkdir()
    (project / "notebooks" / "stale.py").write_text(STALE)
    configure(
        project,
        """\
        [tool.gradlint.per-file-ignores]
        "tests/**" = ["GL001"]
        "stale.py" = ["GL"]
        """,
    )
    # `stale.py` has no slash: like a .gitignore line it matches that name in any folder
    assert found(run(".")) == {("discarded.py", "GL002"), ("tests/unit/discarded.py", "GL002")}


def test_per_file_ignores_win_over_an_explicit_select(project):
    configure(project, '[tool.gradlint.per-file-ignores]\n"stale.py" = ["GL001"]\n')
    assert found(run("--select", "GL001", "stale.py")) == set()


def test_nearest_pyproject_with_the_table_wins(project):
    configure(project, 'select = ["GL002"]\n')
    sub = project / "sub"
    sub.mkdir()
    (sub / "stale.py").write_text(STALE)
    (sub / "discarded.py").write_text(DISCARDED)
    # a pyproject.toml without [tool.gradlint] is passed over, as ruff does
    (sub / "pyproject.toml").write_text("[project]\nname = 'sub'\n")
    assert found(run("sub")) == {("sub/discarded.py", "GL002")}
    configure(sub, 'select = ["GL001"]\n')
    assert found(run("sub")) == {("sub/stale.py", "GL001")}
    assert found(run("sub/stale.py", "sub/discarded.py")) == {("sub/stale.py", "GL001")}
    # the root's file applies to everything above `sub`
    assert found(run(".")) == {("discarded.py", "GL002"), ("sub/discarded.py", "GL002")}


def test_cli_select_replaces_the_config_selection(project):
    configure(project, 'select = ["GL001"]\nignore = ["GL002"]\n')
    assert found(run("--select", "GL002", ".")) == {("discarded.py", "GL002")}


def test_cli_extend_select_and_ignore_adjust_the_config_selection(project):
    configure(project, 'select = ["GL001"]\n')
    assert found(run("--extend-select", "GL002", ".")) == BOTH
    assert found(run("--ignore", "GL001", ".")) == set()
    configure(project, 'ignore = ["GL001"]\n')
    assert found(run("--ignore", "GL002", ".")) == set()
    # repeated and comma-separated options both work
    assert found(run("--select", "GL001", "--select", "GL002", ".")) == BOTH


def test_resolution_follows_ruff():
    file = Selection(select=("GL0",), ignore=("GL001",))
    assert "GL001" in resolve([file, Selection(select=("GL001",))])
    assert "GL002" not in resolve([file, Selection(select=("GL001",))])
    assert set(resolve([file, Selection(extend_select=("GL001",))])) >= {"GL001", "GL002"}
    assert "GL002" not in resolve([file, Selection(ignore=("GL002",))])
    # input problems stay shown under any select, unless ignored
    assert "GL900" in resolve([Selection(select=("GL001",))])
    assert "GL900" not in resolve([Selection(select=("GL001",), ignore=("GL9",))])
    assert resolve([]) == tuple(Settings().codes)


def test_input_problems_follow_the_config(project):
    (project / "broken.py").write_text("loss.backward(\n")
    configure(project, 'select = ["GL001"]\n')
    assert ("broken.py", "GL900") in found(run("."))
    configure(project, 'select = ["GL001"]\nignore = ["GL9"]\n')
    assert ("broken.py", "GL900") not in found(run("."))


def test_unknown_key_is_an_error(project):
    configure(project, 'selct = ["GL001"]\n')
    result = run(".")
    assert result.exit_code == 2
    assert "selct" in result.stderr and "pyproject.toml" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('select = ["XY1"]\n', "XY1"),
        ('extend-select = ["GL0", "gl77"]\n', "GL77"),
        ('ignore = [""]\n', "ignore"),
        ('[tool.gradlint.per-file-ignores]\n"tests/**" = ["GL001", "E501"]\n', "E501"),
    ],
)
def test_unknown_code_is_an_error(project, body, named):
    configure(project, body)
    result = run(".")
    assert result.exit_code == 2
    assert named in result.stderr and "pyproject.toml" in result.stderr


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('select = "GL001"\n', "select"),
        ("exclude = [1]\n", "exclude"),
        ('per-file-ignores = ["x"]\n', "per-file-ignores"),
        ('force-exclude = "yes"\n', "force-exclude"),
    ],
)
def test_wrong_type_is_an_error(project, body, named):
    configure(project, body)
    result = run(".")
    assert result.exit_code == 2
    assert named in result.stderr and "pyproject.toml" in result.stderr


def test_bad_toml_is_an_error_with_the_parser_message(project):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nselect = GL001\n")
    result = run(".")
    assert result.exit_code == 2
    assert "pyproject.toml" in result.stderr and "invalid TOML" in result.stderr
    assert "line 2" in result.stderr  # the parser's own position


def test_isolated_ignores_config_files(project):
    configure(project, 'select = ["GL001"]\n')
    assert found(run("--isolated", ".")) == BOTH
    (project / "pyproject.toml").write_text("not toml [")
    assert found(run("--isolated", ".")) == BOTH


def test_config_option_uses_the_given_file(project):
    configure(project, 'select = ["GL002"]\n')
    other = project / "ci"
    other.mkdir()
    configure(other, 'select = ["GL001"]\n[tool.gradlint.per-file-ignores]\n"ci/**" = ["GL"]\n')
    assert found(run("--config", "ci/pyproject.toml", ".")) == {("stale.py", "GL001")}
    # globs are relative to the given file's folder, so `ci/**` matches nothing here
    (other / "ci").mkdir()
    (other / "ci" / "stale.py").write_text(STALE)
    (other / "stale.py").write_text(STALE)
    assert found(run("--config", "ci/pyproject.toml", "ci")) == {("ci/stale.py", "GL001")}
    both = run("--config", "ci/pyproject.toml", "--isolated", ".")
    assert both.exit_code == 2


def test_stdin_uses_the_config_and_per_file_ignores_of_its_filename(project):
    sub = project / "sub"
    sub.mkdir()
    configure(sub, '[tool.gradlint.per-file-ignores]\n"tests/*.py" = ["GL001"]\n')
    ignored = run("-", "--stdin-filename", "sub/tests/train.py", stdin=STALE)
    assert ignored.exit_code == 0 and ignored.stdout == ""
    reported = run("-", "--stdin-filename", "sub/train.py", stdin=STALE)
    assert reported.stdout.startswith("sub/train.py:3:5: GL001 ")


def test_stdin_force_exclude_hands_the_text_back_unchanged(project):
    configure(project, 'extend-exclude = ["vendor/"]\n')
    name = "vendor/train.py"
    assert run("-", "--stdin-filename", name, stdin=STALE).exit_code == 1
    excluded = run("--force-exclude", "-", "--stdin-filename", name, stdin=STALE)
    assert excluded.exit_code == 0 and excluded.stdout == ""
    fixed = run("--force-exclude", "--fix", "-", "--stdin-filename", name, stdin=STALE)
    assert fixed.stdout == STALE
