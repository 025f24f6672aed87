"""A rule's documentation as one markdown page: what `gradlint rule CODE` prints and what
`docs/rules/CODE.md` holds (`python -m gradlint.report.rule_pages docs/rules` writes them)."""

from __future__ import annotations

import sys
from pathlib import Path

from gradlint.rules.base import Rule
from gradlint.rules.registry import RULES


def page(rule: Rule) -> str:
    fix = "Fix is available (see Fix safety)." if rule.fixable else "No automatic fix."
    return f"# {rule.code} {rule.name}\n\n{rule.summary}.\n\n{fix}\n\n{rule.docs}"


def find(code_or_name: str) -> Rule | None:
    """A rule by its code (`GL001`, any case) or its name (`stale-gradients`)."""
    key = code_or_name.strip()
    return RULES.get(key.upper()) or next((r for r in RULES.values() if r.name == key), None)


def all_pages() -> str:
    """Every rule's page, one after the other, as `gradlint rule --all` prints them."""
    return "\n".join(page(rule) for rule in RULES.values())


def index() -> str:
    """docs/rules/README.md: the table of rules, each linked to its page."""
    rows = [
        f"| [{r.code}]({r.code}.md) | {r.name} | {'yes' if r.fixable else 'no'} | {r.summary} |"
        for r in RULES.values()
    ]
    header = "# Rules\n\nGenerated from each rule's docs by `python -m gradlint.report.rule_pages "
    header += "docs/rules`; do not edit by hand.\n\n| code | name | fix | what it finds |\n"
    return header + "|---|---|---|---|\n" + "\n".join(rows) + "\n"


def expected_files() -> dict[str, str]:
    """{file name: text} of the folder of pages."""
    files = {f"{rule.code}.md": page(rule) for rule in RULES.values()}
    files["README.md"] = index()
    return files


def write(folder: Path) -> list[str]:
    """Write the pages into `folder`, removing pages of rules that no longer exist; returns the
    names of the files written or removed."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = expected_files()
    changed = [
        old.name for old in folder.glob("GL*.md") if old.name not in expected and _unlink(old)
    ]
    for name, text in expected.items():
        target = folder / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8", newline="\n")
            changed.append(name)
    return changed


def _unlink(path: Path) -> bool:
    path.unlink()
    return True


if __name__ == "__main__":
    for name in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/rules")):
        print(name)
