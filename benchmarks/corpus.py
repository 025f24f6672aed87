"""Fetch the pinned corpus of real training code that gradlint is measured on.

Each pinned release is downloaded from PyPI with pip (a wheel when there is one, else the
sdist) into .corpus/downloads/, and only its *.py files are extracted into
.corpus/src/<pkg>-<ver>/ (packaging metadata such as *.dist-info/ is dropped). A package that
is already extracted is skipped, so the script can be re-run at no cost. At the end it prints
the number of files and lines per package.

    python benchmarks/corpus.py            # fetch what is missing, print the counts
    python benchmarks/corpus.py --list     # print the pinned set only
    python benchmarks/corpus.py --force    # extract again (downloads are still reused)
    python benchmarks/corpus.py --only torch,d2l   # just these (any pin, benchmark-only too)

Standard library only; pip is run as a subprocess of the current interpreter.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

# The pinned corpus, shared with later benchmarks: change a pin only on purpose.
PINNED: list[tuple[str, str]] = [
    ("d2l", "1.0.3"),
    ("fastai", "2.8.12"),
    ("pytorch-ignite", "0.5.5"),
    ("pytorch-lightning", "2.6.6"),
    ("skorch", "1.4.0"),
    ("stable-baselines3", "2.9.2"),
    ("accelerate", "1.15.0"),
    ("transformers", "5.23.0"),
    ("sentence-transformers", "6.2.0"),
]
# Test suites of pinned releases, from their sdists (wheels hold no tests): test code builds
# models and optimizers over and over, writes gradients by hand and compares them, which is
# where false alarms show. Extracted to .corpus/src/<pkg>-tests-<ver>/.
TEST_SUITES: list[tuple[str, str]] = [
    ("accelerate", "1.15.0"),
    ("transformers", "5.23.0"),
]
# Fetched only when asked for by name (timm for the speed benchmark's big corpus, torch with
# `--only torch`). They go to their own folder because the real-code test lints every folder of
# SOURCES.
BENCHMARK_ONLY: list[tuple[str, str]] = [
    ("timm", "1.0.31"),
    ("torch", "2.13.0"),
]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / ".corpus"
DOWNLOADS = CORPUS / "downloads"
SOURCES = CORPUS / "src"
BENCHMARK_SOURCES = CORPUS / "bench-src"
DONE_MARKER = ".extracted"  # written last: its presence means the extraction finished
METADATA_SUFFIXES = (".dist-info", ".egg-info")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _same_release(found: str, pinned: str) -> bool:
    """A wheel's version may carry a local label (torch's 2.13.0+cpu is release 2.13.0)."""
    return found == pinned or found.startswith(pinned + "+")


def find_archive(package: str, version: str, sdist: bool = False) -> Path | None:
    """The downloaded wheel (preferred unless `sdist`) or sdist of package==version."""
    if not DOWNLOADS.is_dir():
        return None
    wheels, sdists = [], []
    for path in sorted(DOWNLOADS.iterdir()):
        name = path.name
        if name.endswith(".whl"):
            parts = name[: -len(".whl")].split("-")
            if (
                len(parts) >= 2
                and canonical(parts[0]) == canonical(package)
                and _same_release(parts[1], version)
            ):
                wheels.append(path)
        else:
            for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
                if name.endswith(ext):
                    stem = name[: -len(ext)]
                    base, _, ver = stem.rpartition("-")
                    if canonical(base) == canonical(package) and ver == version:
                        sdists.append(path)
    found = sdists if sdist else wheels + sdists
    return found[0] if found else None


def download(package: str, version: str, sdist: bool = False) -> Path:
    archive = find_archive(package, version, sdist)
    if archive is not None:
        return archive
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary=:all:" if sdist else "--no-binary=:none:",
        *(["--no-build-isolation"] if sdist else []),
        "-d",
        str(DOWNLOADS),
        f"{package}=={version}",
    ]
    print(f"downloading {package}=={version}", file=sys.stderr)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise SystemExit(f"pip download failed for {package}=={version}")
    archive = find_archive(package, version, sdist)
    if archive is None:
        raise SystemExit(f"pip download of {package}=={version} left no archive we recognise")
    return archive


def _wanted(member: str, strip_top: bool, under: str | None = None) -> str | None:
    """The path to extract `member` to (relative, POSIX), or None to skip it; with `under`,
    only members in that top folder (`tests`)."""
    parts = PurePosixPath(member).parts
    if strip_top:  # sdists put everything under <name>-<version>/
        parts = parts[1:]
    if under is not None and (not parts or parts[0] != under):
        return None
    if not parts or not parts[-1].endswith(".py"):
        return None
    if any(p in ("", ".", "..") or p.startswith("/") for p in parts):
        return None  # unsafe or odd member name
    if any(p.endswith(METADATA_SUFFIXES) for p in parts[:-1]):
        return None
    return "/".join(parts)


def _members(archive: Path, under: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield (relative target path, bytes) for every *.py file in the archive."""
    if archive.suffix in (".whl", ".zip"):
        strip_top = archive.suffix == ".zip"
        with zipfile.ZipFile(archive) as zf:
            for entry in zf.infolist():
                if entry.is_dir():
                    continue
                target = _wanted(entry.filename, strip_top, under)
                if target is not None:
                    yield target, zf.read(entry)
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                if not info.isfile():
                    continue
                target = _wanted(info.name, True, under)
                if target is not None:
                    handle = tf.extractfile(info)
                    if handle is not None:
                        yield target, handle.read()


def destination_of(package: str, version: str) -> Path:
    """Where package==version is extracted to."""
    folder = BENCHMARK_SOURCES if (package, version) in BENCHMARK_ONLY else SOURCES
    return folder / f"{package}-{version}"


def select(names: list[str]) -> list[tuple[str, str]]:
    """The pins (benchmark-only ones included) of the named packages, in the order named."""
    by_name = {canonical(p): (p, v) for p, v in PINNED + BENCHMARK_ONLY}
    unknown = [n for n in names if canonical(n) not in by_name]
    if unknown:
        raise SystemExit(f"not pinned: {', '.join(unknown)}")
    return [by_name[canonical(n)] for n in names]


def fetch(package: str, version: str, force: bool = False) -> tuple[Path, str]:
    """The extracted folder of package==version, fetched if missing, and what was done."""
    destination = destination_of(package, version)
    if not force and (destination / DONE_MARKER).exists():
        return destination, "already extracted"
    archive = download(package, version)
    extract(package, version, archive)
    return destination, f"extracted from {archive.name}"


def fetch_tests(package: str, version: str, force: bool = False) -> tuple[Path, str]:
    """The extracted test suite of package==version, from its sdist."""
    destination = SOURCES / f"{package}-tests-{version}"
    if not force and (destination / DONE_MARKER).exists():
        return destination, "already extracted"
    archive = download(package, version, sdist=True)
    extract(package, version, archive, destination, under="tests")
    return destination, f"tests extracted from {archive.name}"


def extract(
    package: str,
    version: str,
    archive: Path,
    destination: Path | None = None,
    under: str | None = None,
) -> Path:
    destination = destination or destination_of(package, version)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for target, data in _members(archive, under):
        path = destination / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (destination / DONE_MARKER).write_text(f"{archive.name}\n", encoding="utf-8")
    return destination


def count(destination: Path) -> tuple[int, int]:
    files = lines = 0
    for directory, _, names in os.walk(destination):
        for name in names:
            if name.endswith(".py"):
                files += 1
                with open(os.path.join(directory, name), "rb") as handle:
                    lines += sum(1 for _ in handle)
    return files, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the pinned set and exit")
    parser.add_argument("--force", action="store_true", help="extract again even if present")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated packages to fetch")
    args = parser.parse_args(argv)
    pins = select(args.only.split(",")) if args.only else PINNED

    if args.list:
        for package, version in pins:
            print(f"{package}=={version}")
        return 0

    CORPUS.mkdir(parents=True, exist_ok=True)
    # one fetch at a time: parallel test workers each ask for the corpus
    with open(CORPUS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = _fetch_all(pins, args.force, not args.only)
    return _print(rows, pins)


def _fetch_all(
    pins: list[tuple[str, str]], force: bool, with_tests: bool
) -> list[tuple[str, int, int, str]]:
    rows = []
    for package, version in pins:
        destination, status = fetch(package, version, force)
        files, lines = count(destination)
        rows.append((f"{package}-{version}", files, lines, status))
    for package, version in TEST_SUITES if with_tests else []:
        destination, status = fetch_tests(package, version, force)
        files, lines = count(destination)
        rows.append((f"{package}-tests-{version}", files, lines, status))
    return rows


def _print(rows: list[tuple[str, int, int, str]], pins: list[tuple[str, str]]) -> int:
    width = max(len(r[0]) for r in rows)
    print(f"{'package':<{width}}  {'files':>6}  {'lines':>9}")
    for name, files, lines, status in rows:
        print(f"{name:<{width}}  {files:>6}  {lines:>9}  ({status})")
    total_files = sum(r[1] for r in rows)
    total_lines = sum(r[2] for r in rows)
    print(f"{'total':<{width}}  {total_files:>6}  {total_lines:>9}")
    print(f"sources: {SOURCES.relative_to(ROOT)}/")
    if any(pin in BENCHMARK_ONLY for pin in pins):
        print(f"benchmark-only sources: {BENCHMARK_SOURCES.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
