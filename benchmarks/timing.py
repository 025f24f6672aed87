"""How a command is timed and judged: one child's wall time and peak memory, the medians of
commands that take turns over several rounds, and the targets those medians are held to.

Standard library only; Linux or macOS (each child's peak memory comes from os.wait4).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Tool:
    name: str
    command: list[str]  # complete, paths included
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
        sense = "<" if self.strict else "<="
        value = shown(self.value)
        return f"{self.verdict():<13} {self.label}: {value} (target {sense} {self.bound:.3g})"


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


def round_robin(listed: list[Tool], repeat: int, quiet: bool = False) -> dict[str, Run]:
    """The median run of each tool; the tools take turns within each round, so a slow spell of
    the machine hits them all alike."""
    runs: dict[str, list[Run]] = {tool.name: [] for tool in listed}
    for repetition in range(repeat):
        for tool in listed:
            run = measure(tool.command, tool.exit_codes)
            runs[tool.name].append(run)
            if not quiet:
                progress = f"  [{repetition + 1}/{repeat}] {tool.name}: {run.seconds:.2f} s"
                print(progress, file=sys.stderr)
    return {name: median(tool_runs) for name, tool_runs in runs.items()}


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs), statistics.median(r.peak_mb for r in runs)
    )


def ratio(numerator: Run | None, denominator: Run | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    return numerator.seconds / denominator.seconds


def shown(value: float | None, digits: int = 3) -> str:
    """A table cell: the value, or a dash where nothing was measured."""
    return "-" if value is None else f"{value:.{digits}f}"
