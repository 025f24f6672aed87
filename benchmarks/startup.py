"""What a command costs before it does any work: gradlint's start next to the bare interpreter,
ruff and flake8, and a check whose every file is in the cache (an editor's save, a pre-commit
hook on unchanged code).

The commands take well under a second, so they take turns over many rounds (20 by default).
"""

from __future__ import annotations

import sys
import tempfile

import corpus
import tools
from corpus_speed import Corpus, gradlint_check
from timing import Run, Target, Tool, measure, ratio, round_robin

# a training step of a typical size (318 lines), from the six corpus
ONE_FILE = "stable-baselines3-2.9.2/stable_baselines3/ppo/ppo.py"
PYTHON = "python -c pass"
VERSION = "gradlint --version"
ONE_CACHED = "gradlint check, 1 file cached"
ALL_CACHED = "gradlint check, six cached"


def time_startup(six: Corpus, rounds: int) -> dict[str, Run]:
    one_file = str(corpus.SOURCES / ONE_FILE)
    with tempfile.TemporaryDirectory(prefix="gradlint-bench-startup-") as cache:
        cached = [*gradlint_check(), "--cache-dir", cache]
        listed = [
            Tool(PYTHON, [sys.executable, "-c", "pass"]),
            Tool("ruff --version", [*tools.ruff(), "--version"]),
            Tool(VERSION, [*tools.gradlint(), "--version"]),
            Tool(ONE_CACHED, [*cached, one_file]),
            Tool(ALL_CACHED, [*cached, *six.paths]),
        ]
        flake8 = tools.flake8()
        if flake8 is not None:
            listed.insert(2, Tool("flake8 --version", [*flake8, "--version"]))
        print("start-up: filling the cache", file=sys.stderr)
        measure([*cached, *six.paths])  # the one file is among them
        return round_robin(listed, rounds, quiet=True)


def report(medians: dict[str, Run], rounds: int) -> None:
    python = medians[PYTHON]
    print(f"\nstart-up, medians of {rounds} rounds")
    print(f"{'command':<32} {'ms':>8} {'peak MB':>8} {'/ python':>9}")
    for command, run in medians.items():
        times = ratio(run, python) or 0.0
        print(f"{command:<32} {1000 * run.seconds:>8.1f} {run.peak_mb:>8.0f} {times:>9.2f}")
    print(f"(the one file: {ONE_FILE})")


def targets(medians: dict[str, Run] | None) -> list[Target]:
    def times_python(command: str) -> float | None:
        return None if medians is None else ratio(medians[command], medians[PYTHON])

    return [
        Target("--version within 4x of python -c pass", times_python(VERSION), 4.0),
        Target("cached check of 1 file within 4x of python -c pass", times_python(ONE_CACHED), 4.0),
        Target("cached check of six within 10x of python -c pass", times_python(ALL_CACHED), 10.0),
    ]
