"""Bad input never crashes a run, hides another file's findings or corrupts a file.

Each bad input is linted together with `stale.py`, a file with a stale gradient, to show that
the run went on: its GL001 must be reported whatever happened to the bad file.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import textwrap
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import STALE

from gradlint import engine, fixes
from gradlint.batch import Options, Task, lint_files
from gradlint.cli import main
from gradlint.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"

STALE_FINDING = (
    "stale.py:7:5: GL001 [*] gradients accumulate across iterations because `opt.zero_grad()` is never called between updates: `loss.backward()`"
    " adds to the gradients that `opt.step()` (line 8) already applied, and `opt.step()` (line 8) applies the sum"
)
# a training loop whose fix inserts `opt.zero_grad()` as the loop's first statement
LOOP = [
    "import torch",
    "# caf\u00e9 au lait",
    "for x, y in batches:",
    "    loss = model(x)",
    "    loss.backward()",
    "    opt.step()",
]
INSERTED = "    opt.zero_grad()"


def run(
    tmp_path: Path, *args: str, files: dict[str, bytes | str] | None = None
) -> tuple[int, list[str]]:
    """`gradlint check` in `tmp_path` with `stale.py` beside `files`; exit code, output lines."""
    if not (tmp_path / "stale.py").exists():
        (tmp_path / "stale.py").write_text(STALE, encoding="utf-8")
    for name, content in (files or {}).items():
        target = tmp_path / name
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["check", "--no-cache", "-q", *args])
    finally:
        os.chdir(cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output.splitlines()


def findings(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{name}:")]


def assert_only(lines: list[str], name: str, expected: str) -> None:
    assert findings(lines, name) == [expected]
    assert STALE_FINDING in lines  # the other file was still linted


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_python2_print_in_training_loop(tmp_path: Path, jobs: str) -> None:
    source = 'for x in data:\n    loss = f(x)\n    loss.backward()\n    print "x"\n'
    code, lines = run(tmp_path, "--jobs", jobs, ".", files={"py2.py": source})
    assert code == 1
    [line] = findings(lines, "py2.py")
    # CPython's own message and position
    assert line == (
        "py2.py:4:5: GL900 cannot parse: Missing parentheses in call to 'print'. "
        "Did you mean print(...)?"
    )
    assert STALE_FINDING in lines


def test_half_typed_code(tmp_path: Path) -> None:
    source = "for x in data:\n    loss = f(x\n    loss.backward()\n"
    code, lines = run(tmp_path, ".", files={"half.py": source})
    assert code == 1
    [line] = findings(lines, "half.py")
    assert line == "half.py:2:13: GL900 cannot parse: '(' was never closed"
    assert STALE_FINDING in lines


def test_syntax_error_without_trigger_is_not_parsed(tmp_path: Path) -> None:
    """Deliberate: a file no rule can report on is never parsed, so its syntax is unchecked."""
    code, lines = run(tmp_path, ".", files={"broken.py": "def f(:\n    print 'x'\n"})
    assert code == 1
    assert findings(lines, "broken.py") == []
    assert lines == [STALE_FINDING]


def test_latin1_with_coding_line_lints_and_fix_keeps_bytes(tmp_path: Path) -> None:
    header = "# -*- coding: latin-1 -*-"
    data = "\n".join([header, *LOOP, ""]).encode("latin-1")
    code, lines = run(tmp_path, ".", files={"latin.py": data})
    assert code == 1
    assert findings(lines, "latin.py") == [
        "latin.py:6:5: GL001 [*] gradients accumulate across iterations because `opt.zero_grad()` is never called between updates: `loss.backward()`"
        " adds to the gradients that `opt.step()` (line 7) already applied, and `opt.step()` (line 7) applies the sum"
    ]
    code, lines = run(tmp_path, "--fix", ".", files={"latin.py": data})
    fixed = "\n".join([header, *LOOP[:3], INSERTED, *LOOP[3:], ""]).encode("latin-1")
    assert (tmp_path / "latin.py").read_bytes() == fixed
    assert b"caf\xe9" in fixed


def test_latin1_without_coding_line(tmp_path: Path) -> None:
    data = "\n".join(LOOP).encode("latin-1")
    code, lines = run(tmp_path, ".", files={"latin.py": data})
    assert code == 1
    assert_only(
        lines,
        "latin.py",
        "latin.py:2:6: GL901 cannot decode as utf-8: byte 0xe9 at line 2, column 6: "
        "invalid continuation byte",
    )


def test_unknown_coding_line(tmp_path: Path) -> None:
    data = b"# coding: klingon\n" + "\n".join(LOOP).encode()
    code, lines = run(tmp_path, ".", files={"klingon.py": data})
    assert code == 1
    assert_only(
        lines,
        "klingon.py",
        "klingon.py:1:1: GL901 bad encoding declaration: unknown encoding: klingon",
    )


def test_utf8_bom_lints_and_fix_keeps_it(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + "\n".join([*LOOP, ""]).encode()
    code, lines = run(tmp_path, ".", files={"bom.py": data})
    assert code == 1
    assert findings(lines, "bom.py") == [
        "bom.py:5:5: GL001 [*] gradients accumulate across iterations because `opt.zero_grad()` is never called between updates: `loss.backward()`"
        " adds to the gradients that `opt.step()` (line 6) already applied, and `opt.step()` (line 6) applies the sum"
    ]
    run(tmp_path, "--fix", "bom.py")
    expected = b"\xef\xbb\xbf" + "\n".join([*LOOP[:3], INSERTED, *LOOP[3:], ""]).encode()
    assert (tmp_path / "bom.py").read_bytes() == expected


@pytest.mark.parametrize(
    "endings",
    [["\r\n"] * 6, ["\n", "\r\n", "\r\n", "\n", "\r\n", "\n"]],
    ids=["crlf", "mixed"],
)
def test_line_endings_kept_by_fix(tmp_path: Path, endings: list[str]) -> None:
    original = "".join(line + end for line, end in zip(LOOP, endings)).encode()
    code, lines = run(tmp_path, ".", files={"loop.py": original})
    assert code == 1
    assert findings(lines, "loop.py")[0].startswith("loop.py:5:5: GL001 ")
    run(tmp_path, "--fix", "loop.py")
    fixed = (tmp_path / "loop.py").read_bytes()
    # every original line keeps its ending; the inserted line uses one of the file's endings
    kept = fixed.splitlines(keepends=True)
    assert kept[3] in (INSERTED.encode() + b"\n", INSERTED.encode() + b"\r\n")
    assert b"".join(kept[:3] + kept[4:]) == original


def test_nul_bytes(tmp_path: Path) -> None:
    data = b"import torch\x00\nloss.backward()\n"
    code, lines = run(tmp_path, ".", files={"nul.py": data})
    assert code == 1
    assert_only(
        lines, "nul.py", "nul.py:1:1: GL901 file contains NUL bytes; it is not Python source"
    )


def test_binary_file_named_py(tmp_path: Path) -> None:
    data = bytes(range(256)) * 16  # a NUL and every other byte
    code, lines = run(tmp_path, ".", files={"blob.py": data})
    assert code == 1
    assert_only(
        lines, "blob.py", "blob.py:1:1: GL901 file contains NUL bytes; it is not Python source"
    )


def test_binary_without_nul(tmp_path: Path) -> None:
    data = b"loss.backward()\n" + bytes(range(128, 256)) * 4
    code, lines = run(tmp_path, ".", files={"blob.py": data})
    assert code == 1
    assert_only(
        lines,
        "blob.py",
        "blob.py:2:1: GL901 cannot decode as utf-8: byte 0x80 at line 2, column 1: "
        "invalid start byte",
    )


def test_empty_file(tmp_path: Path) -> None:
    code, lines = run(tmp_path, ".", files={"empty.py": b""})
    assert code == 1
    assert lines == [STALE_FINDING]


def test_file_larger_than_the_limit(tmp_path: Path) -> None:
    line = b"loss.backward()  # a generated training log, not code\n"
    with open(tmp_path / "huge.py", "wb") as handle:
        for _ in range(50 * 1024 * 1024 // (len(line) * 1024) + 1):
            handle.write(line * 1024)
    assert (tmp_path / "huge.py").stat().st_size > 50 * 1024 * 1024
    code, lines = run(tmp_path, ".")
    assert code == 1
    assert_only(
        lines,
        "huge.py",
        "huge.py:1:1: GL902 not analysed: larger than the 10 MB gradlint analyses",
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("bracket", ["()", "[]", "{}"])
def test_ten_thousand_nested_brackets(tmp_path: Path, jobs: str, bracket: str) -> None:
    """Deeper than CPython allows; libcst's native parser would overflow its stack (a crash)."""
    opening, closing = bracket
    source = "loss.backward()\nx = " + opening * 10_000 + "1" + closing * 10_000 + "\n"
    code, lines = run(tmp_path, "--jobs", jobs, ".", files={"deep.py": source})
    assert code == 1
    assert_only(
        lines, "deep.py", "deep.py:2:205: GL900 cannot parse: nesting too deep for the parser"
    )


def test_brackets_in_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    source = "\n".join([*LOOP, f"note = '{'(' * 300}'", ""])
    code, lines = run(tmp_path, ".", files={"loop.py": source})
    assert findings(lines, "loop.py")[0].startswith("loop.py:5:5: GL001 ")


def test_two_hundred_nested_brackets_are_analysed(tmp_path: Path) -> None:
    source = "\n".join([*LOOP, "x = " + "(" * 200 + "1" + ")" * 200, ""])
    code, lines = run(tmp_path, ".", files={"loop.py": source})
    assert findings(lines, "loop.py")[0].startswith("loop.py:5:5: GL001 ")


def test_thousand_nested_blocks(tmp_path: Path) -> None:
    body = "".join(" " * depth + "if x:\n" for depth in range(1200)) + " " * 1200 + "pass\n"
    code, lines = run(tmp_path, ".", files={"blocks.py": "loss.backward()\n" + body})
    assert code == 1
    assert_only(
        lines,
        "blocks.py",
        "blocks.py:102:1: GL900 cannot parse: too many levels of indentation",
    )


def test_deep_but_valid_nesting_is_clean_or_too_deep(tmp_path: Path) -> None:
    """Ninety nested blocks (CPython's limit is 100): analysed, or GL900 too deep, never GL999."""
    body = "".join("    " * depth + "with ctx:\n" for depth in range(90))
    source = "\n".join(LOOP[:3]) + "\n" + textwrap.indent(body + "pass\n", "    ")
    source += "\n".join(LOOP[3:]) + "\n"
    code, lines = run(tmp_path, ".", files={"blocks.py": source})
    assert code == 1
    assert all(" GL999 " not in line for line in lines)
    assert STALE_FINDING in lines


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "secret.py").write_text("\n".join(LOOP), encoding="utf-8")
    (tmp_path / "secret.py").chmod(0)
    try:
        code, lines = run(tmp_path, ".")
    finally:
        (tmp_path / "secret.py").chmod(0o644)
    assert code == 1
    assert_only(lines, "secret.py", "secret.py:1:1: GL901 cannot read file: Permission denied")


def test_unreadable_path_given_to_the_batch(tmp_path: Path) -> None:
    """What a file that cannot be opened looks like, also as root: a folder where a file was."""
    (tmp_path / "folder.py").mkdir()
    (tmp_path / "stale.py").write_text(STALE, encoding="utf-8")
    paths = [str(tmp_path / "folder.py"), str(tmp_path / "stale.py")]
    results = lint_files([Task(p, Settings()) for p in paths], Options())
    assert [(d.code, d.line, d.col, d.message) for d in results[0].diagnostics] == [
        ("GL901", 1, 1, "cannot read file: Is a directory")
    ]
    assert [d.code for d in results[1].diagnostics] == ["GL001"]


def test_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "gone.py").symlink_to(tmp_path / "nowhere.py")
    code, lines = run(tmp_path, ".")
    assert code == 1
    assert_only(lines, "gone.py", "gone.py:1:1: GL901 cannot read file: No such file or directory")


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "self").symlink_to(tmp_path / "pkg", target_is_directory=True)
    (tmp_path / "pkg" / "train.py").write_text(STALE, encoding="utf-8")
    code, lines = run(tmp_path, ".")
    assert code == 1
    # linted once, under its first name
    assert findings(lines, os.path.join("pkg", "train.py")) == [
        STALE_FINDING.replace("stale.py", os.path.join("pkg", "train.py"))
    ]
    assert STALE_FINDING in lines and len(lines) == 2


def test_directory_named_like_a_python_file(tmp_path: Path) -> None:
    (tmp_path / "x.py").mkdir()
    (tmp_path / "x.py" / "inner.py").write_text("", encoding="utf-8")
    code, lines = run(tmp_path, "x.py", "stale.py")
    assert code == 1
    assert lines == [STALE_FINDING]


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    code, lines = run(tmp_path, "missing.py", "stale.py")
    assert code == 1
    assert_only(lines, "missing.py", "missing.py:1:1: GL901 no such file or directory")


def test_file_deleted_during_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradlint import cli

    found = cli.discover

    def discover_then_delete(*args, **kwargs):
        for candidate in found(*args, **kwargs):
            yield candidate
            if candidate.path == "vanishing.py":
                os.unlink(candidate.path)  # gone between discovery and reading

    monkeypatch.setattr(cli, "discover", discover_then_delete)
    code, lines = run(tmp_path, ".", files={"vanishing.py": "\n".join(LOOP)})
    assert code == 1
    assert_only(
        lines, "vanishing.py", "vanishing.py:1:1: GL901 cannot read file: No such file or directory"
    )


def test_vanished_path_given_to_the_batch(tmp_path: Path) -> None:
    (tmp_path / "stale.py").write_text(STALE, encoding="utf-8")
    tasks = [
        Task(str(tmp_path / "gone.py"), Settings()),
        Task(str(tmp_path / "stale.py"), Settings()),
    ]
    for jobs in (1, 2):
        results = lint_files(tasks, Options(jobs=jobs))
        assert [(d.code, d.message) for d in results[0].diagnostics] == [
            ("GL901", "cannot read file: No such file or directory")
        ]
        assert [d.code for d in results[1].diagnostics] == ["GL001"]


def _failing_analysis(monkeypatch: pytest.MonkeyPatch, marker: str, failure) -> None:
    analyse = engine.analyse

    def analyse_or_fail(text: str, settings: Settings | None = None) -> engine.Analysis:
        if marker in text:
            failure()
        return analyse(text, settings)

    monkeypatch.setattr(engine, "analyse", analyse_or_fail)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str) -> None:
    def fail() -> None:
        raise KeyError("boom")

    _failing_analysis(monkeypatch, "# BOOM", fail)
    source = "\n".join([*LOOP, "# BOOM", ""])
    code, lines = run(tmp_path, "--jobs", jobs, ".", files={"boom.py": source})
    assert code == 2
    assert_only(
        lines,
        "boom.py",
        "boom.py:1:1: GL999 internal error (KeyError: 'boom'); please report this file",
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_worker_that_dies_loses_only_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    """A crash in native code ends the worker process; the other files are still linted."""
    _failing_analysis(monkeypatch, "# DIE", lambda: os._exit(1))
    files = {"a_dies.py": "\n".join([*LOOP, "# DIE", ""])}
    for index in range(4):
        files[f"z{index}.py"] = STALE
    code, lines = run(tmp_path, "--jobs", jobs, ".", files=files)
    assert code == 2
    assert findings(lines, "a_dies.py") == [
        "a_dies.py:1:1: GL999 internal error (the worker process linting this file died); "
        "please report this file"
    ]
    for index in range(4):
        assert findings(lines, f"z{index}.py") == [
            STALE_FINDING.replace("stale.py", f"z{index}.py")
        ]
    assert STALE_FINDING in lines


def test_time_limit_turned_into_another_error_is_still_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # native code that calls back into Python (libcst's parser) may wrap the time limit's
    # exception in one of its own: that is a file past its time, not an internal error
    def slow_then_wrapped() -> None:
        try:
            time.sleep(60)
        except BaseException as error:
            raise RuntimeError("wrapped by native code") from error

    _failing_analysis(monkeypatch, "# SLOW", slow_then_wrapped)
    files = {"slow.py": "\n".join([*LOOP, "# SLOW", ""]), "z_after.py": STALE}
    code, lines = run(tmp_path, "--timeout", "0.5", ".", files=files)
    assert code == 1, lines
    assert findings(lines, "slow.py") == [
        "slow.py:1:1: GL902 not analysed: took longer than the 0.5 s time limit (--timeout)"
    ]
    assert findings(lines, "z_after.py") == [STALE_FINDING.replace("stale.py", "z_after.py")]


def test_time_limit_stops_a_parse_stuck_in_native_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # native code that holds the interpreter's lock never returns to Python, so the worker
    # cannot even see its own time limit: the main process kills it
    _failing_analysis(monkeypatch, "# STUCK", lambda: ctypes.PyDLL(None).sleep(60))
    files = {"a_stuck.py": "\n".join([*LOOP, "# STUCK", ""]), "z_after.py": STALE}
    code, lines = run(tmp_path, "--timeout", "1", ".", files=files)
    assert code == 1
    assert findings(lines, "a_stuck.py") == [
        "a_stuck.py:1:1: GL902 not analysed: took longer than the 1 s time limit (--timeout)"
    ]
    assert findings(lines, "z_after.py") == [STALE_FINDING.replace("stale.py", "z_after.py")]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str) -> None:
    _failing_analysis(monkeypatch, "# SLOW", lambda: time.sleep(60))
    source = "\n".join([*LOOP, "# SLOW", ""])
    files = {"slow.py": source, "z_after.py": STALE}
    code, lines = run(tmp_path, "--jobs", jobs, "--timeout", "0.5", ".", files=files)
    assert code == 1
    assert_only(
        lines,
        "slow.py",
        "slow.py:1:1: GL902 not analysed: took longer than the 0.5 s time limit (--timeout)",
    )
    assert findings(lines, "z_after.py") == [STALE_FINDING.replace("stale.py", "z_after.py")]


# --- fix safety --------------------------------------------------------------------------------


def _loop_file(tmp_path: Path) -> Path:
    path = tmp_path / "loop.py"
    path.write_text("\n".join([*LOOP, ""]), encoding="utf-8")
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".gradlint-"))


def test_full_disk_stops_the_fix_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _loop_file(tmp_path)
    original = path.read_bytes()

    def full_disk(descriptor: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full_disk, raising=False)
    code, lines = run(tmp_path, "--fix", "loop.py")
    assert code == 2
    assert "loop.py: not fixed: cannot write the file: No space left on device" in lines
    assert findings(lines, "loop.py")[0].startswith("loop.py:5:5: GL001 ")  # still there
    assert path.read_bytes() == original


def test_ctrl_c_while_writing_leaves_the_whole_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _loop_file(tmp_path)
    fsync = os.fsync

    def interrupted_fsync(descriptor: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # held until the file is whole
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    code, lines = run(tmp_path, "--fix", "loop.py")
    assert code == 130  # 128 + SIGINT, as a shell reports Ctrl-C
    assert path.read_text(encoding="utf-8").splitlines()[3] == INSERTED
    assert _leftovers(tmp_path) == []


def test_fix_keeps_permissions(tmp_path: Path) -> None:
    path = _loop_file(tmp_path)
    path.chmod(0o640)
    code, _ = run(tmp_path, "--fix", "loop.py")
    assert code == 0
    assert INSERTED in path.read_text(encoding="utf-8")
    assert path.stat().st_mode & 0o7777 == 0o640
    assert _leftovers(tmp_path) == []


def test_fix_writes_nothing_when_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "clean.py"
    shutil.copy(FIXTURES / "clean" / "standard_zero_grad_at_top.py", path)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.stat()
    code, _ = run(tmp_path, "--fix", "clean.py")
    assert code == 0
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_fix_skipped_when_the_file_changed_since_it_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _loop_file(tmp_path)
    edited = "\n".join([*LOOP, "print('edited meanwhile')", ""])
    write = fixes.write_in_place

    def edit_then_write(target: str, original: bytes, data: bytes) -> str | None:
        Path(target).write_text(edited, encoding="utf-8")  # the user saves in the editor
        return write(target, original, data)

    monkeypatch.setattr(fixes, "write_in_place", edit_then_write)
    code, lines = run(tmp_path, "--fix", "loop.py")
    assert path.read_text(encoding="utf-8") == edited
    assert code == 2
    assert "loop.py: not fixed: the file changed since it was read" in lines
    assert findings(lines, "loop.py")[0].startswith("loop.py:5:5: GL001 ")
    assert _leftovers(tmp_path) == []


def _break_every_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every edit, one at a time or all at once, yields text that does not parse."""
    broken = types.SimpleNamespace(code="for x in (:\n")
    monkeypatch.setattr(fixes, "apply", lambda module, edit: broken)
    monkeypatch.setattr(fixes, "apply_all", lambda module, edits: broken)


def test_fix_whose_result_does_not_parse_is_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _loop_file(tmp_path)
    original = path.read_bytes()
    _break_every_edit(monkeypatch)
    code, lines = run(tmp_path, "--fix", "loop.py")
    assert code == 1
    assert findings(lines, "loop.py")[0].startswith("loop.py:5:5: GL001 ")
    assert path.read_bytes() == original


def test_engine_rejects_fix_whose_result_does_not_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    _break_every_edit(monkeypatch)
    text = "\n".join([*LOOP, ""])
    assert engine.fix_text(text, Settings()) == (text, 0)


def test_second_fix_changes_nothing(tmp_path: Path) -> None:
    work = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, work)
    run(work, "--fix", ".")
    first = _snapshot(work)
    code, lines = run(work, "--fix", ".")
    assert _snapshot(work) == first
    assert all(" GL9" not in line for line in lines)


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime, the cache folder aside."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".gradlint_cache" not in p.parts
    }


def test_check_without_fix_never_writes(tmp_path: Path) -> None:
    work = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, work)
    before = _snapshot(work)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        for args in (["."], ["--no-cache", "."], ["--jobs", "2", "."], ["--format", "full", "."]):
            CliRunner().invoke(main, ["check", *args])
    finally:
        os.chdir(cwd)
    assert _snapshot(work) == before


def test_findings_same_with_and_without_cache_and_jobs(tmp_path: Path) -> None:
    work = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, work)
    outputs = {}
    cwd = os.getcwd()
    os.chdir(work)
    try:
        runs = {
            "no cache, 1 job": ["--no-cache", "--jobs", "1"],
            "no cache, 2 jobs": ["--no-cache", "--jobs", "2"],
            "cold cache, 2 jobs": ["--jobs", "2"],
            "warm cache, 1 job": ["--jobs", "1"],
            "warm cache, 2 jobs": ["--jobs", "2"],
        }
        for name, args in runs.items():
            result = CliRunner().invoke(main, ["check", "-q", "--format", "concise", *args, "."])
            outputs[name] = (result.exit_code, result.output)
    finally:
        os.chdir(cwd)
    assert (work / ".gradlint_cache" / "CACHEDIR.TAG").is_file()
    expected = outputs["no cache, 1 job"]
    assert expected[0] == 1 and expected[1].count(" GL001 ") > 10
    for name, output in outputs.items():
        assert output == expected, name
