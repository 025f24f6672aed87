"""The files gradlint takes longest on: a slow file is felt on every save in an editor.

Every file that a rule's trigger words send to the analysis is analysed in this process, one at
a time, and timed by CPU time (what other load on the machine changes least). The slowest are
then timed as a user meets them: `gradlint check` and `gradlint check --fix` on a copy of the
file in a temporary folder (the corpus itself is never written), start-up included.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from corpus_speed import Corpus, gradlint_check
from timing import Target, measure

SHOWN = 10


@dataclass(frozen=True)
class Analysed:
    path: Path
    name: str  # the path inside the corpus, from the package folder on
    lines: int
    seconds: float  # CPU time of the analysis in this process
    share: float  # seconds / the corpus's seconds for this many lines (1: an average file)


@dataclass(frozen=True)
class Slow:
    file: Analysed
    check: float  # median wall time of the command line, in seconds
    fix: float


def analyse_all(chosen: Corpus) -> list[Analysed]:
    """Each file the triggers select, with the CPU time of its analysis."""
    from gradlint import triggers
    from gradlint.config import Settings
    from gradlint.engine import lint_source
    from gradlint.source import UnreadableSource, decode

    settings = Settings()
    codes = tuple(settings.codes)
    timed: list[tuple[Path, str, int, float]] = []
    for folder in chosen.folders:
        for path in sorted(folder.rglob("*.py")):
            data = path.read_bytes()
            try:
                text = decode(str(path), data).text
            except UnreadableSource:
                continue
            if not triggers.triggered(text, codes):
                continue
            if not timed:  # the first analysis also pays for lazy imports: not counted
                lint_source(str(path), data, settings)
            started = time.process_time()
            lint_source(str(path), data, settings)
            seconds = time.process_time() - started
            name = str(path.relative_to(folder.parent))
            timed.append((path, name, text.count("\n") + 1, seconds))
    total_seconds = sum(seconds for *_, seconds in timed) or 1.0
    total_lines = sum(lines for _, _, lines, _ in timed) or 1
    return [
        Analysed(path, name, lines, seconds, seconds / (total_seconds * lines / total_lines))
        for path, name, lines, seconds in timed
    ]


def time_commands(slowest: list[Analysed], repeat: int) -> list[Slow]:
    """`check` and `check --fix` of each file, on copies: --fix gets a fresh copy every run."""
    with tempfile.TemporaryDirectory(prefix="gradlint-bench-worst-") as scratch:
        timed = []
        for index, analysed in enumerate(slowest):
            folder = Path(scratch, str(index))
            folder.mkdir()
            original = folder / "original"
            shutil.copyfile(analysed.path, original)
            copy = folder / analysed.path.name
            shutil.copyfile(original, copy)
            check = [*gradlint_check(), "--no-cache"]
            checks, fixes = [], []
            for _ in range(repeat):
                checks.append(measure([*check, str(copy)]).seconds)
                fixes.append(measure([*check, "--fix", str(copy)]).seconds)
                shutil.copyfile(original, copy)
            timed.append(Slow(analysed, statistics.median(checks), statistics.median(fixes)))
            print(f"  worst files: {analysed.name} timed", file=sys.stderr)
    return timed


def find(corpora: list[Corpus], repeat: int) -> tuple[list[Slow], int]:
    """The slowest files of the corpora, timed as commands, and how many files were analysed."""
    analysed = []
    for chosen in corpora:
        print(f"worst files: analysing {chosen.name} one file at a time", file=sys.stderr)
        analysed += analyse_all(chosen)
    slowest = sorted(analysed, key=lambda a: a.seconds, reverse=True)[:SHOWN]
    return time_commands(slowest, repeat), len(analysed)


def report(slow: list[Slow], analysed: int, repeat: int) -> None:
    print(f"\nthe {len(slow)} slowest of {analysed} files analysed")
    print(
        "analysis: CPU s in one process; check, --fix: s of the command line on a copy, medians"
        f" of {repeat};\nshare: the analysis time over the corpus's for as many lines"
    )
    width = max([len("file"), *(len(one.file.name) for one in slow)])
    print(f"{'file':<{width}} {'lines':>6} {'analysis':>8} {'check':>6} {'--fix':>6} {'share':>6}")
    for one in slow:
        print(
            f"{one.file.name:<{width}} {one.file.lines:>6,} {one.file.seconds:>8.2f}"
            f" {one.check:>6.2f} {one.fix:>6.2f} {one.file.share:>6.1f}"
        )


def targets(slow: list[Slow] | None) -> list[Target]:
    check = fix = None
    if slow:
        check, fix = max(s.check for s in slow), max(s.fix for s in slow)
    return [
        Target("no file over 1 s to check (slowest check s)", check, 1.0),
        Target("no file over 2 s to fix (slowest --fix s)", fix, 2.0),
    ]
