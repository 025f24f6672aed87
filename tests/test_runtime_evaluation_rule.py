"""GL114 against PyTorch itself: every runnable fixture it reports keeps the evaluation loop's
outputs in `val_outputs`, and there they carry a graph (`grad_fn`); in the fixed files and the
clean twins they carry none."""

from __future__ import annotations

import os
import runpy
import warnings
from pathlib import Path

import pytest
from conftest import Fixture, reports, rule_cases

if not os.environ.get("CI"):
    pytest.importorskip("torch")

CASES = rule_cases("GL114")


def _outputs_carry_a_graph(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        namespace = runpy.run_path(str(path), run_name="__main__")
    return namespace["val_outputs"].grad_fn is not None


def test_the_cases_cover_reported_and_clean_files() -> None:
    reported = [f for f in CASES if reports(f, "GL114")]
    assert len(reported) >= 2 and len(CASES) > len(reported)


@pytest.mark.parametrize("fixture", CASES, ids=lambda f: f.id)
def test_outputs_carry_a_graph_exactly_where_gl114_reports(fixture: Fixture) -> None:
    reported = reports(fixture, "GL114")
    assert _outputs_carry_a_graph(fixture.path) == reported
    if reported and fixture.fixed_path.exists():
        assert not _outputs_carry_a_graph(fixture.fixed_path)
