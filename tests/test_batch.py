"""How a run schedules its files: the largest first, each handed to a worker as soon as it is
read, results in the order the files were given, and a worker killed or timed out costing only
its own file."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import STALE

from gradlint import batch
from gradlint.config import Settings


def _files(tmp_path: Path, sizes: list[int]) -> list[batch.Task]:
    """Training scripts padded with comments to about `sizes` bytes, in that order."""
    tasks = []
    for number, size in enumerate(sizes):
        path = tmp_path / f"train_{number}.py"
        path.write_text(STALE + "#" * max(0, size - len(STALE)) + "\n")
        tasks.append(batch.Task(str(path), Settings()))
    return tasks


def test_the_largest_files_are_analysed_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = _files(tmp_path, [100, 5000, 800, 20000, 3000])
    analysed: list[str] = []
    lint_one = batch._lint_one

    def recording(path: str, *rest):  # type: ignore[no-untyped-def]
        analysed.append(Path(path).name)
        return lint_one(path, *rest)

    monkeypatch.setattr(batch, "_lint_one", recording)
    batch.lint_files(tasks, batch.Options(jobs=1, timeout=None))
    assert analysed == ["train_3.py", "train_1.py", "train_4.py", "train_2.py", "train_0.py"]


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_results_come_in_the_order_given(tmp_path: Path, jobs: int) -> None:
    tasks = _files(tmp_path, [100, 5000, 800, 20000, 3000])
    tasks.insert(2, batch.Task(str(tmp_path / "missing.py"), Settings()))
    (tmp_path / "no_training.py").write_text("print('hello')\n")
    tasks.append(batch.Task(str(tmp_path / "no_training.py"), Settings()))
    seen = []
    results = batch.lint_files(tasks, batch.Options(jobs=jobs), lambda: seen.append(1))
    assert [r.path for r in results] == [t.path for t in tasks]
    assert len(seen) == len(tasks)
    codes = [[d.code for d in r.diagnostics] for r in results]
    assert codes[2] == ["GL901"]  # the missing file, reported in its place
    assert codes[-1] == []
    assert all("GL001" in found for found in codes[:2] + codes[3:-1])


def test_a_timed_out_file_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = _files(tmp_path, [100, 200, 300])
    monkeypatch.setattr(batch, "GRACE_SECONDS", 0.0)
    slow = tasks[1].path
    lint_one = batch._lint_one

    def hanging(path: str, *rest):  # type: ignore[no-untyped-def]
        if path == slow:
            time.sleep(60)  # in the worker: killed at the limit
        return lint_one(path, *rest)

    monkeypatch.setattr(batch, "_lint_one", hanging)
    results = batch.lint_files(tasks, batch.Options(jobs=2, timeout=0.5))
    codes = [[d.code for d in r.diagnostics] for r in results]
    assert codes[1] == ["GL902"] and "time limit" in results[1].diagnostics[0].message
    assert "GL001" in codes[0] and "GL001" in codes[2]


def test_writing_a_fix_slowly_does_not_time_out_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that answered while the main process wrote another file's fix (a slow file
    system) is not past its time limit: its result is taken, not thrown away as GL902."""
    from gradlint import fixes

    monkeypatch.setattr(batch, "GRACE_SECONDS", 0.5)
    tasks = _files(tmp_path, [2000, 1000])
    write = fixes.write_in_place

    def slow_write(path: str, original: bytes, data: bytes) -> str | None:
        time.sleep(3)
        return write(path, original, data)

    monkeypatch.setattr(fixes, "write_in_place", slow_write)
    results = batch.lint_files(tasks, batch.Options(fix=True, jobs=2, timeout=1.0))
    assert all(r.written and not r.diagnostics for r in results), [r.diagnostics for r in results]


def test_a_worker_that_died_while_idle_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while it waited for work (the out-of-memory killer, a user): the next file goes
    to a new worker, and the run goes on."""
    tasks = _files(tmp_path, [3000, 2000, 1000])
    read = batch._without_analysis
    calls: list[str] = []

    def reading(task: batch.Task, options: batch.Options):  # type: ignore[no-untyped-def]
        calls.append(task.path)
        if len(calls) == 2:
            time.sleep(1.5)  # the first file's analysis ends meanwhile
        if len(calls) == 3:
            for process in multiprocessing.active_children():
                os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
            time.sleep(0.3)
        return read(task, options)

    monkeypatch.setattr(batch, "_without_analysis", reading)
    results = batch.lint_files(tasks, batch.Options(jobs=1, timeout=10))
    assert all("GL001" in [d.code for d in r.diagnostics] for r in results)


@pytest.mark.parametrize("where", ["reading", "done"])
def test_ctrl_c_leaves_no_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    tasks = _files(tmp_path, [800, 700, 600, 500, 400, 300, 200, 100])
    read = batch._without_analysis
    calls: list[str] = []

    def reading(task: batch.Task, options: batch.Options):  # type: ignore[no-untyped-def]
        calls.append(task.path)
        if where == "reading" and len(calls) == 6:
            raise KeyboardInterrupt
        return read(task, options)

    def done() -> None:
        if where == "done":
            raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_without_analysis", reading)
    with pytest.raises(KeyboardInterrupt):
        batch.lint_files(tasks, batch.Options(jobs=3, timeout=5), done)
    assert multiprocessing.active_children() == []


def test_workers_take_files_while_the_rest_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files without training code between two training scripts: the second script is sent
    to the worker freed by the first while the others are still being read."""
    tasks = _files(tmp_path, [3000, 2000])
    for number in range(5):
        path = tmp_path / f"plain_{number}.py"
        path.write_text("print('no training here')\n" + "#" * (1000 - number))
        tasks.append(batch.Task(str(path), Settings()))
    read = batch._without_analysis

    def reading(task: batch.Task, options: batch.Options):  # type: ignore[no-untyped-def]
        time.sleep(0.3 if "plain_" in task.path else 0)
        return read(task, options)

    collect = batch._Analyses._collect
    sent_while_reading: list[bool] = []  # for each file sent: was it before `wait()`?

    def collecting(self: batch._Analyses, block: bool) -> None:
        before = len(self.busy)
        collect(self, block)
        if len(self.busy) > before:
            sent_while_reading.append(not block)

    monkeypatch.setattr(batch, "_without_analysis", reading)
    monkeypatch.setattr(batch._Analyses, "_collect", collecting)
    results = batch.lint_files(tasks, batch.Options(jobs=1, timeout=10))
    assert "GL001" in [d.code for d in results[1].diagnostics]
    assert sent_while_reading == [True, True]
