"""gradlint on whole corpora next to TorchFix, ruff and grep, cold and warm, and on copies of a
corpus (does time grow linearly and memory stay flat?).

Two corpora: "six" training libraries, and "big", the libraries of the Hugging Face stack and
timm, where most files hold models rather than training loops. TorchFix and gradlint's
one-process run are timed on the six only: on the big corpus they would take most of an hour.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import corpus
import tools
from timing import Run, Target, Tool, measure, ratio, round_robin, shown

SIX = ["d2l", "fastai", "pytorch-ignite", "pytorch-lightning", "skorch", "stable-baselines3"]
BIG = ["transformers", "timm", "accelerate"]
CORPORA = {"six": SIX, "big": BIG}
SCALES = (1, 2, 4)
ROWS = (
    "gradlint cold",
    "gradlint warm",
    "gradlint 1 process",
    "TorchFix",
    "ruff cold",
    "ruff warm",
    "grep",
)


@dataclass(frozen=True)
class Corpus:
    name: str
    folders: list[Path]
    files: int
    lines: int

    @property
    def paths(self) -> list[str]:
        return [str(folder) for folder in self.folders]


@dataclass(frozen=True)
class Timed:
    corpus: Corpus
    medians: dict[str, Run]  # by row of ROWS
    missed_cache: bool  # the warm runs analysed files again


def build(name: str) -> Corpus:
    folders = [
        corpus.fetch(package, version)[0] for package, version in corpus.select(CORPORA[name])
    ]
    counts = [corpus.count(folder) for folder in folders]
    return Corpus(name, folders, sum(c[0] for c in counts), sum(c[1] for c in counts))


def gradlint_check() -> list[str]:
    return [*tools.gradlint(), "check", "--isolated", "--exit-zero", "-q"]


def ruff_check() -> list[str]:
    return [*tools.ruff(), "check", "--isolated", "--no-respect-gitignore", "--select", "ALL"]


def entries(folder: str) -> int:
    """How many files a cache folder holds: a warm run that adds some missed the cache."""
    return sum(len(names) for _, _, names in os.walk(folder))


def time_corpus(chosen: Corpus, repeat: int, skip_torchfix: bool) -> Timed:
    paths = chosen.paths
    with tempfile.TemporaryDirectory(prefix="gradlint-bench-cache-") as caches:
        ours, theirs = os.path.join(caches, "gradlint"), os.path.join(caches, "ruff")
        listed = [
            Tool("gradlint cold", [*gradlint_check(), "--no-cache", *paths]),
            Tool("gradlint warm", [*gradlint_check(), "--cache-dir", ours, *paths]),
        ]
        if chosen.name == "six":
            listed.append(
                Tool("gradlint 1 process", [*gradlint_check(), "--no-cache", "-j1", *paths])
            )
            if not skip_torchfix:
                listed.append(
                    Tool("TorchFix", [*tools.torchfix(), "--select", "ALL", *paths], (0, 1))
                )
        quiet = ["--exit-zero", "-q"]
        listed += [
            Tool("ruff cold", [*ruff_check(), "--no-cache", *quiet, *paths]),
            Tool("ruff warm", [*ruff_check(), "--cache-dir", theirs, *quiet, *paths]),
            Tool("grep", ["grep", "-rl", "backward", *paths], (0, 1)),
        ]
        print(f"{chosen.name}: filling the caches for the warm runs", file=sys.stderr)
        for tool in listed:
            if tool.name.endswith(" warm"):
                measure(tool.command)
        filled = entries(ours)
        medians = round_robin(listed, repeat)
        missed = entries(ours) != filled
    return Timed(chosen, medians, missed)


def scaling(chosen: Corpus, repeat: int) -> dict[int, Run]:
    """gradlint cold on 1, 2 and 4 copies of the corpus; copies differ only in their path."""
    with tempfile.TemporaryDirectory(prefix="gradlint-scaling-") as scratch:
        copies = []
        for index in range(max(SCALES)):
            copy = Path(scratch, f"copy{index}")
            for folder in chosen.folders:
                shutil.copytree(folder, copy / folder.name)
            copies.append(str(copy))
        listed = [
            Tool(
                f"{scale}x ({scale * chosen.files} files)",
                [*gradlint_check(), "--no-cache", *copies[:scale]],
            )
            for scale in SCALES
        ]
        medians = round_robin(listed, repeat)
    return dict(zip(SCALES, medians.values()))


def report(timed: list[Timed]) -> None:
    """The corpora side by side: medians, then ratios of medians."""
    for one in timed:
        print(f"corpus {one.corpus.name}: {one.corpus.files:,} files, {one.corpus.lines:,} lines")
    header = "".join(f" {t.corpus.name + ' s':>9} {t.corpus.name + ' MB':>8}" for t in timed)
    print(f"\n{'tool':<20}{header}")
    for row in ROWS:
        runs = [t.medians.get(row) for t in timed]
        if any(runs):
            print(f"{row:<20}" + "".join(_cells(run) for run in runs))

    print("\nratios of median times (below 1: the first is faster)")
    print(f"{'':<32}" + "".join(f" {t.corpus.name:>8}" for t in timed))
    for first, second in (
        ("gradlint cold", "ruff cold"),
        ("gradlint warm", "ruff warm"),
        ("gradlint cold", "TorchFix"),
        ("gradlint warm", "gradlint cold"),
        ("gradlint warm", "grep"),
    ):
        values = [ratio(t.medians.get(first), t.medians.get(second)) for t in timed]
        if any(v is not None for v in values):
            cells = "".join(f" {shown(v):>8}" for v in values)
            print(f"{first + ' / ' + second:<32}{cells}")
    for one in timed:
        if one.missed_cache:
            print(
                f"warning: the warm runs on {one.corpus.name} missed the cache (gradlint changed?)"
            )


def _cells(run: Run | None) -> str:
    if run is None:
        return f" {'-':>9} {'-':>8}"
    return f" {run.seconds:>9.2f} {run.peak_mb:>8.0f}"


def report_scaling(chosen: Corpus, scaled: dict[int, Run]) -> None:
    print(f"\nscaling: gradlint cold on copies of the {chosen.name} corpus")
    print(f"{'copies':>6} {'files':>7} {'seconds':>8} {'ms/file':>8} {'peak MB':>8}")
    for scale, run in scaled.items():
        files = scale * chosen.files
        ms = 1000 * run.seconds / files
        print(f"{scale:>5}x {files:>7} {run.seconds:>8.2f} {ms:>8.2f} {run.peak_mb:>8.0f}")


def targets(one: Timed) -> list[Target]:
    """The speed targets on one corpus, each a bound on a ratio of median times or on MB: cold
    against ruff and peak memory on every corpus, the rest on the six."""
    medians, name = one.medians, one.corpus.name
    cold, warm = medians["gradlint cold"], medians["gradlint warm"]
    peak = max(run.peak_mb for tool, run in medians.items() if tool.startswith("gradlint"))
    to_ruff = ratio(cold, medians["ruff cold"])
    listed = [
        Target(f"{name}: cold within 1.5x of ruff (cold / ruff cold)", to_ruff, 1.5),
        Target(f"{name}: peak memory below 300 MB (largest gradlint, MB)", peak, 300, strict=True),
    ]
    if name == "six":
        listed += [
            Target(
                "six: cold 20x faster than TorchFix", ratio(cold, medians.get("TorchFix")), 0.05
            ),
            Target("six: warm 10x faster than cold (warm / cold)", ratio(warm, cold), 0.1),
        ]
    return listed


def scaling_targets(scaled: dict[int, Run] | None) -> list[Target]:
    """Linear time and flat memory: 4 copies may cost at most 25% more per file, and 25% more
    peak memory."""
    per_file = peak_growth = None
    if scaled is not None:
        per_file = (scaled[4].seconds / 4) / scaled[1].seconds
        peak_growth = scaled[4].peak_mb / scaled[1].peak_mb
    return [
        Target("time linear in files (time per file, 4x / 1x)", per_file, 1.25),
        Target("memory flat as the corpus grows (peak MB, 4x / 1x)", peak_growth, 1.25),
    ]
