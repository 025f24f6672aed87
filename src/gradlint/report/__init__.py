"""Output formats. Each module renders a list of diagnostics for one audience."""

from gradlint.report import concise, full

FORMATS = {"concise": concise.render, "full": full.render}
