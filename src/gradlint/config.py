"""What to report: the resolved settings every stage reads (CLI options over `[tool.gradlint]`)."""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.rules import RULES
from gradlint.rules import select as select_codes


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ("GL",)
    ignore: tuple[str, ...] = ()

    def enabled(self, code: str) -> bool:
        return bool(select_codes([code], self.select, self.ignore))

    @property
    def codes(self) -> list[str]:
        """Every rule code these settings report."""
        return select_codes(list(RULES), self.select, self.ignore)
