"""The progress count: quiet in short runs, redrawn in place on a terminal and erased at the
end, plain lines in a log only when asked for (`--progress`), never in pipes by default."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from conftest import STALE

from gradlint.report import progress
from gradlint.report.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(total: int, terminal: bool, step: float) -> str:
    clock, written = Clock(), []
    shown = Progress(total, terminal, clock, written.append)
    for _ in range(total):
        clock.now += step
        shown()
    shown.close()
    return "".join(written)


def test_a_short_run_shows_nothing() -> None:
    assert run(5, terminal=True, step=0.1) == ""


def test_a_terminal_sees_one_line_redrawn_then_erased() -> None:
    out = run(40, terminal=True, step=0.05)  # 2 s in all: shown after the first second
    assert out.startswith("\rgradlint: 20/40 files checked\033[K")
    assert "\rgradlint: 40/40 files checked\033[K" in out  # the last count is always drawn
    assert out.endswith("\r\033[K") and "\n" not in out
    counts = out.count("files checked")
    assert 5 <= counts <= 21  # at most one redraw per 0.1 s


def test_a_log_gets_a_plain_line_every_few_seconds() -> None:
    out = run(30, terminal=False, step=1.0)
    lines = out.splitlines()
    assert lines[0] == "gradlint: 1/30 files checked"
    assert lines[-1] == "gradlint: 30/30 files checked"
    assert len(lines) <= 30 // progress.LOG_EVERY + 2
    assert "\r" not in out and "\033" not in out


def project(tmp_path: Path) -> Path:
    for index in range(3):
        (tmp_path / f"train{index}.py").write_text(STALE)
    return tmp_path


def check(cwd: Path, *args: str, stderr: int | None = subprocess.PIPE) -> str:
    # DELAY and LOG_EVERY at 0: every file is shown, however fast the run
    code = (
        "import sys; from gradlint.report import progress; "
        "progress.DELAY = progress.LOG_EVERY = progress.REDRAW = 0; "
        "from gradlint.cli import main; main(sys.argv[1:])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "check", "--no-cache", *args, "."],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        check=False,
    )
    return done.stderr or ""


def test_pipes_show_nothing_unless_asked(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    assert "gradlint: 3/3" not in check(cwd)
    asked = check(cwd, "--progress")
    assert "gradlint: 3/3 files checked\n" in asked


def test_a_terminal_shows_it_unless_quiet_or_refused(tmp_path: Path) -> None:
    cwd = project(tmp_path)

    def on_terminal(*args: str) -> str:
        leader, follower = pty.openpty()
        try:
            check(cwd, *args, stderr=follower)
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the other end is closed
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode()
        finally:
            os.close(leader)

    shown = on_terminal()
    assert "gradlint: 3/3 files checked\x1b[K" in shown and "\r\x1b[K" in shown
    assert "gradlint: 3/3" not in on_terminal("--quiet")
    assert "gradlint: 3/3" not in on_terminal("--no-progress")
