"""`gradlint check examples/` is the first thing a new user runs: its findings are pinned here."""

from __future__ import annotations

from pathlib import Path

from conftest import CliRunner

from gradlint.cli import main

ROOT = Path(__file__).parent.parent
EXPECTED = [
    ("examples/accumulation_reset_inside_loop.py", 24, "GL002"),
    ("examples/linear_regression_manual_sgd.py", 21, "GL001"),
    ("examples/linear_regression_manual_sgd.py", 23, "GL108"),
    ("examples/linear_regression_manual_sgd.py", 24, "GL108"),
    ("examples/mnist_mlp_stale_gradients.py", 31, "GL001"),
    ("examples/text_classifier_zero_grad_before_step.py", 31, "GL002"),
]


def test_examples(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["check", "examples/"])
    assert result.exit_code == 1
    found = [line.split(":") for line in result.stdout.splitlines()]
    assert [(f[0], int(f[1]), f[3].split()[0]) for f in found] == EXPECTED
