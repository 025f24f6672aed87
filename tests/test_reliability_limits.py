"""Limits: deep nesting, time, size, jobs, exit codes, lines as Python counts them. Whatever the
input and the mode, gradlint reports a finding (GL900, GL902) or analyses the file: it never
crashes, hangs or lets a scope pass in silence.

Cases that could crash the interpreter run gradlint in a subprocess; each tree holds `stale.py`
beside the bad file, whose GL001 must be reported, so we know the run went on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import STALE, CliRunner

from gradlint import batch, engine
from gradlint.analysis import flow
from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import lint_source
from gradlint.server import lint_document

STALE_FINDING = "stale.py:7:5: GL001 "
# a loop with a stale gradient (GL001 at 4:5) to which a case appends its own line
LOOP = (
    "import torch\nfor x, y in batches:\n    loss = model(x)\n    loss.backward()\n    opt.step()\n"
)
DEEP = {
    "unary minus": "x = " + "-" * 20_000 + "1\n",
    "not": "x = " + "not " * 20_000 + "1\n",
    "lambda": "x = " + "lambda: " * 20_000 + "1\n",
}
MODES = {
    "in-process": ["-j", "1", "--timeout", "0"],
    "workers": ["-j", "2"],
}


def gradlint(
    cwd: Path, *args: str, stdin: bytes | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "gradlint", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "stale.py").write_text(STALE, encoding="utf-8")
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def findings(done: subprocess.CompletedProcess[str], name: str) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith(f"{name}:")]


def assert_went_on(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert any(line.startswith(STALE_FINDING) for line in done.stdout.splitlines()), done.stdout


def in_process(tmp_path: Path, *args: str, input: str | None = None) -> tuple[int, list[str]]:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["check", "--no-cache", "-q", *args], input=input)
    finally:
        os.chdir(cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout.splitlines()


# --- deep nesting: GL900 in every mode, never a crash ------------------------------------------


@pytest.mark.parametrize("mode", MODES, ids=list(MODES))
@pytest.mark.parametrize("kind", DEEP, ids=list(DEEP))
def test_deep_nesting_is_a_syntax_error_in_every_mode(tmp_path: Path, kind: str, mode: str) -> None:
    project = tree(tmp_path, {"deep.py": "loss.backward()\n" + DEEP[kind]})
    done = gradlint(project, "check", "--no-cache", *MODES[mode], ".")
    assert done.returncode == 1, done.stderr  # a crash in-process would be -11
    assert findings(done, "deep.py") == [
        "deep.py:1:1: GL900 cannot parse: nesting too deep for the parser"
    ]
    assert_went_on(done)


@pytest.mark.parametrize("kind", DEEP, ids=list(DEEP))
def test_deep_nesting_on_standard_input(tmp_path: Path, kind: str) -> None:
    source = ("loss.backward()\n" + DEEP[kind]).encode()
    for mode in MODES.values():
        done = gradlint(tmp_path, "check", "--no-cache", *mode, "-", stdin=source)
        assert done.returncode == 1, done.stderr
        assert done.stdout.startswith("-:1:1: GL900 cannot parse: nesting too deep"), done.stdout


def test_deep_nesting_in_the_language_server() -> None:
    """In a process of its own: a crash here would end the editor's server."""
    script = textwrap.dedent(
        f"""
        from gradlint.config import Settings
        from gradlint.server import lint_document
        for text in {list(DEEP.values())!r}:
            [found] = lint_document("deep.py", "loss.backward()\\n" + text, Settings())
            print(found.code, found.message)
        """
    )
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["GL900 cannot parse: nesting too deep for the parser"] * 3


@pytest.mark.parametrize(
    "line",
    [
        "y = " + "-" * 1500 + "1",
        "y = " + "not " * 1500 + "1",
        "y = " + "lambda: " * 800 + "1",
        "y = " + " + ".join(["a"] * 1500),
        "y = (" + " ".join(["'a'"] * 1500) + ")",
    ],
    ids=["unary minus", "not", "lambda", "plus", "joined strings"],
)
def test_deep_nesting_valid_for_cpython_is_analysed(tmp_path: Path, line: str) -> None:
    (tmp_path / "loop.py").write_text(LOOP + "    " + line + "\n", encoding="utf-8")
    code, lines = in_process(tmp_path, "-j", "1", "--timeout", "0", "loop.py")
    assert code == 1
    assert [x.split(" ")[:2] for x in lines] == [["loop.py:4:5:", "GL001"]]


@pytest.mark.parametrize(
    ("failure", "why"),
    [(RecursionError, "nesting too deep"), (flow.TooComplex, "too many paths")],
    ids=["recursion", "too complex"],
)
def test_scope_the_path_analysis_gives_up_on_is_reported(
    monkeypatch: pytest.MonkeyPatch, failure: type[Exception], why: str
) -> None:
    """Such a scope's findings used to vanish and the file passed."""

    def gives_up(*args: object) -> None:
        raise failure

    monkeypatch.setattr(flow.Flow, "_block", gives_up)
    source = "import torch\n\n\ndef train():\n" + textwrap.indent(LOOP, "    ")
    result = lint_source("train.py", source.encode(), Settings())
    assert [(d.code, d.line, d.col, d.message) for d in result.diagnostics] == [
        ("GL902", 4, 1, f"not analysed: the function `train` is beyond the path analysis ({why})")
    ]
    source = LOOP.replace("for", "# module level\nfor")
    [found] = lint_source("top.py", source.encode(), Settings()).diagnostics
    assert (
        found.message == f"not analysed: the module's top level is beyond the path analysis ({why})"
    )


def test_long_elif_chain_is_analysed(tmp_path: Path) -> None:
    """~310 elif branches overflowed the analysis' recursion and the file passed; on the
    analysis thread's stack they are analysed."""
    branches = "    if x == 0:\n        pass\n" + "".join(
        f"    elif x == {i}:\n        pass\n" for i in range(1, 400)
    )
    source = "import torch\nfor x, y in batches:\n" + branches + LOOP.split("\n", 2)[2]
    (tmp_path / "chain.py").write_text(source, encoding="utf-8")
    for mode in MODES.values():
        code, lines = in_process(tmp_path, *mode, "chain.py")
        assert (code, [x.split(" ")[1] for x in lines]) == (1, ["GL001"])


# --- lines as Python counts them ---------------------------------------------------------------


@pytest.mark.parametrize("oddity", ["\f", "# caf\u00e9 \u2028 au lait", "x = 1  # \x1c"])
def test_noqa_applies_to_the_line_python_reports(oddity: str) -> None:
    """str.splitlines breaks at form feeds, U+2028 and others, Python does not."""
    source = f"import torch\n{oddity}\nfor x, y in batches:\n    loss = model(x)\n"
    source += "    loss.backward()  # noqa: GL001\n    opt.step()\n"
    result = lint_source("noqa.py", source.encode(), Settings())
    assert result.diagnostics == []
    unsuppressed = source.replace("  # noqa: GL001", "")
    [finding] = lint_source("noqa.py", unsuppressed.encode(), Settings()).diagnostics
    assert (finding.code, finding.line) == ("GL001", 5)


# --- GL900 at the position of its message ------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("if x:\n\tpass\n        pass\n", "3:1: GL900 cannot parse: inconsistent use of tabs"),
        ("x = 1\ny = 'abc\n", "2:5: GL900 cannot parse: unterminated string literal"),
        ("x = 1 +\n", "1:8: GL900 cannot parse: invalid syntax"),
        ("x = (1,\n", "1:5: GL900 cannot parse: '(' was never closed"),
    ],
    ids=["TabError", "tokenizer", "end of line", "unclosed"],
)
def test_syntax_error_at_its_own_position(tmp_path: Path, source: str, expected: str) -> None:
    (tmp_path / "bad.py").write_text("loss.backward()\n" * 0 + source + "# backward()\n")
    code, lines = in_process(tmp_path, "bad.py")
    assert code == 1
    [line] = lines
    assert line.startswith("bad.py:" + expected), line
    row, col = (int(n) for n in line.split(":")[1:3])
    text_lines = (source + "# backward()\n").split("\n")
    assert 1 <= col <= len(text_lines[row - 1]) + 1


def test_valid_python_libcst_cannot_read_is_not_a_syntax_error(tmp_path: Path) -> None:
    tree(tmp_path, {"annotated.py": "import torch\n(x): int = 1\nloss.backward()\n"})
    code, lines = in_process(tmp_path, ".")
    assert code == 1
    [line] = [x for x in lines if x.startswith("annotated.py")]
    assert line.startswith("annotated.py:2:6: GL902 not analysed: gradlint's parser (libcst)")
    assert any(x.startswith(STALE_FINDING) for x in lines)


# --- time, size, jobs ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["3000000", "1e10", "inf"])
def test_huge_timeout_means_no_limit(tmp_path: Path, value: str) -> None:
    tree(tmp_path, {})
    for jobs in ("1", "2"):
        code, lines = in_process(tmp_path, "--timeout", value, "-j", jobs, ".")
        assert code == 1 and lines[0].startswith(STALE_FINDING)


def test_nan_timeout_is_a_usage_error(tmp_path: Path) -> None:
    tree(tmp_path, {})
    code, _ = in_process(tmp_path, "--timeout", "nan", ".")
    assert code == 2


def _slow_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    analyse = engine.analyse

    def slow(text: str, settings: Settings | None = None, *args: Any) -> engine.Analysis:
        if "# SLOW" in text:
            while True:  # Python instructions: the time limit's exception gets through
                time.sleep(0.01)
        return analyse(text, settings, *args)

    monkeypatch.setattr(engine, "analyse", slow)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_standard_input_has_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    _slow_analysis(monkeypatch)
    started = time.monotonic()
    code, lines = in_process(tmp_path, "--timeout", "0.5", "-j", jobs, "-", input=LOOP + "# SLOW\n")
    assert time.monotonic() - started < 10
    assert (code, lines) == (
        1,
        ["-:1:1: GL902 not analysed: took longer than the 0.5 s time limit (--timeout)"],
    )


def test_language_server_has_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_analysis(monkeypatch)
    started = time.monotonic()
    [found] = lint_document("slow.py", LOOP + "# SLOW\n", Settings(), timeout=0.5)
    assert time.monotonic() - started < 5
    assert (found.code, found.message) == (
        "GL902",
        "not analysed: took longer than the 0.5 s time limit",
    )


def test_source_larger_than_what_is_parsed(tmp_path: Path) -> None:
    big = LOOP + "x = 1\n" * 200_000  # 1.2 million characters, under the 10 MB read limit
    tree(tmp_path, {"big.py": big})
    code, lines = in_process(tmp_path, ".")
    assert code == 1
    assert (
        "big.py:1:1: GL902 not analysed: larger than the 1,000,000 characters gradlint parses"
        in (lines)
    )
    assert any(x.startswith(STALE_FINDING) for x in lines)


def test_jobs_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    lint_files = batch.lint_files

    def spy(
        tasks: list[batch.Task], options: batch.Options, done: Callable[[], None] | None = None
    ) -> list[engine.FileResult]:
        seen.append(options.jobs)
        return lint_files(tasks, options, done)

    monkeypatch.setattr("gradlint.cli.lint_files", spy)
    tree(tmp_path, {})
    code, _ = in_process(tmp_path, "-j", "300", ".")
    assert code == 1 and seen == [batch.MAX_JOBS_PER_CORE * batch.default_jobs()]


# --- exit codes --------------------------------------------------------------------------------


def test_ctrl_c_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> list[engine.FileResult]:
        raise KeyboardInterrupt

    monkeypatch.setattr("gradlint.cli.lint_files", interrupted)
    tree(tmp_path, {})
    code, _ = in_process(tmp_path, ".")
    assert code == 130


def test_exit_zero_is_about_findings_not_internal_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in ruff: --exit-zero turns findings into exit 0; gradlint failing is still exit 2."""
    tree(tmp_path, {})
    assert in_process(tmp_path, "--exit-zero", ".")[0] == 0
    analyse = engine.analyse

    def broken(text: str, settings: Settings | None = None) -> engine.Analysis:
        if "# BOOM" in text:
            raise KeyError("boom")
        return analyse(text, settings)

    monkeypatch.setattr(engine, "analyse", broken)
    (tmp_path / "boom.py").write_text(LOOP + "# BOOM\n")
    code, lines = in_process(tmp_path, "--exit-zero", "-j", "1", "--timeout", "0", ".")
    assert code == 2
    assert any(" GL999 " in x for x in lines) and any(x.startswith(STALE_FINDING) for x in lines)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_report_to_a_full_device(tmp_path: Path) -> None:
    tree(tmp_path, {})
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "gradlint", "check", "--no-cache", "."],
            cwd=tmp_path,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "gradlint: cannot write the report: [Errno 28] No space left on device"
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX descriptors")
def test_report_to_a_closed_stdout(tmp_path: Path) -> None:
    tree(tmp_path, {})
    done = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--no-cache", "."],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(1),  # noqa: PLW1509 -- the point of the test
    )
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


# --- workers end with the main process ---------------------------------------------------------

_HANGING_RUN = textwrap.dedent(
    """
    import sys, time
    from gradlint import engine, cli
    def hang(text, settings=None):
        while True:
            time.sleep(0.1)
    engine.analyse = hang
    sys.argv = ["gradlint", "check", "--no-cache", "-j", "2", "--timeout", "0", sys.argv[1]]
    cli.main()
    """
)


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_end_with_the_main_process_and_release_its_pipe(
    tmp_path: Path, how: signal.Signals
) -> None:
    """`gradlint check . | cat` cancelled: the reader must see the end of its pipe."""
    for index in range(2):
        (tmp_path / f"t{index}.py").write_text(LOOP, encoding="utf-8")
    main_process = subprocess.Popen(
        [sys.executable, "-c", _HANGING_RUN, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(workers := _children(main_process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) == 2
    main_process.send_signal(how)
    assert main_process.stdout is not None
    main_process.stdout.read()  # returns only when no process holds the pipe any more
    main_process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
