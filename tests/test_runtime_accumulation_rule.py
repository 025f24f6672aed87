"""GL115 against PyTorch itself: in every runnable fixture it reports, the first update's
gradient is `k` times the one its fixed file (the loss divided by `k`) steps with, where `k`
is the window the finding names."""

from __future__ import annotations

import os
import re
import runpy
import warnings
from pathlib import Path

import pytest
from conftest import Fixture, reports, rule_cases

from gradlint.config import Settings
from gradlint.engine import lint_text

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")
from torch.optim.optimizer import register_optimizer_step_pre_hook  # noqa: E402

CASES = [f for f in rule_cases("GL115") if reports(f, "GL115") and f.fixed_path.exists()]


def _first_gradient(path: Path) -> tuple[float, dict]:
    """The total gradient norm the first optimizer step reads, and the script's names."""
    norms: list[float] = []

    def step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.stack([g.norm() for g in grads]).norm()))

    hook = register_optimizer_step_pre_hook(step)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            namespace = runpy.run_path(str(path), run_name="__main__")
    finally:
        hook.remove()
    return norms[0], namespace


def test_every_reported_fixture_is_checked() -> None:
    assert len(CASES) >= 3


@pytest.mark.parametrize("fixture", CASES, ids=lambda f: f.id)
def test_the_update_is_k_times_the_fixed_one(fixture: Fixture) -> None:
    found = [d for d in lint_text(str(fixture.path), fixture.text, Settings()) if d.code == "GL115"]
    window = re.search(r"over `([^`]+)` micro-batches", found[0].message)
    assert window is not None
    unscaled, namespace = _first_gradient(fixture.path)
    scaled, _ = _first_gradient(fixture.fixed_path)
    k = eval(window.group(1), namespace)  # the window's value in the script
    assert k >= 2
    assert unscaled == pytest.approx(k * scaled, rel=1e-4)
