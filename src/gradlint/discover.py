"""Which files to lint: explicit files always, folders walked for `*.py` minus ignored paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pathspec

SKIPPED_DIRECTORIES = frozenset(
    [
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".eggs",
        "__pycache__",
        "build",
        "dist",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".gradlint_cache",
        "site-packages",
        ".ipynb_checkpoints",
    ]
)


@dataclass(frozen=True)
class Candidate:
    path: str  # as given or found, relative where possible
    problem: str | None = None  # why it cannot be linted (missing path, ...)


def discover(paths: list[str]) -> Iterator[Candidate]:
    seen: set[str] = set()
    for given in paths:
        if not os.path.lexists(given):
            yield Candidate(given, "no such file or directory")
        elif os.path.isdir(given):
            for found in _walk(given):
                key = os.path.realpath(found)
                if key not in seen:
                    seen.add(key)
                    yield Candidate(_display(found))
        else:
            key = os.path.realpath(given)
            if key not in seen:
                seen.add(key)
                yield Candidate(_display(given))


def _display(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def _walk(root: str) -> Iterator[str]:
    """Depth-first in sorted order, honouring every .gitignore on the way down."""
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    repository_top = _repository_top(root)
    if repository_top is not None:
        for directory in _parents_between(repository_top, root):
            spec = _gitignore(directory)
            # a folder named on the command line is linted even if a parent ignores it
            if spec is not None and not _ignored(os.path.abspath(root), True, [(directory, spec)]):
                specs.append((directory, spec))
    yield from _walk_directory(root, specs, set())


def _walk_directory(
    directory: str, specs: list[tuple[str, pathspec.GitIgnoreSpec]], visited: set[str]
) -> Iterator[str]:
    real = os.path.realpath(directory)
    if real in visited:  # a symlink loop
        return
    visited.add(real)
    own = _gitignore(directory)
    if own is not None:
        specs = [*specs, (directory, own)]
    if os.path.isfile(os.path.join(directory, "pyvenv.cfg")):
        return
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        is_dir = entry.is_dir()
        if is_dir and entry.name in SKIPPED_DIRECTORIES or entry.name.endswith(".egg-info"):
            continue
        if _ignored(entry.path, is_dir, specs):
            continue
        if is_dir:
            yield from _walk_directory(entry.path, specs, visited)
        elif entry.name.endswith(".py") or entry.name.endswith(".pyi"):
            yield entry.path


def _ignored(path: str, is_dir: bool, specs: list[tuple[str, pathspec.GitIgnoreSpec]]) -> bool:
    for base, spec in specs:
        relative = os.path.relpath(path, base).replace(os.sep, "/")
        if is_dir:
            relative += "/"
        if spec.match_file(relative):
            return True
    return False


def _gitignore(directory: str) -> pathspec.GitIgnoreSpec | None:
    path = os.path.join(directory, ".gitignore")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return pathspec.GitIgnoreSpec.from_lines(handle)
    except OSError:
        return None


def _repository_top(path: str) -> str | None:
    current = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _parents_between(top: str, root: str) -> list[str]:
    """`top` and each folder below it down to `root`'s parent (their .gitignore apply to root)."""
    root = os.path.abspath(root)
    chain = []
    current = os.path.dirname(root)
    while len(current) >= len(top):
        chain.append(current)
        if current == top:
            break
        current = os.path.dirname(current)
    return list(reversed(chain))
