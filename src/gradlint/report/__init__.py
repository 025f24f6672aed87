"""Output formats. Each module renders a list of diagnostics for one audience; a format's module
is imported when a report in that format is made (sarif's rule table needs every rule's docs)."""

from __future__ import annotations

import importlib

import click

from gradlint.diagnostics import Diagnostic
from gradlint.report.options import ReportOptions

_MODULES = {
    "concise": "concise",
    "full": "full",
    "json": "json_format",
    "sarif": "sarif",
    "github": "github",
    "pylint": "pylint",
}


def render(
    output_format: str,
    diagnostics: list[Diagnostic],
    sources: dict[str, str],
    options: ReportOptions | None = None,
) -> str:
    """The report of `diagnostics` in `output_format` (one of `format_option`'s choices)."""
    module = importlib.import_module(f"gradlint.report.{_MODULES[output_format]}")
    return str(module.render(diagnostics, sources, options))


# `--format`, shared by every command that prints findings
format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(_MODULES)),
    default="concise",
    show_default=True,
    help="Output format.",
)
