"""GL104 against PyTorch itself: every runnable fixture reported for stepping a scheduler
before its optimizer makes torch warn "Detected call of `lr_scheduler.step()` before
`optimizer.step()`", and neither its fixed file nor the clean twins do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Fixture, reports, rule_cases

if not os.environ.get("CI"):
    pytest.importorskip("torch")

WARNING = "before `optimizer.step()`"
CASES = rule_cases("GL104")


def _warns(path: Path) -> bool:
    done = subprocess.run(
        [sys.executable, "-W", "always::UserWarning", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return WARNING in done.stderr


def test_the_cases_cover_reported_and_clean_files() -> None:
    reported = [f for f in CASES if reports(f, "GL104")]
    assert len(reported) >= 3 and len(CASES) > len(reported)


@pytest.mark.parametrize("fixture", CASES, ids=lambda f: f.id)
def test_torch_warns_exactly_where_gl104_reports(fixture: Fixture) -> None:
    reported = reports(fixture, "GL104")
    assert _warns(fixture.path) == reported
    if reported and fixture.fixed_path.exists():
        assert not _warns(fixture.fixed_path)
