"""Every rule has fixtures, and its `fixable` flag says what its fixtures show."""

from __future__ import annotations

import pytest
from conftest import FIXTURES, fixtures

from gradlint.rules.base import Rule
from gradlint.rules.registry import RULES

# judged from comments (GL800) or from the input itself (GL9xx): tested in their own files
ANALYSIS_RULES = [r for r in RULES.values() if not r.code.startswith(("GL8", "GL9"))]


def test_every_fixture_folder_is_a_rule_or_clean() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert folders <= {*RULES, "clean"}


@pytest.mark.parametrize("rule", ANALYSIS_RULES, ids=lambda r: r.code)
def test_every_rule_has_fixtures_with_findings(rule: Rule) -> None:
    own = [f for f in fixtures() if f.path.parent.name == rule.code]
    reported = [f for f in own if any(code == rule.code for code, _ in f.expected)]
    assert len(reported) >= 3, f"{rule.code}: write fixtures in tests/fixtures/{rule.code}/"


@pytest.mark.parametrize("rule", ANALYSIS_RULES, ids=lambda r: r.code)
def test_fixable_matches_the_fixed_fixtures(rule: Rule) -> None:
    fixed = sorted((FIXTURES / rule.code).glob("*.fixed.py"))
    if rule.fixable:
        assert fixed, f"{rule.code} is fixable: a fixture needs its .fixed.py"
    else:
        assert not fixed, f"{rule.code} is not fixable, yet {fixed[0].name} shows a fix"
