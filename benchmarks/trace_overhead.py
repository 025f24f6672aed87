"""Overhead of the runtime tracer (`gradlint.trace.watch`) on correct CPU training loops.

Trains a small MLP and a small CNN on synthetic data, timing the same loop with and without
``watch()``. Plain and traced runs alternate, each run starts from the same seed, and the table
shows the median over the repetitions. Peak extra memory is measured separately (tracemalloc
slows every run down): the tracemalloc peak of a traced run minus that of a plain run. It counts
Python-heap allocations only, which is where the tracer keeps its state (tensor storage is
allocated by torch outside tracemalloc's view and is the same in both runs).

    python benchmarks/trace_overhead.py [--reps 7] [--steps-mlp 300] [--steps-cnn 200]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gradlint.trace import watch


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mlp": (mlp, (32, 64)),
    "cnn": (cnn, (32, 1, 28, 28)),
}


def train(name: str, steps: int, traced: bool) -> tuple[float, Any]:
    """Seconds for ``steps`` steps of a correct loop (zero_grad, backward, step)."""
    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(torch.randn(shape), torch.randint(0, 10, (shape[0],))) for _ in range(8)]
    loss_fn = nn.CrossEntropyLoss()
    rec = watch() if traced else None
    start = time.perf_counter()
    with rec if rec is not None else contextlib.nullcontext():
        for i in range(steps):
            x, y = batches[i % len(batches)]
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - start
    if rec is not None:
        assert rec.findings == [], rec.findings  # the loop is correct
    return elapsed, loss.item()


def peak_kib(name: str, steps: int, traced: bool) -> float:
    tracemalloc.start()
    try:
        train(name, steps, traced)
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps-mlp", type=int, default=300)
    parser.add_argument("--steps-cnn", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)  # steadier timings
    steps = {"mlp": args.steps_mlp, "cnn": args.steps_cnn}

    rows = []
    for name in MODELS:
        train(name, 20, False)  # warm up both paths
        train(name, 20, True)
        plain: list[float] = []
        traced: list[float] = []
        for rep in range(args.reps):
            order = (False, True) if rep % 2 == 0 else (True, False)
            for flag in order:
                (traced if flag else plain).append(train(name, steps[name], flag)[0])
        extra = peak_kib(name, steps[name], True) - peak_kib(name, steps[name], False)
        p, t = statistics.median(plain), statistics.median(traced)
        rows.append((name, steps[name], p, t, t / p, extra))

    print(
        f"torch {torch.__version__}, 1 CPU thread, median of {args.reps} alternating runs; "
        "extra memory = tracemalloc peak (traced - plain)"
    )
    header = ("model", "steps", "plain s", "traced s", "ratio", "extra peak KiB")
    print(
        f"{header[0]:<6} {header[1]:>6} {header[2]:>9} {header[3]:>9} {header[4]:>6} {header[5]:>15}"
    )
    for name, n, p, t, ratio, extra in rows:
        print(f"{name:<6} {n:>6} {p:>9.3f} {t:>9.3f} {ratio:>6.2f} {extra:>15.1f}")


if __name__ == "__main__":
    main()
