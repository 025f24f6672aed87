"""docs/rules/ holds each rule's page exactly as `gradlint rule CODE` prints it, generated from
the rule's docs; `gradlint rule` finds a rule by code or name, and `--all` prints every page."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.report import rule_pages
from gradlint.rules.registry import RULES

PAGES = Path(__file__).parent.parent / "docs" / "rules"


def test_pages_are_in_sync_with_the_rules():
    expected = rule_pages.expected_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in PAGES.glob("*.md")}
    stale = sorted(
        name for name in expected.keys() | on_disk.keys() if on_disk.get(name) != expected.get(name)
    )
    assert stale == [], "run: python -m gradlint.report.rule_pages docs/rules"


@pytest.mark.parametrize("rule", RULES.values(), ids=lambda r: r.code)
def test_rule_by_code_or_name_prints_its_page(rule):
    runner = CliRunner()
    by_code = runner.invoke(main, ["rule", rule.code.lower()])
    by_name = runner.invoke(main, ["rule", rule.name])
    assert by_code.exit_code == by_name.exit_code == 0
    assert by_code.output == by_name.output == (PAGES / f"{rule.code}.md").read_text()


def test_rule_all_prints_every_page_and_rejects_a_code_beside_it():
    runner = CliRunner()
    every = runner.invoke(main, ["rule", "--all"])
    assert every.exit_code == 0
    assert [line for line in every.output.splitlines() if line.startswith("# GL")] == [
        f"# {r.code} {r.name}" for r in RULES.values()
    ]
    assert runner.invoke(main, ["rule", "--all", "GL001"]).exit_code == 2
    assert runner.invoke(main, ["rule"]).exit_code == 2
    unknown = runner.invoke(main, ["rule", "stale-gradient"])
    assert unknown.exit_code == 2 and "unknown rule" in unknown.output


def test_rules_table_is_aligned():
    lines = CliRunner().invoke(main, ["rules"]).output.splitlines()
    assert len(lines) == len(RULES)
    # the summary starts in the same column on every line, however long the name
    starts = {line.index(rule.summary) for line, rule in zip(lines, RULES.values())}
    assert len(starts) == 1
