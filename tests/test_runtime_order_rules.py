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
