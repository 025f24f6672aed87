"""Verdicts on real training code nobody here wrote: pinned releases from the package index,
linted whole, every finding reviewed by hand (tests/realcode/reviewed.json). Any change of
verdict on that code fails here and shows up in review.

The corpus is fetched by benchmarks/corpus.py into .corpus/ (about 50 MB of downloads); the
test runs in CI and, locally, when GRADLINT_REALCODE=1 or the corpus is already there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradlint.batch import Options, Task, default_jobs, lint_files
from gradlint.config import Settings
from gradlint.discover import discover

ROOT = Path(__file__).parent.parent
REVIEW = json.loads((ROOT / "tests" / "realcode" / "reviewed.json").read_text(encoding="utf-8"))
SOURCES = ROOT / ".corpus" / "src"
WANTED = bool(os.environ.get("CI") or os.environ.get("GRADLINT_REALCODE"))

pytestmark = [
    pytest.mark.slow,  # minutes: the whole corpus, cold
    pytest.mark.skipif(not WANTED and not SOURCES.is_dir(), reason="real-code corpus not fetched"),
]


@pytest.fixture(scope="module")
def findings() -> set[tuple[str, str, str, int, str]]:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "corpus.py")], check=True)
    found = set()
    for folder in sorted(SOURCES.iterdir()):
        package, _, version = folder.name.rpartition("-")
        tasks = [Task(c.path, Settings()) for c in discover([str(folder)])]
        for result in lint_files(tasks, Options(jobs=default_jobs())):
            relative = Path(result.path).resolve().relative_to(folder.resolve())
            for d in result.diagnostics:
                found.add((package, version, relative.as_posix(), d.line, d.code))
    return found


def test_findings_equal_the_reviewed_snapshot(findings):
    reviewed = {(e["package"], e["version"], e["file"], e["line"], e["code"]) for e in REVIEW}
    assert findings == reviewed


def test_no_internal_errors_or_unread_files(findings):
    assert not [f for f in findings if f[4].startswith("GL9")]


def test_every_reviewed_finding_is_a_real_bug():
    assert [e for e in REVIEW if e["verdict"] != "real"] == []
    assert all(e["why"].strip() for e in REVIEW)
