"""Where a fix puts a reset and how it labels itself: safe only when every value the program
reads stays the same, except the gradient each update reads (README, "Fix safety")."""

from __future__ import annotations

import textwrap

from gradlint.config import Settings
from gradlint.engine import fix_text, lint_text

HEAD = """\
import torch

torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
data = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(8)]
"""


def _fixes(body: str) -> list[tuple[str, str, str]]:
    text = HEAD + textwrap.dedent(body)
    found = lint_text("train.py", text, Settings(), with_fixes=True)
    return [(d.code, d.fix.applicability, d.fix.description) for d in found if d.fix]


def test_reset_goes_to_the_start_of_the_iteration():
    assert _fixes(
        """\
        for x, y in data:
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            print(model.weight.grad.norm())
        """
    ) == [("GL001", "safe", "Insert `optimizer.zero_grad()` at the start of the iteration")]


def test_a_read_before_the_backward_puts_the_reset_right_before_it():
    assert _fixes(
        """\
        for x, y in data:
            if model.weight.grad is not None:
                print("previous", model.weight.grad.norm())
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        """
    ) == [("GL001", "safe", "Insert `optimizer.zero_grad()` before `loss.backward()`")]


def test_a_reset_after_a_windowed_step_is_unsafe_when_the_loop_reads_grad_later():
    body = """\
    for i, (x, y) in enumerate(data):
        loss = torch.nn.functional.mse_loss(model(x), y) / 2
        loss.backward()
        if (i + 1) % 2 == 0:
            optimizer.step()
        print(model.weight.grad.norm())
    """
    assert _fixes(body) == [
        ("GL001", "unsafe", "Insert `optimizer.zero_grad()` after `optimizer.step()`")
    ]
    text = HEAD + textwrap.dedent(body)
    assert fix_text(text, Settings()) == (text, 0)  # not applied without --unsafe-fixes


def test_a_reset_after_a_windowed_step_is_safe_when_reads_come_before_the_step():
    assert _fixes(
        """\
        for i, (x, y) in enumerate(data):
            loss = torch.nn.functional.mse_loss(model(x), y) / 2
            loss.backward()
            if (i + 1) % 2 == 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
        """
    ) == [("GL001", "safe", "Insert `optimizer.zero_grad()` after `optimizer.step()`")]


def test_moving_a_reset_into_a_condition_on_the_data_is_unsafe():
    assert _fixes(
        """\
        for i, (x, y) in enumerate(data):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y) / 2
            loss.backward()
            if (i + 1) % 2 == 0 and loss.item() < 100.0:
                optimizer.step()
        """
    ) == [("GL002", "unsafe", "Move `optimizer.zero_grad()` after `optimizer.step()`")]


def test_a_skip_on_the_data_is_not_accumulation():
    assert (
        lint_text(
            "train.py",
            HEAD
            + textwrap.dedent(
                """\
                for x, y in data:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
                    if not torch.isfinite(loss):
                        continue
                    optimizer.step()
                """
            ),
            Settings(),
        )
        == []
    )


def test_a_reset_in_a_helper_is_never_moved_out_of_it():
    text = HEAD + textwrap.dedent(
        """\
        def probe(net, x):
            net.zero_grad()
            net(x).sum().backward()
            norm = sum(p.grad.norm() for p in net.parameters())
            net.zero_grad()
            return norm


        for x, y in data:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            print(probe(model, x))
            optimizer.step()
        """
    )
    found = lint_text("train.py", text, Settings(), with_fixes=True)
    assert {d.code for d in found} == {"GL002"}
    assert all(d.fix is None for d in found)


def test_moving_a_clip_into_a_condition_on_the_data_is_unsafe():
    assert _fixes(
        """\
        for i, (x, y) in enumerate(data):
            loss = torch.nn.functional.mse_loss(model(x), y) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if (i + 1) % 2 == 0 and loss.item() < 100.0:
                optimizer.step()
                optimizer.zero_grad()
        """
    ) == [("GL103", "unsafe", "Move `clip_grad_norm_(...)` directly before `optimizer.step()`")]


def test_moving_a_clip_into_an_accumulation_window_is_safe():
    assert _fixes(
        """\
        for i, (x, y) in enumerate(data):
            loss = torch.nn.functional.mse_loss(model(x), y) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if (i + 1) % 2 == 0:
                optimizer.step()
                optimizer.zero_grad()
        """
    ) == [("GL103", "safe", "Move `clip_grad_norm_(...)` directly before `optimizer.step()`")]
