from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click import testing

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).parent.parent / "examples"
# the smallest training loop with a stale gradient: its fix inserts `opt.zero_grad()` first
STALE = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    """
)
_EXPECT = re.compile(r"#.*\bexpect:\s*((?:GL\d{3}[,\s]*)+)")
_RUNTIME_SKIP = re.compile(r"^# runtime: skip\b(.*)$", re.MULTILINE)
# `# runtime: GL002 (why)`: autograd reports this line although gradlint, on purpose, does not
_RUNTIME_ONLY = re.compile(r"#.*\bruntime:\s*(GL\d{3})\s*\(")
# `# runtime: raises RuntimeError: text`: the script ends with this exception (its message contains
# the text); the GL1xx rules about errors autograd raises are confirmed this way
_RUNTIME_RAISES = re.compile(r"^# runtime: raises (\w+)(?::\s*(.+))?$", re.MULTILINE)


class CliRunner(testing.CliRunner):
    """click's test runner with stdout and stderr apart on every click gradlint supports: click 8.2
    always keeps them apart, click 8.0 and 8.1 only when asked."""

    def __init__(self, **kwargs: Any) -> None:
        if "mix_stderr" in inspect.signature(testing.CliRunner.__init__).parameters:
            kwargs.setdefault("mix_stderr", False)
        super().__init__(**kwargs)


@dataclass(frozen=True)
class Fixture:
    path: Path
    text: str

    @property
    def expected(self) -> set[tuple[str, int]]:
        """(code, line) pairs written in the fixture as `# expect: GL001` comments."""
        found = set()
        for number, line in enumerate(self.text.splitlines(), 1):
            match = _EXPECT.search(line)
            if match:
                for code in re.findall(r"GL\d{3}", match.group(1)):
                    found.add((code, number))
        return found

    @property
    def runtime_only(self) -> set[tuple[str, int]]:
        return {
            (match.group(1), number)
            for number, line in enumerate(self.text.splitlines(), 1)
            if (match := _RUNTIME_ONLY.search(line))
        }

    @property
    def fixed_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".fixed.py")

    @property
    def runtime_skip(self) -> str | None:
        match = _RUNTIME_SKIP.search(self.text)
        return match.group(1).strip(" ()") if match else None

    @property
    def runtime_raises(self) -> tuple[str, str] | None:
        """(exception class name, text of its message) the script must end with, if any."""
        match = _RUNTIME_RAISES.search(self.text)
        return (match.group(1), (match.group(2) or "").strip()) if match else None

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


def fixtures() -> list[Fixture]:
    paths = sorted(p for p in FIXTURES.glob("*/*.py") if not p.name.endswith(".fixed.py"))
    return [Fixture(p, p.read_text(encoding="utf-8")) for p in paths]


def rule_cases(code: str) -> list[Fixture]:
    """The runnable fixtures of one rule: its own folder and its clean twins (`glNNN_*.py`)."""
    return [
        f
        for f in fixtures()
        if f.runtime_skip is None
        and (f.path.parent.name == code or f.path.name.startswith(f"{code.lower()}_"))
    ]


def reports(fixture: Fixture, code: str) -> bool:
    return any(expected == code for expected, _ in fixture.expected)
