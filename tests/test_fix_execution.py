"""`gradlint check --fix` must never turn a working program into a crashing one.

Every example script and every runnable fixture with a `.fixed.py` is run with real torch before
and after its safe fixes (what plain `--fix` applies), and the fixed program must (i) exit 0
whenever the original did, (ii) be what the tracer and gradlint agree on (clean once the safe
fixes removed every GL001/GL002), and (iii) still print every gradient value the original
printed: as many lines, and no `None` or `nan` where the original printed a number.

Then the programs fixes used to break, each as its own test: a hand-written update whose gradient
is printed after it (the manual SGD example), loops that read `.grad` after the step, steps skipped
on purpose (no finding at all), resets inside a helper (reported, never moved out of it), and a
step before the backward (swapped, not reported as a discarding reset).

The scripts run in worker subprocesses (`script_worker.py`) that import torch once; only the
cases this session selected are run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, FIXTURES, CliRunner, Fixture, fixtures

from gradlint.cli import main
from gradlint.engine import Settings, fix_text, lint_text

if os.environ.get("CI"):
    import torch  # noqa: F401  -- in CI these tests must run, never skip
else:
    pytest.importorskip("torch")

WORKER = Path(__file__).parent / "script_worker.py"
TRACED = ("GL001", "GL002")
SAFE, UNSAFE = "safe", "unsafe"

FIXABLE = [f for f in fixtures() if f.fixed_path.exists() and f.runtime_skip is None]
FIX_CASES = [f"{SAFE}:examples/{p.name}" for p in sorted(EXAMPLES.glob("*.py"))] + [
    f"{SAFE}:{f.id}" for f in FIXABLE
]

# (a) a hand-written update whose gradient is printed after it
MANUAL_SGD_EXAMPLE = f"{SAFE}:examples/linear_regression_manual_sgd.py"
# (b) loops that read .grad after the step: a reset right after step() makes them crash
READS_AFTER_STEP = [
    "GL001/trainer_logs_grad_norm_after_step.py",
    "GL001/smoke_check_asserts_grads_after_step.py",
    "GL001/manual_sgd_prints_grad_after_update.py",
]
# (c) the step is skipped on purpose: correct code
DELIBERATE_SKIP = [
    "clean/speech_trainer_skips_nonfinite_grad_norm.py",
    "clean/asr_recipe_isnan_grad_norm_no_update.py",
    "clean/skip_step_when_loss_above_limit.py",
    "clean/amp_unscale_skip_nonfinite_step.py",
]
# (d) the discarding reset is inside a helper: it cannot be moved out of it
RESET_IN_HELPER = [
    "GL002/val_grad_norm_helper_called_before_step.py",
    "GL002/trainer_gradient_probe_method_resets_before_step.py",
    "GL002/log_heldout_grad_stats_helper_sets_grads_none.py",
]
# (e) the step comes before the backward: the update never sees this batch's gradient
STEP_BEFORE_BACKWARD_ID = f"{UNSAFE}:inline/step_before_backward.py"
STEP_BEFORE_BACKWARD = """\
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(5):
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    optimizer.step()
    loss.backward()
    print(f"step {step}: loss {loss.item():.4f} weight grad {model.weight.grad.norm():.4f}")
"""


@dataclass(frozen=True)
class Case:
    id: str
    original: Path
    fixed: Path
    fixed_text: str

    @property
    def changed(self) -> bool:
        return self.fixed_text != self.original.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Run:
    exit_code: int | None  # None: stopped after the worker's time limit
    traceback: str | None
    stdout: str
    findings: list[tuple[str, int]]


@dataclass(frozen=True)
class Execution:
    case: Case
    original: Run | None  # None when no fix changed the file: nothing to run
    fixed: Run | None
    traced: Run | None


def _fixture(fixture_id: str) -> Fixture:
    path = FIXTURES / fixture_id
    return Fixture(path, path.read_text(encoding="utf-8"))


def _cli_fix(path: Path) -> str:
    """What `gradlint check --fix` writes, run on a copy as a user would run it."""
    result = CliRunner().invoke(
        main, ["check", "--fix", "--isolated", "--no-cache", "--exit-zero", "-j", "1", str(path)]
    )
    assert result.exit_code == 0, result.output
    return path.read_text(encoding="utf-8")


def _build(case_id: str, folder: Path) -> Case:
    """Write the original and the fixed program as `folder/{original,fixed}/<name>.py`."""
    applicability, source = case_id.split(":", 1)
    name = source.rsplit("/", 1)[-1]
    original, fixed = folder / "original" / name, folder / "fixed" / name
    original.parent.mkdir(parents=True)
    fixed.parent.mkdir(parents=True)
    if source.startswith("inline/"):
        original.write_text(STEP_BEFORE_BACKWARD, encoding="utf-8")
    elif source.startswith("examples/"):
        shutil.copyfile(EXAMPLES / name, original)
    else:
        shutil.copyfile(FIXTURES / source, original)
    text = original.read_text(encoding="utf-8")
    if source.startswith("examples/"):
        shutil.copyfile(original, fixed)
        fixed_text = _cli_fix(fixed)
    else:
        fixed_text, _ = fix_text(text, Settings(unsafe_fixes=applicability == UNSAFE))
        fixed.write_text(fixed_text, encoding="utf-8")
    return Case(case_id, original, fixed, fixed_text)


def _run_in_workers(jobs: list[dict[str, Any]], folder: Path) -> list[Run]:
    count = max(1, min(len(jobs), os.cpu_count() or 1, 4))
    # one thread per worker: the workers already share the cores between them
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    workers = []
    for index in range(count):
        given, results, log = (folder / f"worker{index}.{ext}" for ext in ("in", "out", "log"))
        given.write_text(json.dumps(jobs[index::count]), encoding="utf-8")
        with given.open("rb") as stdin, log.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(WORKER), str(results)],
                stdin=stdin,
                stdout=stderr,
                stderr=stderr,
                cwd=folder,
                env=env,
            )
        workers.append((process, results, log))
    ordered: list[Run | None] = [None] * len(jobs)
    for index, (process, results, log) in enumerate(workers):
        try:
            process.wait(timeout=900)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert results.exists(), log.read_text(encoding="utf-8", errors="replace")
        found = json.loads(results.read_text(encoding="utf-8"))
        for position, result in zip(range(index, len(jobs), count), found):
            ordered[position] = Run(
                result["exit_code"],
                result["traceback"],
                result["stdout"],
                [(code, line) for code, line in result["findings"]],
            )
    assert all(run is not None for run in ordered)
    return [run for run in ordered if run is not None]


@pytest.fixture(scope="session")
def executions(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Run every case the session selected: the original, the fixed program, the fixed under the
    tracer. Cases whose fix changes nothing are not run."""
    wanted = sorted(
        {
            item.callspec.params["case_id"]
            for item in request.session.items
            if item.path == Path(__file__) and "case_id" in item.callspec.params
        }
    )
    root = tmp_path_factory.mktemp("fix_execution")
    cases = [_build(case_id, root / f"case{n}") for n, case_id in enumerate(wanted)]
    jobs = []
    for case in cases:
        if case.changed:
            jobs += [
                {"path": str(case.original), "trace": False},
                {"path": str(case.fixed), "trace": False},
                {"path": str(case.fixed), "trace": True},
            ]
    runs = iter(_run_in_workers(jobs, root) if jobs else [])
    found = {}
    for case in cases:
        if case.changed:
            found[case.id] = Execution(case, next(runs), next(runs), next(runs))
        else:
            found[case.id] = Execution(case, None, None, None)
    return found


def _lost_values(before: str, after: str) -> list[str]:
    """Printed lines, matched by position, where the fixed program no longer shows a number."""
    lines, fixed_lines = before.splitlines(), after.splitlines()
    lost = []
    if len(lines) != len(fixed_lines):
        lost.append(f"{len(lines)} lines printed before the fix, {len(fixed_lines)} after")
    for line, fixed_line in zip(lines, fixed_lines):
        for word in (r"\bNone\b", r"(?i)\bnan\b"):
            if re.search(word, fixed_line) and not re.search(word, line):
                lost.append(f"{line!r} became {fixed_line!r}")
    return lost


def _assert_keeps_working(execution: Execution) -> None:
    original, fixed, traced = execution.original, execution.fixed, execution.traced
    assert original is not None and fixed is not None and traced is not None
    if original.exit_code != 0:
        return  # the fix may not make a crashing program work; nothing to compare
    assert fixed.exit_code == 0, f"the original exits 0, the fixed program:\n{fixed.traceback}"
    assert _lost_values(original.stdout, fixed.stdout) == []
    static = {
        (d.code, d.line)
        for d in lint_text(
            str(execution.case.fixed), execution.case.fixed_text, Settings(select=TRACED)
        )
    }
    assert set(traced.findings) == static, "the tracer and gradlint disagree on the fixed program"


@pytest.mark.parametrize("case_id", FIX_CASES)
def test_safe_fix_keeps_the_program_working(case_id: str, executions: dict[str, Execution]):
    execution = executions[case_id]
    if not execution.case.changed:
        pytest.skip("no safe fix changes this file")
    _assert_keeps_working(execution)


@pytest.mark.parametrize("case_id", [MANUAL_SGD_EXAMPLE])
def test_manual_sgd_example_still_prints_its_gradient(
    case_id: str, executions: dict[str, Execution]
):
    execution = executions[case_id]
    assert execution.case.changed, "--fix no longer fixes this example"
    _assert_keeps_working(execution)
    assert execution.traced is not None and execution.traced.findings == []


@pytest.mark.parametrize("case_id", [f"{SAFE}:{name}" for name in READS_AFTER_STEP])
def test_fix_keeps_gradient_reads_after_the_step(case_id: str, executions: dict[str, Execution]):
    execution = executions[case_id]
    assert execution.case.changed, "the stale gradient has no safe fix"
    _assert_keeps_working(execution)
    assert execution.traced is not None and execution.traced.findings == []


@pytest.mark.parametrize("name", DELIBERATE_SKIP)
def test_deliberately_skipped_step_is_not_reported(name: str):
    fixture = _fixture(name)
    assert lint_text(str(fixture.path), fixture.text, Settings()) == []
    assert fix_text(fixture.text, Settings(unsafe_fixes=True)) == (fixture.text, 0)


@pytest.mark.parametrize("case_id", [f"{UNSAFE}:{name}" for name in RESET_IN_HELPER])
def test_reset_inside_helper_is_reported_but_not_moved_out(
    case_id: str, executions: dict[str, Execution]
):
    fixture = _fixture(case_id.split(":", 1)[1])
    codes = {d.code for d in lint_text(str(fixture.path), fixture.text, Settings())}
    assert "GL002" in codes
    assert fix_text(fixture.text, Settings()) == (fixture.text, 0), "a safe fix was offered"
    execution = executions[case_id]
    if execution.case.changed:
        original, fixed = execution.original, execution.fixed
        assert original is not None and fixed is not None
        assert fixed.exit_code == 0, f"the unsafe fix breaks the program:\n{fixed.traceback}"
        assert _lost_values(original.stdout, fixed.stdout) == []


@pytest.mark.parametrize("case_id", [STEP_BEFORE_BACKWARD_ID])
def test_step_before_backward_is_swapped(case_id: str, executions: dict[str, Execution]):
    found = lint_text("step_before_backward.py", STEP_BEFORE_BACKWARD, Settings())
    assert found, "a step before the backward is not reported"
    assert "GL002" not in {d.code for d in found}, "the reset before the forward is not the bug"
    execution = executions[case_id]
    fixed_lines = [line.strip() for line in execution.case.fixed_text.splitlines()]
    assert fixed_lines.index("loss.backward()") < fixed_lines.index("optimizer.step()")
    _assert_keeps_working(execution)
    assert execution.traced is not None and execution.traced.findings == []
