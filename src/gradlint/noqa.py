"""`# noqa` and `# noqa: GL001, GL002` comments on the reported line, matched as ruff does."""

from __future__ import annotations

import re

_NOQA = re.compile(
    r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)


def suppressed_codes(line: str) -> frozenset[str] | None:
    """None when the line has no noqa; an empty set for a bare `# noqa` (all codes)."""
    match = _NOQA.search(line)
    if match is None:
        return None
    codes = match.group("codes")
    if not codes:
        return frozenset()
    return frozenset(c.upper() for c in re.split(r"[,\s]+", codes) if c)


def is_suppressed(line: str, code: str) -> bool:
    codes = suppressed_codes(line)
    return codes is not None and (not codes or code in codes)
