"""Which files to lint: paths as given, and the Python files and notebooks of folders walked
minus excluded and ignored paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pathspec

# Skipped when walking a folder unless `exclude` replaces them (gitignore-style, like `exclude`).
DEFAULT_EXCLUDE = (
    ".git",
    ".hg",
    ".svn",
    ".bzr",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".eggs",
    "*.egg-info",
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
)


@dataclass(frozen=True)
class PathGlobs:
    """Gitignore-style globs relative to `base` (the config file's folder)."""

    patterns: tuple[str, ...]
    base: str = "."
    spec: pathspec.GitIgnoreSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", pathspec.GitIgnoreSpec.from_lines(self.patterns))

    def matches(self, path: str, is_dir: bool = False) -> bool:
        relative = self._relative(path)
        return relative is not None and self.spec.match_file(relative + ("/" if is_dir else ""))

    def sparing(self, folder: str) -> PathGlobs:
        """Without the globs that match `folder`: a folder named on the command line is walked."""
        relative = self._relative(folder)
        if relative is None:
            return self
        kept = [
            p
            for p in self.patterns
            if not pathspec.GitIgnoreSpec.from_lines([p]).match_file(relative + "/")
        ]
        return self if len(kept) == len(self.patterns) else PathGlobs(tuple(kept), self.base)

    def _relative(self, path: str) -> str | None:
        absolute = os.path.abspath(path)
        try:
            relative = os.path.relpath(absolute, os.path.abspath(self.base))
        except ValueError:  # another drive on Windows
            relative = ".."
        if relative == ".":
            return None
        if relative.startswith(".."):  # outside the base: only name-only globs can match
            relative = os.path.basename(absolute)
        return relative.replace(os.sep, "/")


DEFAULT_EXCLUSION = PathGlobs(DEFAULT_EXCLUDE)


@dataclass(frozen=True)
class Candidate:
    path: str  # as given or found, relative where possible
    problem: str | None = None  # why it cannot be linted (missing path, ...)


def discover(
    paths: list[str], exclude: PathGlobs = DEFAULT_EXCLUSION, force_exclude: bool = False
) -> Iterator[Candidate]:
    """`exclude` prunes folder walks; it skips paths given here only with `force_exclude`."""
    seen: set[str] = set()
    for given in paths:
        if not os.path.lexists(given):
            yield Candidate(given, "no such file or directory")
        elif force_exclude and _excluded(given, exclude):
            continue
        elif os.path.isdir(given):
            for found in _walk(given, exclude.sparing(given)):
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


def _excluded(path: str, exclude: PathGlobs) -> bool:
    """`path` or a folder above it matches (a file inside an excluded folder is excluded)."""
    return exclude.matches(path, os.path.isdir(path))


def _walk(root: str, exclude: PathGlobs) -> Iterator[str]:
    """Depth-first in sorted order, honouring every .gitignore on the way down."""
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    repository_top = _repository_top(root)
    if repository_top is not None:
        for directory in _parents_between(repository_top, root):
            spec = _gitignore(directory)
            # a folder named on the command line is linted even if a parent ignores it
            if spec is not None and not _ignored(os.path.abspath(root), True, [(directory, spec)]):
                specs.append((directory, spec))
    yield from _walk_directory(root, specs, exclude, set())


def _walk_directory(
    directory: str,
    specs: list[tuple[str, pathspec.GitIgnoreSpec]],
    exclude: PathGlobs,
    visited: set[str],
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
        if exclude.matches(entry.path, is_dir) or _ignored(entry.path, is_dir, specs):
            continue
        if is_dir:
            yield from _walk_directory(entry.path, specs, exclude, visited)
        elif entry.name.endswith((".py", ".pyi", ".ipynb")):
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
