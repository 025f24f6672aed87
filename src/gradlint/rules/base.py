"""What every rule declares: its code, a one-line summary, and its documentation."""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.analysis.events import Site


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    docs: str  # sections: What it does / Why is this bad? / Example / Use instead / Fix safety
    fixable: bool = False


def path_through(*sites: Site) -> tuple[str, ...]:
    """The events of a finding in path order; going back up the file means the next pass."""
    steps: list[str] = []
    for previous, site in zip((None, *sites), sites):
        if previous is not None and site.line <= previous.line:
            steps.append("next iteration")
        steps.append(f"{site.label} at line {site.line}")
    return tuple(steps)
