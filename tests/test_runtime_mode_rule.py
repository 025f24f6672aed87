"""GL113 against PyTorch itself: in every runnable fixture it reports, some optimizer step
updates a model that is in evaluation mode (`model.training` is False at the step); in their
fixed files and in the clean twins no step does."""

from __future__ import annotations

import os
import runpy
import warnings
from pathlib import Path

import pytest
from conftest import Fixture, reports, rule_cases

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")
from torch.optim.optimizer import register_optimizer_step_pre_hook  # noqa: E402

CASES = rule_cases("GL113")


def _steps_in_eval_mode(path: Path) -> int:
    """How many optimizer steps update the parameters of a module that is in eval mode."""
    seen: dict[int, torch.nn.Module] = {}
    count = 0

    def forward(module: torch.nn.Module, args: object) -> None:
        seen[id(module)] = module

    def step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        nonlocal count
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for module in seen.values():
            own = [id(p) for p in module.parameters()]
            if own and set(own) <= stepped and not module.training:
                count += 1
                return

    hooks = [
        torch.nn.modules.module.register_module_forward_pre_hook(forward),
        register_optimizer_step_pre_hook(step),
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runpy.run_path(str(path), run_name="__main__")
    finally:
        for hook in hooks:
            hook.remove()
    return count


def test_the_cases_cover_reported_and_clean_files() -> None:
    reported = [f for f in CASES if reports(f, "GL113")]
    assert len(reported) >= 3 and len(CASES) > len(reported)


@pytest.mark.parametrize("fixture", CASES, ids=lambda f: f.id)
def test_steps_in_eval_mode_exactly_where_gl113_reports(fixture: Fixture) -> None:
    reported = reports(fixture, "GL113")
    assert (_steps_in_eval_mode(fixture.path) > 0) == reported
    if reported and fixture.fixed_path.exists():
        assert _steps_in_eval_mode(fixture.fixed_path) == 0
