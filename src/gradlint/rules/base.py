"""What every rule declares: its code, a one-line summary, and its documentation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    docs: str  # sections: What it does / Why is this bad? / Example / Use instead / Fix safety
    fixable: bool = False
