"""How a run schedules its files: the largest first, each handed to a worker as soon as it is
read, results in the order the files were given, and a worker killed or timed out costing only
its own file."""

from __future__ import annotations

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
            import time

            time.sleep(60)  # in the worker: killed at the limit
        return lint_one(path, *rest)

    monkeypatch.setattr(batch, "_lint_one", hanging)
    results = batch.lint_files(tasks, batch.Options(jobs=2, timeout=0.5))
    codes = [[d.code for d in r.diagnostics] for r in results]
    assert codes[1] == ["GL902"] and "time limit" in results[1].diagnostics[0].message
    assert "GL001" in codes[0] and "GL001" in codes[2]
