"""`--fix` is linear: every fix of a round is made at once and checked with one re-lint."""

from __future__ import annotations

import pytest

from gradlint import engine
from gradlint.config import Settings


def _many_stale_loops(count: int) -> str:
    lines = [
        "import torch",
        "model = torch.nn.Linear(2, 1)",
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)",
        "data = [torch.randn(4, 2) for _ in range(3)]",
        "",
    ]
    for index in range(count):
        lines += [
            f"def train_{index}():",
            "    for x in data:",
            "        loss = model(x).sum()",
            "        loss.backward()",
            "        opt.step()",
            "",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def analyses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted = [0]
    original = engine.analyse

    def counting(*args, **kwargs):
        counted[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "analyse", counting)
    return counted


def test_a_hundred_findings_are_all_fixed_with_a_few_relints(analyses: list[int]) -> None:
    text = _many_stale_loops(100)
    assert len(engine.lint_text("many.py", text, Settings())) == 100
    analyses[0] = 0
    fixed, count = engine.fix_text(text, Settings())
    assert count == 100  # no cap on the number of fixes
    assert engine.lint_text("many.py", fixed, Settings()) == []
    # one analysis to find, one to check the combined fixes, one to see nothing is left
    assert analyses[0] <= 4
    assert fixed.count("opt.zero_grad()") == 100


def test_formats_that_show_fixes_check_them_together(
    analyses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # each finding's own fixed text is made while time is left; here there is time for all
    monkeypatch.setattr(engine, "FIX_CHECK_MIN_SECONDS", 600.0)
    monkeypatch.setattr(engine, "FIX_CHECK_SECONDS", 600.0)
    text = _many_stale_loops(30)
    analyses[0] = 0
    found = engine.lint_text("many.py", text, Settings(), with_fixes=True)
    assert len(found) == 30 and all(d.fix is not None for d in found)
    assert analyses[0] <= 3
    for diagnostic in found:
        assert diagnostic.fix is not None
        # each finding's own fix: the file with that one loop fixed
        assert diagnostic.fix.fixed_source.count("opt.zero_grad()") == 1


def test_one_reset_serves_the_findings_that_share_it() -> None:
    # the same edit fixes both findings: it is made once
    text = (
        "import torch\n"
        "a = torch.nn.Linear(2, 1)\n"
        "b = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD([*a.parameters(), *b.parameters()], lr=0.1)\n"
        "for x in [torch.randn(3, 2)] * 3:\n"
        "    (a(x).sum() + b(x).sum()).backward()\n"
        "    opt.step()\n"
    )
    fixed, count = engine.fix_text(text, Settings())
    assert count >= 1
    assert fixed.count("opt.zero_grad()") == 1
    assert engine.lint_text("t.py", fixed, Settings()) == []
