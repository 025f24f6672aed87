"""gradlint's speed on real code next to ruff, TorchFix, flake8 and grep, against its targets.

One run prints, for each part it measures, the medians and their ratios, then every target:

- corpora: gradlint cold and warm next to ruff (and TorchFix and grep) on the "six" training
  libraries and on the "big" corpus (transformers, timm, accelerate), side by side;
- start-up: `gradlint --version` and fully cached checks next to `python -c pass`, ruff, flake8;
- worst files: the slowest files of the corpora, with `check` and `--fix` times;
- LSP: the language server's latency after an edit (benchmarks/lsp_latency.py).

    python benchmarks/run.py                       # all four, both corpora, 5 repetitions
    python benchmarks/run.py --corpus six --skip-torchfix --repeat 1
    python benchmarks/run.py --startup             # only the start-up part
    python benchmarks/run.py --all --repeat 3      # all four, plus scaling on copies of six

Standard library only (gradlint itself is imported for the worst files); Linux or macOS (each
child's peak memory comes from os.wait4). The corpora are fetched by benchmarks/corpus.py.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the sibling modules, importable once their folder is on the path
import corpus_speed  # noqa: E402
import startup  # noqa: E402
import tools  # noqa: E402
import worst_files  # noqa: E402
from timing import Target  # noqa: E402

PARTS = ("compare", "startup", "worst", "lsp", "scaling")
DEFAULT_PARTS = ("compare", "startup", "worst", "lsp")
LSP_EDITS = 20
LSP_TARGET_SECONDS = 0.3


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(repeat: int, with_torchfix: bool) -> None:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    print(f"gradlint speed benchmark, {when}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; {system}")
    print(f"versions: {tools.versions(with_torchfix)}")
    print(f"medians of {repeat} run(s) unless said otherwise\n")


def lsp_latency() -> tuple[float | None, str]:
    """The median latency of the language server over benchmarks/lsp_latency.py's default
    script, or None and why it was not measured."""
    try:
        import lsp_latency
    except ImportError as error:  # the module, or the language server's extra (pygls)
        missing = "benchmarks/lsp_latency.py" if error.name == "lsp_latency" else error.name
        return None, f"not measured: {missing} is missing"
    script = lsp_latency.default_script()
    seconds = statistics.median(lsp_latency.latencies(script, LSP_EDITS))
    lines = len(script.read_text(encoding="utf-8").splitlines())
    return seconds, f"median of {LSP_EDITS} edits of a {lines}-line script, each after a pause"


def byte_compile_gradlint() -> str:
    """Write gradlint's bytecode, as installing its wheel does: an editable install run with
    PYTHONDONTWRITEBYTECODE set would otherwise compile its modules on every start."""
    import compileall

    import gradlint

    folder = Path(gradlint.__file__).parent
    ok = compileall.compile_dir(str(folder), quiet=1)
    return f"compiled in {folder.name}/" if ok else "not all modules compiled"


def chosen_parts(args: argparse.Namespace) -> set[str]:
    if args.all:
        return set(PARTS)
    return {part for part in PARTS if getattr(args, part)} or set(DEFAULT_PARTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", choices=("six", "big", "both"), default="both", help="default: both"
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default: 5)")
    parser.add_argument(
        "--startup-rounds", type=int, default=20, help="rounds of the start-up commands (20)"
    )
    parser.add_argument("--skip-torchfix", action="store_true", help="leave TorchFix out")
    chosen = parser.add_argument_group("parts (none named: all but scaling)")
    chosen.add_argument("--compare", action="store_true", help="gradlint next to the others")
    chosen.add_argument("--startup", action="store_true", help="start-up and cached checks")
    chosen.add_argument("--worst", action="store_true", help="the slowest files")
    chosen.add_argument("--lsp", action="store_true", help="the language server's latency")
    chosen.add_argument("--scaling", action="store_true", help="gradlint on copies of six")
    chosen.add_argument("--all", action="store_true", help="every part")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.startup_rounds < 1:
        parser.error("--repeat and --startup-rounds must be at least 1")
    parts = chosen_parts(args)

    names = ["six", "big"] if args.corpus == "both" else [args.corpus]
    needed = set(names) if {"compare", "worst"} & parts else set()
    if {"startup", "scaling"} & parts:
        needed.add("six")  # what those parts run on
    corpora = {name: corpus_speed.build(name) for name in sorted(needed)}
    with_torchfix = "compare" in parts and "six" in names and not args.skip_torchfix
    found: list[Target] = []

    compiled = byte_compile_gradlint()
    header(args.repeat, with_torchfix)
    print(f"gradlint's bytecode: {compiled}\n")
    if "compare" in parts:
        timed = [
            corpus_speed.time_corpus(corpora[n], args.repeat, args.skip_torchfix) for n in names
        ]
        corpus_speed.report(timed)
        found += [target for one in timed for target in corpus_speed.targets(one)]
    if "scaling" in parts:
        scaled = corpus_speed.scaling(corpora["six"], args.repeat)
        corpus_speed.report_scaling(corpora["six"], scaled)
        found += corpus_speed.scaling_targets(scaled)
    if "startup" in parts:
        medians = startup.time_startup(corpora["six"], args.startup_rounds)
        startup.report(medians, args.startup_rounds)
        found += startup.targets(medians)
    if "worst" in parts:
        slow, analysed = worst_files.find([corpora[n] for n in names], args.repeat)
        worst_files.report(slow, analysed, args.repeat)
        found += worst_files.targets(slow, analysed)
    if "lsp" in parts:
        seconds, how = lsp_latency()
        shown = "-" if seconds is None else f"{1000 * seconds:.0f} ms"
        print(f"\nLSP latency after an edit: {shown} ({how})")
        found.append(Target("LSP latency after an edit (median s)", seconds, LSP_TARGET_SECONDS))

    print("\ntargets")
    for target in found:
        print(f"  {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
