"""Paths that are not plain files, a cache folder that is not a cache, names that are not UTF-8:
reported or refused, never a hang, a traceback or lost data.

Each case is a temporary tree with `stale.py` beside the bad path: its GL001 must be reported
whatever happened to the bad path, so we know the run went on. Cases that could hang run
gradlint in a subprocess with a time limit.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import STALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradlint import cache as cache_module
from gradlint.batch import Options, Task, lint_files
from gradlint.cache import Cache
from gradlint.config import Settings
from gradlint.discover import discover

STALE_FINDING = "stale.py:7:5: GL001 "
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and links of POSIX")


def gradlint(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """`gradlint ARGS` in `cwd`, in a process of its own: a hang fails the test, not the suite."""
    return subprocess.run(
        [sys.executable, "-m", "gradlint", *args],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def tree(tmp_path: Path) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "stale.py").write_text(STALE, encoding="utf-8")
    return tmp_path


def lines(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    return done.stdout.decode("utf-8", "backslashreplace").splitlines()


def assert_went_on(done: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert any(line.startswith(STALE_FINDING) for line in lines(done)), done.stdout.decode()


# --- the cache never takes over a folder it did not create -------------------------------------


def _project(tmp_path: Path) -> Path:
    project = tree(tmp_path / "project")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "notes.txt").write_text("keep me\n")
    return project


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("how", ["option", "environment"])
def test_cache_dir_that_is_the_project_is_not_adopted(tmp_path: Path, how: str) -> None:
    project = tree(tmp_path)
    (project / ".git").mkdir()
    before = _files(project)
    args, env = (
        (["--cache-dir", "."], None) if how == "option" else ([], {"GRADLINT_CACHE_DIR": "."})
    )
    done = gradlint(project, "check", *args, ".", env=env)
    assert done.returncode == 1
    assert_went_on(done)
    assert b"warning: not using . as the cache" in done.stderr
    assert _files(project) == before  # no CACHEDIR.TAG, no `.gitignore` holding `*`


def test_clean_refuses_a_folder_gradlint_did_not_create(tmp_path: Path) -> None:
    project = _project(tmp_path)
    before = _files(project)
    done = gradlint(project, "clean", "--cache-dir", ".")
    assert done.returncode == 2
    assert b"not a gradlint cache" in done.stderr
    assert _files(project) == before


def test_clean_of_a_project_adopted_by_an_older_version_removes_only_cache_entries(
    tmp_path: Path,
) -> None:
    """A project root an earlier gradlint made its cache: tag, `.gitignore` and entries go, the
    project and its `.git` stay."""
    project = _project(tmp_path)
    before = _files(project)
    (project / "CACHEDIR.TAG").write_text(cache_module._TAG)
    (project / ".gitignore").write_text(cache_module._GITIGNORE)
    entry = project / "v0.0.9" / "ab" / ("c" * 62 + ".json")
    entry.parent.mkdir(parents=True)
    entry.write_text("[]")
    (project / "v0.0.9" / "ab" / "mine.txt").write_text("not an entry")
    done = gradlint(project, "clean", "--cache-dir", ".")
    assert done.returncode == 0, done.stderr
    assert _files(project) == before | {"v0.0.9", "v0.0.9/ab", "v0.0.9/ab/mine.txt"}


def test_clean_removes_a_cache_it_created(tmp_path: Path) -> None:
    project = tree(tmp_path)
    assert gradlint(project, "check", ".").returncode == 1
    assert (project / ".gradlint_cache" / "CACHEDIR.TAG").is_file()
    done = gradlint(project, "clean")
    assert done.returncode == 0 and b"Removed .gradlint_cache" in done.stderr
    assert not (project / ".gradlint_cache").exists()
    assert gradlint(project, "clean").stderr.startswith(b"No cache at")


def test_an_empty_folder_becomes_the_cache(tmp_path: Path) -> None:
    project = tree(tmp_path)
    (project / "cache").mkdir()
    done = gradlint(project, "check", "--cache-dir", "cache", ".")
    assert done.returncode == 1 and b"warning" not in done.stderr
    assert (project / "cache" / "CACHEDIR.TAG").is_file()


def _only_entry(folder: Path) -> Path:
    [entry] = [p for p in folder.rglob("*.json")]
    return entry


@pytest.mark.parametrize(
    "stored",
    [
        {"a": 1},
        [1],
        "text",
        [{"code": "GL001", "path": "a.py", "line": None, "col": 9}],
        "well-formed, other path",
        "well-formed, line zero",
        "[" * 100_000,
    ],
)
def test_cache_entry_of_the_wrong_shape_or_contents_is_a_miss(
    tmp_path: Path, stored: object
) -> None:
    project = tree(tmp_path)
    first = gradlint(project, "check", ".")
    entry = _only_entry(project / ".gradlint_cache")
    good = json.loads(entry.read_text())
    if stored == "well-formed, other path":
        stored = [{**good[0], "path": "a.py"}]
    elif stored == "well-formed, line zero":
        stored = [{**good[0], "line": 0}]
    entry.write_text(
        stored if isinstance(stored, str) and stored.startswith("[") else json.dumps(stored)
    )
    again = gradlint(project, "check", ".")
    assert (again.returncode, again.stdout) == (first.returncode, first.stdout)
    assert_went_on(again)


def test_cache_key_holds_the_parser_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = Cache("unused")
    before = cache.key("a.py", b"x", Settings(), "findings")
    cache_module._parser_stamp.cache_clear()
    other = tmp_path / "libcst"  # another install of libcst: its files differ
    other.mkdir()
    (other / "__init__.py").write_text("")
    (other / "_version.py").write_text("__version__ = '0.0.0'\n")
    found = importlib.machinery.ModuleSpec("libcst", None, origin=str(other / "__init__.py"))
    monkeypatch.setattr(cache_module.importlib.util, "find_spec", lambda name: found)
    try:
        assert cache.key("a.py", b"x", Settings(), "findings") != before
    finally:
        cache_module._parser_stamp.cache_clear()


def test_cache_prunes_other_versions_and_unused_entries_once_a_day(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    old_key, new_key = "a" * 64, "b" * 64
    cache.put(old_key, [])
    cache.put(new_key, [])
    other = tmp_path / "cache" / "v0.0.1" / "cd" / ("e" * 62 + ".json")
    other.parent.mkdir(parents=True)
    other.write_text("[]")
    now = time.time()
    month_ago = now - (cache_module.MAX_AGE_DAYS + 1) * 24 * 3600
    os.utime(cache._entry(old_key), (month_ago, month_ago))
    cache.prune(now)
    assert not (tmp_path / "cache" / "v0.0.1").exists()
    assert cache.get(old_key, "x") is None and cache.get(new_key, "x") == []
    cache.put(old_key, [])
    os.utime(cache._entry(old_key), (month_ago, month_ago))
    cache.prune(now + 3600)  # pruned an hour ago: not again yet
    assert cache._entry(old_key).exists()
    cache.prune(now + 2 * 24 * 3600)
    assert not cache._entry(old_key).exists()


# --- special files: never opened, never waited for ---------------------------------------------


@posix_only
@pytest.mark.parametrize("named", [False, True])
def test_fifo_named_like_a_python_file(tmp_path: Path, named: bool) -> None:
    project = tree(tmp_path)
    os.mkfifo(project / "x.py")
    done = gradlint(project, "check", "--no-cache", *(["x.py", "stale.py"] if named else ["."]))
    assert done.returncode == 1
    assert "x.py:1:1: GL901 cannot read file: a FIFO, not a regular file" in lines(done)
    assert_went_on(done)


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_gitignore_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    project = tree(tmp_path)
    if kind == "fifo":
        os.mkfifo(project / ".gitignore")
    else:
        (project / ".gitignore").symlink_to("/dev/zero")
    done = gradlint(project, "check", "--no-cache", ".")
    assert done.returncode == 1
    assert any(
        line.startswith(".gitignore:1:1: GL901 cannot read .gitignore") for line in lines(done)
    )
    assert_went_on(done)


@posix_only
def test_source_linked_to_dev_zero(tmp_path: Path) -> None:
    project = tree(tmp_path)
    (project / "zero.py").symlink_to("/dev/zero")
    done = gradlint(project, "check", "--no-cache", ".")
    assert "zero.py:1:1: GL901 cannot read file: a character device, not a regular file" in lines(
        done
    )
    assert_went_on(done)


@posix_only
@pytest.mark.parametrize("names", [("a", "b"), ("a.py", "b.py")])
def test_symlink_cycle_entries(tmp_path: Path, names: tuple[str, str]) -> None:
    project = tree(tmp_path)
    first, second = names
    (project / first).symlink_to(second)
    (project / second).symlink_to(first)
    done = gradlint(project, "check", "--no-cache", ".")
    assert done.returncode == 1
    for name in names:
        assert f"{name}:1:1: GL901 cannot read file: Too many levels of symbolic links" in lines(
            done
        )
    assert_went_on(done)


@posix_only
def test_symlink_cycle_named_on_the_command_line(tmp_path: Path) -> None:
    project = tree(tmp_path)
    (project / "a.py").symlink_to("b.py")
    (project / "b.py").symlink_to("a.py")
    done = gradlint(project, "check", "--no-cache", "a.py", "stale.py")
    assert "a.py:1:1: GL901 cannot read file: Too many levels of symbolic links" in lines(done)
    assert_went_on(done)


# --- names that are not UTF-8 ------------------------------------------------------------------

BAD_NAME = b"caf\xe9-\xff.py"


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux")
@pytest.mark.parametrize(
    "args",
    [
        ["--format", "concise"],
        ["--format", "full"],
        ["--format", "json"],
        ["--format", "sarif"],
        ["--format", "github"],
        ["--format", "pylint"],
        ["--diff"],
    ],
    ids=lambda args: args[-1],
)
def test_file_name_that_is_not_utf8(tmp_path: Path, args: list[str]) -> None:
    project = tree(tmp_path)
    with open(os.path.join(os.fsencode(project), BAD_NAME), "w", encoding="utf-8") as handle:
        handle.write(STALE)
    done = gradlint(project, "check", "--no-cache", *args, ".")
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    if args[-1] == "json":
        paths = {os.fsencode(f["path"]) for f in json.loads(done.stdout)}
        assert paths == {BAD_NAME, b"stale.py"}
    elif args[-1] == "sarif":
        assert b'"uri": "caf%E9-%FF.py"' in done.stdout
    else:
        assert b"caf\\udce9-\\udcff.py" in done.stdout


# --- configuration that pathspec or the TOML parser refuses ------------------------------------


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('exclude = ["!"]', "`exclude`"),
        ('extend-exclude = ["\\\\"]', "`extend-exclude`"),
        ('[tool.gradlint.per-file-ignores]\n"!" = ["GL001"]', "`per-file-ignores.'!'`"),
        ("x = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_configuration_error_names_the_file_and_key(tmp_path: Path, table: str, key: str) -> None:
    project = tree(tmp_path)
    (project / "pyproject.toml").write_text(f"[tool.gradlint]\n{table}\n")
    done = gradlint(project, "check", "--no-cache", ".")
    assert done.returncode == 2
    [message] = done.stderr.decode().splitlines()
    assert message.startswith("Error: pyproject.toml: ") and key in message


@posix_only
def test_configuration_file_that_is_a_fifo(tmp_path: Path) -> None:
    project = tree(tmp_path)
    os.mkfifo(project / "config.toml")
    done = gradlint(project, "check", "--no-cache", "--config", "config.toml", ".")
    assert done.returncode == 2
    assert b"config.toml: cannot read: a FIFO, not a regular file" in done.stderr


# --- everything at once ------------------------------------------------------------------------


@posix_only
def test_every_bad_path_at_once(tmp_path: Path) -> None:
    project = tree(tmp_path)
    os.mkfifo(project / "fifo.py")
    (project / "cycle_a.py").symlink_to("cycle_b.py")
    (project / "cycle_b.py").symlink_to("cycle_a.py")
    (project / "zero.py").symlink_to("/dev/zero")
    (project / "gone.py").symlink_to("nowhere.py")
    (project / "sub").mkdir()
    os.mkfifo(project / "sub" / ".gitignore")
    (project / "sub" / "train.py").write_text(STALE)
    with open(os.path.join(os.fsencode(project), BAD_NAME), "w", encoding="utf-8") as handle:
        handle.write(STALE)
    (project / "deep.py").write_text("loss.backward()\nx = " + "-" * 20_000 + "1\n")
    (project / "huge.py").write_text("loss.backward()\n" + "x = 1\n" * 200_000)
    (project / "binary.py").write_bytes(b"\x00\x01loss.backward()")
    (project / "nb.ipynb").write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    done = gradlint(project, "check", "--no-cache", ".")
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    reported = {line.split(":")[0] for line in lines(done)}
    bad = {
        "fifo.py",
        "cycle_a.py",
        "cycle_b.py",
        "zero.py",
        "gone.py",
        os.path.join("sub", ".gitignore"),
        "caf\\udce9-\\udcff.py",
        "deep.py",
        "huge.py",
        "binary.py",
        "nb.ipynb",
    }
    assert bad <= reported, lines(done)
    assert_went_on(done)
    assert any(
        line.startswith(os.path.join("sub", "train.py") + ":7:5: GL001") for line in lines(done)
    )


# --- discovery over random trees ---------------------------------------------------------------

NAMES = ("a.py", "b.py", "c", "d.ipynb", ".gitignore")
KINDS = ("file", "folder", "link", "fifo")


@st.composite
def random_trees(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    """(path, kind, link target) entries; links may dangle, loop or point at folders."""
    entries = []
    folders = [""]
    for _ in range(draw(st.integers(1, 12))):
        parent = draw(st.sampled_from(folders))
        path = os.path.join(parent, draw(st.sampled_from(NAMES)))
        if any(path == p for p, _, _ in entries):
            continue
        kind = draw(st.sampled_from(KINDS))
        target = ""
        if kind == "folder":
            folders.append(path)
        elif kind == "link":
            target = draw(st.sampled_from([*(p for p, _, _ in entries), "missing", path, ".."]))
        entries.append((path, kind, target))
    return entries


def _build(root: Path, entries: list[tuple[str, str, str]]) -> None:
    for path, kind, target in entries:
        where = root / path
        if kind == "file":
            where.write_text(STALE if path.endswith(".py") else "*.tmp\n")
        elif kind == "folder":
            where.mkdir()
        elif kind == "fifo":
            os.mkfifo(where)
        else:
            where.symlink_to(os.path.relpath(root / target, where.parent))


@posix_only
@settings(
    max_examples=int(os.environ.get("GRADLINT_FUZZ_EXAMPLES", "0")) or 40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(entries=random_trees())
def test_discovery_over_random_trees_ends_and_reports_what_it_cannot_read(
    tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[str, str, str]]
) -> None:
    root = tmp_path_factory.mktemp("tree")
    _build(root, entries)
    (root / "stale.py").write_text(STALE)
    candidates = list(discover([str(root)]))
    readable = [c for c in candidates if c.problem is None]
    assert len({os.path.realpath(c.path) for c in readable}) == len(readable)  # each once
    assert any(c.path.endswith("stale.py") for c in readable)
    results = lint_files([Task(c.path, Settings()) for c in readable], Options(jobs=1, timeout=10))
    by_path = {r.path: r for r in results}
    stale = next(r for p, r in by_path.items() if p.endswith("stale.py"))
    assert [d.code for d in stale.diagnostics] == ["GL001"]
    for result in results:
        assert not result.internal_error, result.diagnostics
        if os.path.exists(result.path) and not os.path.isfile(result.path):  # a FIFO, a folder
            assert [d.code for d in result.diagnostics] == ["GL901"]


# --- notebooks that are not what they say ------------------------------------------------------

_CELL = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}", "invalid JSON: nested too deeply"),
        ('{"cells": [], "x": ' + "7" * 5000 + "}", "invalid JSON: Exceeds the limit"),
        (
            json.dumps({"cells": [{**_CELL, "source": "import torch\nloss.backward()\n"}]}).replace(
                "import torch", "import torch  # \\ud800"
            ),
            "cell 1: `source` holds a lone surrogate escape",
        ),
    ],
    ids=["deep JSON", "5000 digits", "lone surrogate"],
)
def test_notebook_that_cannot_be_read(tmp_path: Path, content: str, message: str) -> None:
    project = tree(tmp_path)
    (project / "nb.ipynb").write_text(content, encoding="utf-8")
    done = gradlint(project, "check", "--no-cache", ".")
    assert done.returncode == 1
    [line] = [x for x in lines(done) if x.startswith("nb.ipynb")]
    assert line.startswith(f"nb.ipynb:1:1: GL901 cannot read notebook: {message}"), line
    assert_went_on(done)
