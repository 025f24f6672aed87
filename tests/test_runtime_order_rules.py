"""The silent numeric bugs of the order rules, shown with real torch: what the clip does when it
runs at the wrong moment (GL102, GL103) differs from what it was written to do."""

from __future__ import annotations

import os

import pytest

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")

MAX_NORM = 1.0


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randn(32, 1) * 10  # large errors: the norm exceeds MAX_NORM
    return model, optimizer, x, y


def _loss(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def _norm(model) -> float:
    return float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))


def test_gl102_clipping_scaled_gradients_divides_the_threshold_by_the_scale():
    model, optimizer, x, y = _setup()
    scaler = torch.amp.GradScaler("cpu")
    scale = scaler.get_scale()
    scaler.scale(_loss(model, x, y)).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)  # GL102: before unscale_
    scaler.unscale_(optimizer)
    wrong = _norm(model)

    model, optimizer, x, y = _setup()
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(_loss(model, x, y)).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    right = _norm(model)

    assert right == pytest.approx(MAX_NORM, rel=1e-4)
    assert wrong == pytest.approx(MAX_NORM / scale, rel=1e-3)


def test_gl103_clip_before_backward_leaves_the_new_gradient_unclipped():
    model, optimizer, x, y = _setup()
    optimizer.zero_grad()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)  # GL103: before backward
    _loss(model, x, y).backward()
    assert _norm(model) > 2 * MAX_NORM  # what the step reads


def test_gl103_clip_after_step_does_not_change_the_update():
    model, optimizer, x, y = _setup()
    _loss(model, x, y).backward()
    optimizer.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)  # GL103: after step
    late = [p.detach().clone() for p in model.parameters()]

    model, optimizer, x, y = _setup()
    unclipped = [p.detach().clone() for p in model.parameters()]
    _loss(model, x, y).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    optimizer.step()
    intended = [p.detach().clone() for p in model.parameters()]

    model, optimizer, x, y = _setup()
    _loss(model, x, y).backward()
    optimizer.step()
    unclipped = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(late, unclipped))
    assert not all(torch.allclose(a, b) for a, b in zip(late, intended))


def _flat_grad(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_gl103_clip_per_micro_batch_changes_the_direction_of_the_update():
    k = 4
    model, optimizer, x, y = _setup()
    for xs, ys in zip(x.chunk(k), y.chunk(k)):
        (_loss(model, xs, ys) / k).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)  # GL103: every micro-batch
    per_micro_batch = _flat_grad(model)  # what the step under `if (i + 1) % k == 0` reads

    model, optimizer, x, y = _setup()
    for xs, ys in zip(x.chunk(k), y.chunk(k)):
        (_loss(model, xs, ys) / k).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    once = _flat_grad(model)

    assert float(once.norm()) == pytest.approx(MAX_NORM, rel=1e-4)
    # earlier micro-batches were shrunk again by every later clip: the last ones dominate
    cosine = torch.nn.functional.cosine_similarity(per_micro_batch, once, dim=0)
    assert float(cosine) < 0.99
