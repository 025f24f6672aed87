"""The second trigger test: a rule's words must occur in code, not only in strings and comments,
for libcst to parse the file. The text test (`triggers.matches`) stays the first, cheaper one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import fixtures

from gradlint import engine
from gradlint.analysis.index import REACHES_BACKWARD
from gradlint.config import Settings
from gradlint.rules.registry import RULES
from gradlint.triggers import code_words, matches, words_of

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
        ("torch.zeros(2, requires_grad=True)", "requires_grad=True", True),
        ("torch.zeros(2, requires_grad=False)", "requires_grad=True", False),
        ("p.requires_grad = True", "requires_grad=True", False),  # a keyword argument only
        ("import torch.autograd.backward", ".backward", False),  # a module's path: no attribute
        ("from torch.autograd import backward", ".backward", False),
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
            assert rule.precheck is None or rule.precheck(tree), (fixture.path.name, code)
            checked += 1
    assert checked > 100


def test_a_rule_of_the_path_analysis_alone_needs_a_backward_in_every_trigger() -> None:
    """The analysis explores only scopes that reach a backward: a file without one is not
    parsed for these rules (their triggers say so), whatever else it holds."""
    for rule in RULES.values():
        if rule.tracker is None or rule.check is not None:
            continue
        for trigger in rule.triggers:
            items = words_of(trigger)
            assert REACHES_BACKWARD in items or "backward(" in items, (rule.code, trigger)
    # GL109's in-place update of a parameter, in a module that never calls backward
    source = "for p in model.parameters():\n    p.grad.add_(1)\n    p.add_(1)\n"
    assert not words(source).matches(RULES["GL109"].triggers)
    assert words(source + "loss.backward()\n").matches(RULES["GL109"].triggers)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("w = torch.randn(3, requires_grad=True).to(device)", True),
        ("w = torch.randn(3).requires_grad_().cuda()", True),
        ("w = torch.randn(3, requires_grad=flag).to(device)", False),  # not given True
        ("w = torch.randn(3, requires_grad=True)", False),  # not converted
        ("w = nn.Parameter(x.to(device), requires_grad=True)", False),  # not a torch factory
        ("p.requires_grad = True\nx = x.to(device)\ny = torch.zeros(3)", False),
    ],
)
def test_items_of_a_trigger_may_be_alternatives(source: str, found: bool) -> None:
    """GL110's trigger: one of the torch factories, grad turned on by `requires_grad=True` or
    `.requires_grad_()`, one of the conversions; the text test is looser (any spelling)."""
    assert words(source).matches(RULES["GL110"].triggers) is found
    assert matches(source, RULES["GL110"].triggers) or not found


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("w = torch.randn(3, requires_grad=True).to(device)", True),
        ("w = torch.randn(3, requires_grad=True)\nw = w.cuda()", True),  # rebound later
        ("w = torch.randn(3).float().requires_grad_().to(device)", True),
        ("w = torch.randn(3).requires_grad_(True).to(device)", True),
        ("model.requires_grad_(False)\nx = torch.zeros(3).to(device)", False),
        ("w = torch.randn(3).requires_grad_(False).to(device)", False),
        ("scale = nn.Parameter(torch.ones(4), requires_grad=True).to(device)", False),
        ("w = x.new_zeros(3, requires_grad=True).to(device)", False),  # not a torch factory
    ],
)
def test_gl110_precheck(source: str, found: bool) -> None:
    """GL110's condition on CPython's tree: a torch factory made to require grad."""
    precheck = RULES["GL110"].precheck
    assert precheck is not None and precheck(ast.parse(source)) is found


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("for p in model.parameters():\n    p.data.sub_(lr * p.grad)", True),
        ("w.data -= lr * w.grad", True),
        ("w.data[0] = 1", True),
        ("def _init_weights(m):\n    m.weight.data.normal_(0, 0.02)", False),  # initialising
        ("def init_grads(m):\n    m.weight.grad.data.zero_()", True),  # a gradient: always
        ("p.data = p.data.half()", False),  # rebinds the tensor: not reported
        ("print(loss.data.item())", False),  # a read, but no backward: not a loss
        ("loss.backward()\nprint(loss.data.item())", True),
        ("x = p.data.clone()", False),
        ("loader = torch.utils.data.DataLoader(ds)", False),
    ],
)
def test_gl108_precheck(source: str, found: bool) -> None:
    """GL108's condition on CPython's tree: a `.data` it could report."""
    precheck = RULES["GL108"].precheck
    assert precheck is not None and precheck(ast.parse(source)) is found


SPELLINGS = sorted((Path(__file__).parent / "data" / "unusual_spellings").glob("*.py"))


@pytest.mark.parametrize("path", SPELLINGS, ids=lambda path: path.stem)
def test_the_cheap_tests_let_every_finding_through(path: Path) -> None:
    """Valid but unusual spellings (`loss. backward()`, `(loss.backward)()`, a name continued
    over lines, `torch. ones(...)`) and leaves the trigger words once missed (`Variable(x,
    True)`, an optimizer's `param_groups`, a scheduler named `sched`, `model.train(False)`):
    the file is still analysed and the rule named by the file reports."""
    code = path.stem.split("_", 1)[0]
    analysis = engine.analyse(path.read_text(), Settings())
    found = {engine.code_of_finding(f) for f in analysis.findings}
    found |= {v.code for v in analysis.violations}
    assert code in found


def test_unusual_spellings_cover_the_rules_with_cheap_tests() -> None:
    codes = {path.stem.split("_", 1)[0] for path in SPELLINGS}
    assert {"GL102", "GL103", "GL104", "GL108", "GL109", "GL110", "GL111", "GL113"} <= codes
