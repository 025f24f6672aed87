"""The second trigger test: a rule's words must occur in code, not only in strings and comments,
for libcst to parse the file. The text test (`triggers.matches`) stays the first, cheaper one."""

from __future__ import annotations

import ast

import pytest
from conftest import fixtures

from gradlint import engine
from gradlint.config import Settings
from gradlint.rules.registry import RULES
from gradlint.triggers import code_words, matches

DOCS_ONLY = '''"""Callbacks run after `loss.backward()` and before `optimizer.step()`."""

def on_after_backward(trainer):
    # the gradients of loss.backward() are ready here; clip_grad_norm_ may run
    log("backward() done; p.grad.zero_() next; x.data, requires_grad=True")
'''


def words(source: str):  # type: ignore[no-untyped-def]
    return code_words(ast.parse(source))


@pytest.mark.parametrize(
    ("source", "trigger", "found"),
    [
        ("loss.backward()", "backward(", True),
        ("self.manual_backward(loss)", "backward(", True),  # as the text test: a suffix
        ("model(x).sum().backward()", "backward(", True),
        ("f = loss.backward", "backward(", False),  # not called
        ("p.grad.zero_()", "grad.zero_(", True),
        ("p.grad.data.zero_()", "grad.zero_(", False),
        ("w.to(device)", ".to(", True),
        ("to(device)", ".to(", False),
        ("x = p.data", ".data", True),
        ("x = p.data_ptr()", ".data", True),  # a prefix, as the substring `.data` is
        ("data = 1", ".data", False),
        ("torch.nn.utils.clip_grad_norm_(ps, 1)", "clip_grad", True),
        ("from torch.nn.utils import clip_grad_value_", "clip_grad", True),
        ("x = torch.zeros(2, requires_grad=True)", "requires_grad", True),
        ("def f(requires_grad): pass", "requires_grad", True),
        ("s = 'requires_grad'", "requires_grad", False),
        ("# requires_grad", "requires_grad", False),
    ],
)
def test_a_word_counts_in_code_only(source: str, trigger: str, found: bool) -> None:
    assert words(source).matches([trigger]) is found


def test_all_words_of_a_tuple_must_occur_in_code() -> None:
    both = ("schedule", "step(")
    assert words("scheduler.step()").matches([both])
    assert not words("opt.step()  # scheduler").matches([both])


def test_words_in_docs_and_comments_only_are_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert any(matches(DOCS_ONLY, rule.triggers) for rule in RULES.values())  # text test: yes
    parsed = []
    monkeypatch.setattr(engine, "Context", lambda *a: parsed.append(a) or None)
    analysis = engine.analyse(DOCS_ONLY, Settings())
    assert analysis.findings == [] and analysis.violations == [] and parsed == []


def test_every_fixture_with_findings_passes_the_code_test() -> None:
    """A finding needs its rule's words in code: no fixture's expected finding is lost."""
    checked = 0
    for fixture in fixtures():
        tree = ast.parse(fixture.text)
        for code, _ in fixture.expected:
            rule = RULES[code]
            if rule.check is None and rule.tracker is None and rule.gradients is None:
                continue  # judged from comments or from the input (GL800, GL9xx)
            assert code_words(tree).matches(rule.triggers), (fixture.path.name, code)
            checked += 1
    assert checked > 100
