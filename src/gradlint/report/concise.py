"""flake8-style lines, `path:line:col: CODE message`, that every editor can parse."""

from __future__ import annotations

from collections.abc import Iterable

from gradlint.diagnostics import Diagnostic


def render(diagnostics: Iterable[Diagnostic], sources: dict[str, str]) -> str:
    return "".join(f"{d.location}: {d.code} {d.message}\n" for d in diagnostics)
