"""What GL108 claims about `.data`, checked with real torch: a change through `.data` is hidden
from autograd (wrong gradients, no error) where `torch.no_grad()` and the tensor itself make the
backward raise; the rewrites the rule offers as safe give the same values."""

from __future__ import annotations

import os

import pytest

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")


def _weights_and_saved_graph():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = (w**2).sum()  # pow saves w for its backward: d/dw = 2 * w
    return w, loss


def test_update_through_data_gives_wrong_gradients_without_an_error():
    w, loss = _weights_and_saved_graph()
    w.data.mul_(10.0)
    loss.backward()
    # the gradient of the loss at the old w is [2, 4]; backward silently used the new values
    assert torch.equal(w.grad, torch.tensor([20.0, 40.0]))


def test_update_under_no_grad_makes_the_backward_raise():
    w, loss = _weights_and_saved_graph()
    with torch.no_grad():
        w.mul_(10.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_both_updates_give_the_same_values_when_no_graph_waits():
    through_data = torch.tensor([1.0, 2.0], requires_grad=True)
    itself = through_data.detach().clone().requires_grad_()
    for w in (through_data, itself):
        (w**2).sum().backward()
    through_data.data.sub_(0.1 * through_data.grad)
    with torch.no_grad():
        itself.sub_(0.1 * itself.grad)
    assert torch.equal(through_data, itself)
    assert itself.is_leaf and itself.requires_grad


def test_data_assignment_and_copy_agree_for_the_same_shape():
    swapped = torch.zeros(3, requires_grad=True)
    copied = torch.zeros(3, requires_grad=True)
    value = torch.tensor([0.5, -1.0, 2.0])
    swapped.data = value.clamp(0, 1)
    with torch.no_grad():
        copied.copy_(value.clamp(0, 1))
    assert torch.equal(swapped, copied)


def test_grad_data_zero_equals_grad_zero():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    (w**2).sum().backward()
    grad = w.grad
    w.grad.data.zero_()
    assert w.grad is grad and torch.equal(grad, torch.zeros(2))
    (w**2).sum().backward()
    w.grad.zero_()
    assert w.grad is grad and torch.equal(grad, torch.zeros(2))
    assert not w.grad.requires_grad


def test_indexing_a_loss_through_data_raises_and_item_works():
    loss = torch.nn.functional.mse_loss(torch.randn(4, requires_grad=True), torch.zeros(4))
    assert loss.dim() == 0
    with pytest.raises(IndexError, match="invalid index of a 0-dim tensor"):
        loss.data[0]
    assert isinstance(loss.item(), float)


def test_old_shape_one_loss_indexed_gives_a_tensor_not_a_float():
    # why `loss.data[0]` -> `loss.item()` is an unsafe fix: the types differ for shape (1,)
    loss = (torch.ones(1, requires_grad=True) * 3).sum(0, keepdim=True)
    assert isinstance(loss.data[0], torch.Tensor) and isinstance(loss.item(), float)


def test_loss_reads_through_data_equal_the_rewrites():
    loss = (torch.tensor([1.5, 2.5], requires_grad=True) ** 2).mean()
    assert loss.data.item() == loss.item()
    assert loss.data.tolist() == loss.tolist()
    assert loss.data.numpy() == loss.detach().numpy()
    assert torch.equal(loss.data.cpu(), loss.detach().cpu())
    with pytest.raises(RuntimeError, match="requires grad"):
        loss.numpy()  # why `.detach()` is needed where `.data` was used
