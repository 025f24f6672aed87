"""What GL101, GL104 and GL110 claim happens at run time, checked with real torch (the rules
whose bug raises an exception are confirmed by their fixtures' `# runtime: raises` lines)."""

from __future__ import annotations

import os
import runpy
import warnings
from pathlib import Path

import pytest

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")

FIXTURES = Path(__file__).parent / "fixtures"


def _graph_size(tensor) -> int:
    """Autograd nodes reachable from a tensor's grad_fn."""
    seen: set[int] = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


def _train(steps: int, accumulate):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    total = 0.0
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(torch.randn(8, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        total = accumulate(total, loss)
    return total


def test_gl101_summed_loss_keeps_a_graph_that_grows_with_iterations():
    small = _train(3, lambda total, loss: total + loss)
    large = _train(12, lambda total, loss: total + loss)
    assert small.requires_grad and large.requires_grad
    assert _graph_size(large) > _graph_size(small) + 9 * 3


def test_gl101_item_keeps_no_graph():
    total = _train(12, lambda total, loss: total + loss.item())
    assert isinstance(total, float)


def test_gl101_list_of_losses_keeps_every_graph():
    kept: list = []
    _train(5, lambda total, loss: kept.append(loss) or total)
    assert all(loss.grad_fn is not None for loss in kept)
    assert len({id(loss.grad_fn) for loss in kept}) == 5


@pytest.mark.parametrize("name", ["running_loss_tensor_sum", "autograd_backward_running_total"])
def test_gl101_fixture_accumulator_requires_grad(name):
    path = FIXTURES / "GL101" / f"{name}.py"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float() of a tensor that requires grad
        namespace = runpy.run_path(str(path), run_name="__main__")
    assert namespace["running_loss"].requires_grad
    fixed = runpy.run_path(str(path.with_name(path.stem + ".fixed.py")), run_name="__main__")
    assert isinstance(fixed["running_loss"], float)


@pytest.mark.parametrize(
    ("name", "accumulator"),
    [
        ("average_meter_keeps_loss", lambda ns: ns["losses"].sum),
        ("stats_dict_running_loss", lambda ns: ns["stats"]["loss"]),
    ],
)
def test_gl101_accumulator_attribute_or_entry_requires_grad(name, accumulator):
    path = FIXTURES / "GL101" / f"{name}.py"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float() of a tensor that requires grad
        namespace = runpy.run_path(str(path), run_name="__main__")
        fixed = runpy.run_path(str(path.with_name(path.stem + ".fixed.py")), run_name="__main__")
    assert accumulator(namespace).requires_grad
    kept = accumulator(fixed)
    assert not getattr(kept, "requires_grad", False)


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("backward_in_optimize_helper", lambda ns: [ns["epoch_loss"]]),
        ("trainer_log_helper_keeps_loss", lambda ns: ns["trainer"].losses),
        ("record_helper_appends_to_given_list", lambda ns: ns["train_curve"]),
        ("main_train_optimize_helper", lambda ns: [ns["last_epoch"]]),
    ],
)
def test_gl101_loss_kept_through_a_helper_keeps_its_graph(name, kept):
    """The helpers' findings: what the caller keeps holds graphs, and after the fix none."""
    path = FIXTURES / "GL101" / f"{name}.py"
    namespace = runpy.run_path(str(path), run_name="__main__")
    fixed = runpy.run_path(str(path.with_name(path.stem + ".fixed.py")), run_name="__main__")
    assert all(value.grad_fn is not None for value in kept(namespace))
    assert not any(getattr(value, "requires_grad", False) for value in kept(fixed))


def test_gl101_helpers_that_keep_numbers_keep_no_graph():
    path = FIXTURES / "clean" / "gl101_helpers_keep_numbers.py"
    namespace = runpy.run_path(str(path), run_name="__main__")
    assert not any(getattr(value, "requires_grad", False) for value in namespace["curve"])


def test_gl101_sum_with_grad_mode_off_keeps_no_graph():
    path = FIXTURES / "clean" / "running_loss_with_grad_mode_off.py"
    namespace = runpy.run_path(str(path), run_name="__main__")
    assert not namespace["running_loss"].requires_grad


def _scheduler_warnings(path: Path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runpy.run_path(str(path), run_name="__main__")
    return [str(w.message) for w in caught if "lr_scheduler.step()" in str(w.message)]


# that every GL104 fixture makes torch warn: tests/test_runtime_scheduler_order.py


def test_gl104_fixed_order_does_not_warn_and_keeps_the_first_rate():
    path = FIXTURES / "GL104" / "step_lr_before_optimizer.fixed.py"
    assert _scheduler_warnings(path) == []
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler.step()  # the wrong order: the first update already uses the decayed rate
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_gl110_moved_tensor_gets_no_grad_and_is_refused():
    weights = torch.randn(3, requires_grad=True).double()
    assert not weights.is_leaf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading .grad of a non-leaf warns
        weights.sum().backward()
        assert weights.grad is None
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        torch.optim.SGD([weights], lr=0.1)


def test_gl110_fix_makes_a_leaf_with_the_same_dtype():
    weights = torch.ones(3, dtype=torch.float64, requires_grad=True)
    assert weights.is_leaf and weights.dtype == torch.float64
    weights.sum().backward()
    assert weights.grad is not None
    torch.optim.SGD([weights], lr=0.1)


def test_gl110_requires_grad_after_the_move_is_a_leaf():
    weights = torch.randn(3).to(torch.float64).requires_grad_()
    assert weights.is_leaf
