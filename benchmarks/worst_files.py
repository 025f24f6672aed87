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
    share: float  # seconds / the parsed files' seconds for this many lines (1: average)
    parsed: bool  # by libcst (else a cheaper test found nothing a rule could report)


@dataclass(frozen=True)
class Slow:
    file: Analysed
    check: float  # median wall time of the command line, in seconds
    fix: float


def analyse_all(chosen: Corpus) -> list[Analysed]:
    """Each file the triggers' text test selects, with the CPU time of its analysis; its share
    is measured against the files libcst parsed (those a cheaper test turned away cost
    little for their size)."""
    import libcst

    from gradlint import triggers
    from gradlint.config import Settings
    from gradlint.engine import analyse
    from gradlint.parsing import NotAnalysed
    from gradlint.source import UnreadableSource, decode

    settings = Settings()
    codes = tuple(settings.codes)
    timed: list[tuple[Path, str, int, float, bool]] = []
    for folder in chosen.folders:
        for path in sorted(folder.rglob("*.py")):
            try:
                text = decode(str(path), path.read_bytes()).text
            except UnreadableSource:
                continue
            if not triggers.triggered(text, codes):
                continue
            try:
                if not timed:  # the first analysis also pays for lazy imports: not counted
                    analyse(text, settings)
                started = time.process_time()
                parsed = analyse(text, settings).context is not None
                seconds = time.process_time() - started
            except (libcst.ParserSyntaxError, NotAnalysed):  # reported, not analysed
                continue
            name = str(path.relative_to(folder.parent))
            timed.append((path, name, text.count("\n") + 1, seconds, parsed))
    total_seconds = sum(seconds for *_, seconds, parsed in timed if parsed) or 1.0
    total_lines = sum(lines for _, _, lines, _, parsed in timed if parsed) or 1
    return [
        Analysed(
            path, name, lines, seconds, seconds / (total_seconds * lines / total_lines), parsed
        )
        for path, name, lines, seconds, parsed in timed
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


def find(corpora: list[Corpus], repeat: int) -> tuple[list[Slow], list[Analysed]]:
    """The slowest files of the corpora, timed as commands, and every file analysed."""
    analysed = []
    for chosen in corpora:
        print(f"worst files: analysing {chosen.name} one file at a time", file=sys.stderr)
        analysed += analyse_all(chosen)
    slowest = sorted(analysed, key=lambda a: a.seconds, reverse=True)[:SHOWN]
    return time_commands(slowest, repeat), analysed


def largest(analysed: list[Analysed]) -> list[Analysed]:
    """The largest files libcst parsed: their time should follow their size."""
    return sorted((a for a in analysed if a.parsed), key=lambda a: a.lines, reverse=True)[:SHOWN]


def report(slow: list[Slow], analysed: list[Analysed], repeat: int) -> None:
    parsed = sum(a.parsed for a in analysed)
    print(
        f"\nthe {len(slow)} slowest of {len(analysed)} files analysed ({parsed} parsed by libcst)"
    )
    print(
        "analysis: CPU s in one process; check, --fix: s of the command line on a copy, medians"
        f" of {repeat};\nshare: the analysis time over the parsed files' for as many lines"
    )
    width = max([len("file"), *(len(one.file.name) for one in slow)])
    print(f"{'file':<{width}} {'lines':>6} {'analysis':>8} {'check':>6} {'--fix':>6} {'share':>6}")
    for one in slow:
        print(
            f"{one.file.name:<{width}} {one.file.lines:>6,} {one.file.seconds:>8.2f}"
            f" {one.check:>6.2f} {one.fix:>6.2f} {one.file.share:>6.1f}"
        )
    print(f"\nthe {SHOWN} largest files parsed")
    biggest = largest(analysed)
    width = max([len("file"), *(len(one.name) for one in biggest)])
    print(f"{'file':<{width}} {'lines':>6} {'analysis':>8} {'share':>6}")
    for one in biggest:
        print(f"{one.name:<{width}} {one.lines:>6,} {one.seconds:>8.2f} {one.share:>6.1f}")


def targets(slow: list[Slow] | None, analysed: list[Analysed] | None = None) -> list[Target]:
    check = fix = share = None
    if slow:
        check, fix = max(s.check for s in slow), max(s.fix for s in slow)
    if analysed and largest(analysed):
        share = max(a.share for a in largest(analysed))
    return [
        Target("no file over 1 s to check (slowest check s)", check, 1.0),
        Target("no file over 2 s to fix (slowest --fix s)", fix, 2.0),
        Target(f"the {SHOWN} largest files within 2x of their share (largest share)", share, 2.0),
    ]
