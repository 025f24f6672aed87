"""`# noqa` and `# noqa: GL001, GL002` comments on the reported line, matched as ruff does;
which of them suppress nothing (GL800), and adding codes to a line (`--add-noqa`)."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Collection, Iterable

_NOQA = re.compile(
    r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)
OWN_PREFIX = "GL"  # the codes whose suppressions gradlint judges; other tools' are theirs


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


def comment_lines(text: str) -> dict[int, tuple[int, str]]:
    """{line: (0-based column, comment)} of each real `# noqa: GL...` comment: text inside a
    string (a rule's docs quoting `# noqa: GL104`) is not a comment."""
    if not re.search(r"noqa\s*:[^\n]*" + OWN_PREFIX, text, re.IGNORECASE):
        return {}  # the common case: no need to tokenize
    found: dict[int, tuple[int, str]] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT and _NOQA.search(token.string):
                found[token.start[0]] = (token.start[1], token.string)
    except (tokenize.TokenError, SyntaxError):  # an unparsed file: its noqa are not judged
        return {}
    return found


def unused(
    text: str, used: Collection[tuple[int, str]], judged: Iterable[str]
) -> list[tuple[int, int, str]]:
    """(line, 1-based column, message) of each `# noqa` listing a gradlint code that suppressed
    nothing there. `used` holds the (line, code) pairs a comment did suppress; only codes in
    `judged` (the rules that ran on the file) count, so a comment for a rule that is not
    selected, or for another tool, is never reported."""
    judged = frozenset(judged)
    out = []
    for line, (col, comment) in sorted(comment_lines(text).items()):
        codes = suppressed_codes(comment) or frozenset()
        stale = sorted(c for c in codes if c in judged and (line, c) not in used)
        if stale:
            listed = ", ".join(f"`{c}`" for c in stale)
            out.append(
                (line, col + 1, f"`# noqa` comment that suppresses nothing (unused: {listed})")
            )
    return out


def with_codes(line: str, codes: Iterable[str]) -> str | None:
    """The line with `codes` added to its `# noqa: ...` list (existing codes kept, all sorted,
    as ruff writes them), or a `# noqa: ...` comment at its end; None when the line already
    suppresses them all or cannot take a comment (it continues with a backslash)."""
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    match = _NOQA.search(body)
    if match is not None:
        existing = suppressed_codes(body)
        if not existing:  # a bare noqa comment covers every code
            return None
        merged = sorted(existing | {c.upper() for c in codes})
        if len(merged) == len(existing):
            return None
        return f"{body[: match.start()]}# noqa: {', '.join(merged)}{body[match.end() :]}{ending}"
    kept = body.rstrip()
    if kept.endswith("\\"):
        return None
    separator = "  " if kept else ""
    return f"{kept}{separator}# noqa: {', '.join(sorted(set(codes)))}{ending}"
