"""Output formats. Each module renders a list of diagnostics for one audience."""

import click

from gradlint.report import concise, full, github, json_format, pylint, sarif

FORMATS = {
    "concise": concise.render,
    "full": full.render,
    "json": json_format.render,
    "sarif": sarif.render,
    "github": github.render,
    "pylint": pylint.render,
}

# `--format`, shared by every command that prints findings
format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(FORMATS)),
    default="concise",
    show_default=True,
    help="Output format.",
)
