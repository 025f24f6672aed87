"""`--add-noqa`: a `# noqa: CODE` on each line with a finding, as ruff's `--add-noqa` writes it
(existing codes kept, the list sorted); a file is written only if it still parses after."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from gradlint import fixes
from gradlint.diagnostics import Diagnostic, FileResult
from gradlint.noqa import with_codes
from gradlint.report.edits import lines_of
from gradlint.report.streams import write_err
from gradlint.source import UnreadableSource, decode, encode

# findings a comment cannot suppress: the file was not analysed
UNSUPPRESSIBLE = ("GL9", "GL800")


def add_noqa_comments(results: Sequence[FileResult], diagnostics: Sequence[Diagnostic]) -> int:
    """Add the comments to the files; returns how many comments were added or extended."""
    by_file: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for d in diagnostics:
        if not d.code.startswith(UNSUPPRESSIBLE) and d.cell is None:
            by_file[d.path][d.line].add(d.code)
    added = 0
    for path, lines in by_file.items():
        if path.endswith(".ipynb"):
            write_err(f"{path}: --add-noqa does not write into notebooks; skipped\n")
            continue
        added += _add_to_file(path, lines)
    return added


def _add_to_file(path: str, codes: dict[int, set[str]]) -> int:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        source = decode(path, data)
    except (OSError, UnreadableSource) as error:
        write_err(f"{path}: not changed: {error}\n")
        return 0
    lines = lines_of(source.text)
    changed = {}
    for number, line_codes in codes.items():
        if 0 < number <= len(lines):
            new = with_codes(lines[number - 1], line_codes)
            if new is not None:
                changed[number] = new
    # a comment must not end up inside a string that spans lines: keep the ones that parse
    kept = dict(changed)
    if not fixes.parses(_joined(lines, kept), source.text, path):
        kept = {}
        for number, new in changed.items():
            trial = {**kept, number: new}
            if fixes.parses(_joined(lines, trial), source.text, path):
                kept = trial
    if not kept:
        return 0
    problem = fixes.write_in_place(path, data, encode(source, _joined(lines, kept)))
    if problem is not None:
        write_err(f"{path}: {problem}\n")
        return 0
    return len(kept)


def _joined(lines: list[str], changed: dict[int, str]) -> str:
    return "".join(changed.get(i, line) for i, line in enumerate(lines, 1))
