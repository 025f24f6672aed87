"""gradlint's speed on real code next to TorchFix, ruff and grep, checked against its targets.

Every tool runs on the same pinned corpus (fetched by benchmarks/corpus.py). The tools alternate
within each repetition, so a slow spell of the machine hits all of them alike; the table shows
the medians. TorchFix (and ruff, if this environment has none) is installed into its own
virtual environment under .bench/, because TorchFix pins an older libcst than gradlint needs.

    python benchmarks/run.py                     # the six training libraries, 5 repetitions
    python benchmarks/run.py --corpus large      # plus torch and transformers (2.6M lines)
    python benchmarks/run.py --repeat 9 --scaling --skip-torchfix

Standard library only; Linux or macOS (each child's peak memory comes from os.wait4).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (the sibling script, importable once its folder is on the path)

SIX = ["d2l", "fastai", "pytorch-ignite", "pytorch-lightning", "skorch", "stable-baselines3"]
CORPORA = {"six": SIX, "large": [*SIX, "torch", "transformers"]}

BENCH = corpus.ROOT / ".bench"
VENV = BENCH / "venv"
TORCHFIX = "torchfix==0.7.0"
RUFF = "ruff==0.17.6"  # only installed when this environment has no ruff
SCALES = (1, 2, 4)


@dataclass(frozen=True)
class Tool:
    name: str
    command: list[str]  # the corpus paths are appended
    exit_codes: tuple[int, ...] = (0,)  # TorchFix exits 1 on a file it cannot parse


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float


@dataclass(frozen=True)
class Target:
    label: str
    value: float | None  # None when this run did not measure it
    bound: float
    strict: bool = False  # value < bound rather than value <= bound

    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        ok = self.value < self.bound if self.strict else self.value <= self.bound
        return "met" if ok else "NOT met"

    def __str__(self) -> str:
        shown = "-" if self.value is None else f"{self.value:.3f}"
        sense = "<" if self.strict else "<="
        return f"{self.verdict():<13} {self.label}: {shown} (target {sense} {self.bound:.3g})"


def measure(command: list[str], exit_codes: tuple[int, ...] = (0,)) -> Run:
    """Wall time and peak resident memory of one child process (its own, or that of the largest
    process it waited for, such as a worker). RUSAGE_CHILDREN would give the largest child of
    this whole script so far, not of this run."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode not in exit_codes:
            errors.seek(0)
            tail = errors.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"{' '.join(command[:4])} ... exited {child.returncode}\n{tail}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB elsewhere
    return Run(seconds, usage.ru_maxrss * scale / 2**20)


def output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def venv_tool(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def entries(folder: str) -> int:
    """How many files a cache folder holds: a warm run that adds some missed the cache."""
    return sum(len(names) for _, _, names in os.walk(folder))


def ensure_venv(requirement: str, executable: str) -> Path:
    """The executable of `requirement`, installed into .bench/venv if missing."""
    path = venv_tool(executable)
    if path.exists():
        return path
    if not venv_tool("python").exists():
        print("creating .bench/venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing {requirement} into .bench/venv", file=sys.stderr)
    pip = [str(venv_tool("python")), "-m", "pip", "install", "-q", requirement]
    subprocess.run(pip, check=True)
    return path


def gradlint_command() -> list[str]:
    script = shutil.which("gradlint", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "gradlint"]


def ruff_command() -> list[str]:
    script = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    return [script or str(ensure_venv(RUFF, "ruff"))]


def build_corpus(name: str) -> list[Path]:
    return [corpus.fetch(package, version)[0] for package, version in corpus.select(CORPORA[name])]


def count(folders: list[Path]) -> tuple[int, int]:
    totals = [corpus.count(folder) for folder in folders]
    return sum(t[0] for t in totals), sum(t[1] for t in totals)


def tools(skip_torchfix: bool, cache_dir: str) -> list[Tool]:
    gradlint = [*gradlint_command(), "check", "--isolated", "--exit-zero", "-q"]
    listed = [
        Tool("gradlint cold", [*gradlint, "--no-cache"]),
        Tool("gradlint warm", [*gradlint, "--cache-dir", cache_dir]),
        Tool("gradlint 1 process", [*gradlint, "--no-cache", "--jobs", "1"]),
    ]
    if not skip_torchfix:
        listed.append(
            Tool("TorchFix", [str(ensure_venv(TORCHFIX, "torchfix")), "--select", "ALL"], (0, 1))
        )
    ruff = [*ruff_command(), "check", "--isolated", "--no-respect-gitignore"]
    listed.append(Tool("ruff", [*ruff, "--select", "ALL", "--no-cache", "--exit-zero", "-q"]))
    listed.append(Tool("grep", ["grep", "-rl", "backward"], (0, 1)))
    return listed


def round_robin(listed: list[Tool], paths: list[str], repeat: int) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {tool.name: [] for tool in listed}
    for repetition in range(repeat):
        for tool in listed:
            run = measure([*tool.command, *paths], tool.exit_codes)
            runs[tool.name].append(run)
            print(
                f"  [{repetition + 1}/{repeat}] {tool.name}: {run.seconds:.2f} s", file=sys.stderr
            )
    return runs


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs), statistics.median(r.peak_mb for r in runs)
    )


def scaling(folders: list[Path], repeat: int, files: int) -> dict[int, Run]:
    """gradlint cold on 1, 2 and 4 copies of the corpus; copies differ only in their path."""
    command = [*gradlint_command(), "check", "--isolated", "--exit-zero", "-q", "--no-cache"]
    with tempfile.TemporaryDirectory(prefix="gradlint-scaling-") as scratch:
        copies = []
        for index in range(max(SCALES)):
            copy = Path(scratch, f"copy{index}")
            for folder in folders:
                shutil.copytree(folder, copy / folder.name)
            copies.append(copy)
        runs: dict[int, list[Run]] = {scale: [] for scale in SCALES}
        for repetition in range(repeat):
            for scale in SCALES:
                run = measure([*command, *(str(c) for c in copies[:scale])])
                runs[scale].append(run)
                progress = f"{scale}x ({scale * files} files): {run.seconds:.2f} s"
                print(f"  [{repetition + 1}/{repeat}] {progress}", file=sys.stderr)
    return {scale: median(r) for scale, r in runs.items()}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ratio(numerator: Run | None, denominator: Run | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    return numerator.seconds / denominator.seconds


def targets(medians: dict[str, Run], scaled: dict[int, Run] | None) -> list[Target]:
    """The speed targets, each as a bound on a ratio of median times or on megabytes."""
    cold, warm = medians["gradlint cold"], medians["gradlint warm"]
    peak = max(run.peak_mb for tool, run in medians.items() if tool.startswith("gradlint"))
    # Linear time and flat memory: 4 copies may cost at most 25% more per file, and 25% more peak.
    per_file = peak_growth = None
    if scaled is not None:
        per_file = (scaled[4].seconds / 4) / scaled[1].seconds
        peak_growth = scaled[4].peak_mb / scaled[1].peak_mb
    return [
        Target(
            "cold 20x faster than TorchFix (cold / TorchFix)",
            ratio(cold, medians.get("TorchFix")),
            1 / 20,
        ),
        Target("cold within 3x of ruff (cold / ruff)", ratio(cold, medians["ruff"]), 3.0),
        Target("warm 10x faster than cold (warm / cold)", ratio(warm, cold), 1 / 10),
        Target("warm within 2x of grep (warm / grep)", ratio(warm, medians["grep"]), 2.0),
        Target("peak memory below 300 MB (largest gradlint median, MB)", peak, 300.0, strict=True),
        Target("time linear in files (time per file, 4x / 1x)", per_file, 1.25),
        Target("memory flat as the corpus grows (peak MB, 4x / 1x)", peak_growth, 1.25),
    ]


def versions(with_torchfix: bool) -> str:
    found = [
        f"gradlint {metadata.version('gradlint')} (libcst {metadata.version('libcst')})",
        output([*ruff_command(), "--version"]),
        output(["grep", "--version"]),
    ]
    if with_torchfix:
        venv_python = str(venv_tool("python"))
        probe = "from importlib.metadata import version; print(version('libcst'))"
        libcst = output([venv_python, "-c", probe])
        torchfix = output([str(venv_tool("torchfix")), "--version"])
        found.insert(1, f"torchfix {torchfix} (libcst {libcst})")
    return "; ".join(found)


def report(name: str, size: tuple[int, int], medians: dict[str, Run], repeat: int) -> None:
    files, lines = size
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    print(f"gradlint speed benchmark, {when}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; {system}")
    print(f"versions: {versions('TorchFix' in medians)}")
    print(f"corpus: {name}, {files} files, {lines:,} lines; medians of {repeat} run(s)\n")

    print(f"{'tool':<20} {'files':>6} {'lines':>10} {'seconds':>8} {'peak MB':>8}")
    for tool, run in medians.items():
        print(f"{tool:<20} {files:>6} {lines:>10,} {run.seconds:>8.2f} {run.peak_mb:>8.0f}")

    print("\nratios of median times (gradlint / other; below 1: gradlint is faster)")
    for mode in ("cold", "warm"):
        ours = medians[f"gradlint {mode}"]
        others = [tool for tool in ("TorchFix", "ruff", "grep") if tool in medians]
        cells = [f"/ {tool} {ratio(ours, medians[tool]):.3f}" for tool in others]
        print(f"  gradlint {mode} " + ", ".join(cells))


def report_scaling(files: int, scaled: dict[int, Run]) -> None:
    print("\nscaling: gradlint cold on copies of the corpus")
    print(f"{'copies':>6} {'files':>7} {'seconds':>8} {'ms/file':>8} {'peak MB':>8}")
    for scale, run in scaled.items():
        ms = 1000 * run.seconds / (scale * files)
        print(f"{scale:>5}x {scale * files:>7} {run.seconds:>8.2f} {ms:>8.2f} {run.peak_mb:>8.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="six", help="default: six")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default: 5)")
    parser.add_argument("--skip-torchfix", action="store_true", help="leave TorchFix out")
    parser.add_argument("--scaling", action="store_true", help="also lint 1, 2 and 4 copies")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    folders = build_corpus(args.corpus)
    size = count(folders)
    paths = [str(folder) for folder in folders]
    with tempfile.TemporaryDirectory(prefix="gradlint-bench-cache-") as cache_dir:
        listed = tools(args.skip_torchfix, cache_dir)
        print("filling the cache for the warm runs", file=sys.stderr)
        warm = next(tool for tool in listed if tool.name == "gradlint warm")
        measure([*warm.command, *paths])
        filled = entries(cache_dir)
        runs = round_robin(listed, paths, args.repeat)
        missed = entries(cache_dir) != filled
    scaled = scaling(folders, args.repeat, size[0]) if args.scaling else None

    medians = {tool: median(tool_runs) for tool, tool_runs in runs.items()}
    report(args.corpus, size, medians, args.repeat)
    if missed:
        print("warning: the warm runs missed the cache (gradlint changed during the run?)")
    if scaled is not None:
        report_scaling(size[0], scaled)
    print("\ntargets")
    for target in targets(medians, scaled):
        print(f"  {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
