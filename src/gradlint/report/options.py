"""What a report needs to know beyond the findings: which fixes `--fix` would apply, and where
the rule pages live."""

from __future__ import annotations

from dataclasses import dataclass

from gradlint import REPOSITORY, __version__

# the pages of the released version, so a link keeps matching the rule that reported it
DEFAULT_DOCS_URL = f"{REPOSITORY}/blob/v{__version__}/docs/rules/"


@dataclass(frozen=True)
class ReportOptions:
    unsafe_fixes: bool = False  # whether `--fix` would apply unsafe fixes too (the `[*]` mark)
    docs_url: str = DEFAULT_DOCS_URL  # the rule pages' folder: a finding links `{docs_url}GL001.md`

    def rule_url(self, code: str) -> str:
        return f"{self.docs_url.rstrip('/')}/{code}.md"

    def applies(self, applicability: str) -> bool:
        """Whether `--fix` applies a fix of this applicability, as ruff decides it."""
        return applicability == "safe" or self.unsafe_fixes
