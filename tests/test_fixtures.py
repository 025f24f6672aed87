"""Every fixture's findings equal the `# expect:` comments written in it; fixes are byte-exact."""

from __future__ import annotations

import pytest
from conftest import Fixture, fixtures

from gradlint.engine import Settings, fix_text, lint_text

ALL = fixtures()


def test_there_are_fixtures_for_every_folder():
    folders = {f.path.parent.name for f in ALL}
    assert {"GL001", "GL002", "clean"} <= folders
    assert sum(1 for f in ALL if f.path.parent.name == "clean") >= 20


@pytest.mark.parametrize("fixture", ALL, ids=lambda f: f.id)
def test_findings_match_expectations(fixture: Fixture):
    found = {(d.code, d.line) for d in lint_text(str(fixture.path), fixture.text, Settings())}
    assert found == fixture.expected


@pytest.mark.parametrize("fixture", ALL, ids=lambda f: f.id)
def test_folder_matches_expectations(fixture: Fixture):
    folder = fixture.path.parent.name
    codes = {code for code, _ in fixture.expected}
    if folder == "clean":
        assert not codes
    else:
        assert folder in codes


FIXABLE = [f for f in ALL if f.fixed_path.exists()]


ALL_FIXES = Settings(unsafe_fixes=True)


@pytest.mark.parametrize("fixture", FIXABLE, ids=lambda f: f.id)
def test_fix_is_byte_exact_and_idempotent(fixture: Fixture):
    fixed, count = fix_text(fixture.text, ALL_FIXES)
    assert count >= 1
    assert fixed == fixture.fixed_path.read_text(encoding="utf-8")
    again, count_again = fix_text(fixed, ALL_FIXES)
    assert (again, count_again) == (fixed, 0)


@pytest.mark.parametrize("fixture", FIXABLE, ids=lambda f: f.id)
def test_unsafe_fixes_need_to_be_asked_for(fixture: Fixture):
    found = lint_text(str(fixture.path), fixture.text, Settings(), with_fixes=True)
    safe = [d for d in found if d.fix is not None and d.fix.applicability == "safe"]
    fixed, count = fix_text(fixture.text, Settings())
    if not safe:
        assert (fixed, count) == (fixture.text, 0)
    else:
        assert count >= 1


@pytest.mark.parametrize("fixture", FIXABLE, ids=lambda f: f.id)
def test_fixed_file_is_clean(fixture: Fixture):
    text = fixture.fixed_path.read_text(encoding="utf-8")
    assert lint_text(str(fixture.fixed_path), text, Settings()) == []
