"""Ground truth: every runnable fixture is executed with real torch under gradlint's tracer, and
what autograd actually did must equal both the static verdict and the `# expect:` comments."""

from __future__ import annotations

import os

import pytest
from conftest import Fixture, fixtures

from gradlint.engine import Settings, lint_text

if os.environ.get("CI"):
    import torch  # noqa: F401  -- in CI these tests must run, never skip
else:
    pytest.importorskip("torch")

from gradlint.trace import run_script  # noqa: E402

RUNNABLE = [f for f in fixtures() if f.runtime_skip is None]
# what the tracer observes; the GL1xx rules have runtime tests of their own
TRACED = {"GL001", "GL002"}


def test_most_fixtures_run_under_torch():
    assert len(RUNNABLE) >= 0.8 * len(fixtures())


@pytest.mark.parametrize("fixture", RUNNABLE, ids=lambda f: f.id)
def test_static_verdict_equals_runtime(fixture: Fixture):
    result = run_script(str(fixture.path), paths=[str(fixture.path)])
    if fixture.runtime_raises is None:
        assert result.exit_code == 0, result.traceback
    else:
        name, text = fixture.runtime_raises
        assert result.exit_code != 0 and result.traceback is not None
        assert f"{name}: " in result.traceback and text in result.traceback, result.traceback
    runtime = {(f.code, f.line) for f in result.findings}
    static = {
        (d.code, d.line)
        for d in lint_text(str(fixture.path), fixture.text, Settings(select=tuple(TRACED)))
    }
    expected = {(code, line) for code, line in fixture.expected if code in TRACED}
    assert runtime == expected | fixture.runtime_only
    assert static == runtime - fixture.runtime_only


@pytest.mark.parametrize(
    "fixture", [f for f in RUNNABLE if f.fixed_path.exists()], ids=lambda f: f.id
)
def test_fixed_file_runs_clean(fixture: Fixture):
    result = run_script(str(fixture.fixed_path), paths=[str(fixture.fixed_path)])
    assert result.exit_code == 0, result.traceback
    assert result.findings == []
