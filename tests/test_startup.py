"""What start-up loads: commands that look at no source never import the analysis.

pre-commit, the flake8 plugin and editors start gradlint for every invocation; libcst, the rules
and the analysis cost several times a bare interpreter's start. Each case runs the command in a
fresh interpreter and lists the modules it left loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradlint.rules import catalogue
from gradlint.rules.registry import RULES

HEAVY = ("libcst", "gradlint.engine", "gradlint.analysis", "gradlint.rules.registry", "pathspec")
PROBE = """
import json, sys
from gradlint.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
TRAINING = """import torch

for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
"""


def loaded(*args: str, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    modules: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return [m for m in modules if m.startswith(HEAVY)]


@pytest.mark.parametrize("args", [["--version"], ["rules"], ["--help"], ["check", "--help"]])
def test_commands_that_read_no_source_load_no_analysis(args: list[str], tmp_path: Path) -> None:
    assert loaded(*args, cwd=tmp_path) == []


def test_a_cached_run_loads_no_analysis(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAINING)
    cold = loaded("check", "train.py", cwd=tmp_path)
    assert "libcst" in cold  # the first run analyses the file
    assert loaded("check", "train.py", cwd=tmp_path) == []


def test_files_without_training_code_load_no_analysis(tmp_path: Path) -> None:
    (tmp_path / "util.py").write_text("def add(a, b):\n    return a + b\n")
    assert loaded("check", "--no-cache", "util.py", cwd=tmp_path) == []


def test_the_catalogue_is_written_from_the_rules() -> None:
    """Regenerate with `python -m gradlint.rules.catalogue` after changing a rule's code, name,
    summary, fixability or trigger words."""
    assert Path(catalogue.__file__).read_text(encoding="utf-8") == catalogue.written()
    assert list(catalogue.CATALOGUE) == list(RULES)
    for code, rule in RULES.items():
        entry = catalogue.CATALOGUE[code]
        assert (entry.name, entry.summary, entry.fixable, entry.triggers) == (
            rule.name,
            rule.summary,
            rule.fixable,
            rule.triggers,
        )


def test_help_lists_every_command_as_click_would_without_importing_them() -> None:
    """`gradlint --help` shows the lazy commands' help from the table in cli.py: the same
    lines click prints after importing them."""
    import click

    from gradlint.cli import main

    ctx = click.Context(main, info_name="gradlint")
    ours, clicks = click.HelpFormatter(width=80), click.HelpFormatter(width=80)
    main.format_commands(ctx, ours)
    click.Group.format_commands(main, ctx, clicks)  # imports every command for its help
    assert ours.getvalue() == clicks.getvalue()
    assert "server" in ours.getvalue() and "trace" in ours.getvalue()
