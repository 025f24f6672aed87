"""Each rule's documentation is checked against its behaviour: the `Example` block must be
reported by the rule and the `Use instead` block must be clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gradlint.engine import Settings, lint_text
from gradlint.rules.registry import RULES

SECTIONS = ("## What it does", "## Why is this bad?", "## Fix safety")
ANALYSIS_RULES = [r for r in RULES.values() if not r.code.startswith("GL9")]


def _block(docs: str, heading: str) -> str:
    match = re.search(rf"## {re.escape(heading)}\n```python\n(.*?)```", docs, re.S)
    assert match, f"no python block under '{heading}'"
    return match.group(1)


@pytest.mark.parametrize("rule", RULES.values(), ids=lambda r: r.code)
def test_docs_have_the_sections(rule):
    for section in SECTIONS:
        assert section in rule.docs


@pytest.mark.parametrize("rule", ANALYSIS_RULES, ids=lambda r: r.code)
def test_example_is_reported_and_use_instead_is_clean(rule):
    example = _block(rule.docs, "Example")
    use_instead = _block(rule.docs, "Use instead")
    assert rule.code in {d.code for d in lint_text("example.py", example, Settings())}
    assert lint_text("use_instead.py", use_instead, Settings()) == []


def test_readme_rule_table_matches_the_registry():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for rule in RULES.values():
        fix = "yes" if rule.fixable else "no"
        assert f"| {rule.code} | {rule.name} | {fix} |" in readme
