"""Which files to lint: paths as given, and the Python files and notebooks of folders walked
minus excluded and ignored paths."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from gradlint.limits import read_regular

if TYPE_CHECKING:
    import pathspec

# a .gitignore larger than this is not read (a link to /dev/zero never ends)
MAX_GITIGNORE_BYTES = 1024 * 1024

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

    @cached_property
    def spec(self) -> pathspec.GitIgnoreSpec:
        # built on first use: linting files given by name matches no glob, and importing
        # pathspec costs more than the rest of a cached run's start
        return _spec(self.patterns)

    def matches(self, path: str, is_dir: bool = False) -> bool:
        relative = self._relative(path)
        return relative is not None and self.spec.match_file(relative + ("/" if is_dir else ""))

    def sparing(self, folder: str) -> PathGlobs:
        """Without the globs that match `folder`: a folder named on the command line is walked."""
        relative = self._relative(folder)
        if relative is None:
            return self
        kept = [p for p in self.patterns if not _spec([p]).match_file(relative + "/")]
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
                if found.problem is not None:
                    yield Candidate(_display(found.path), found.problem)
                    continue
                key = os.path.realpath(found.path)
                if key not in seen:
                    seen.add(key)
                    yield Candidate(_display(found.path))
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


def _walk(root: str, exclude: PathGlobs) -> Iterator[Candidate]:
    """Depth-first in sorted order, honouring every .gitignore on the way down."""
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    repository_top = _repository_top(root)
    if repository_top is not None:
        for directory in _parents_between(repository_top, root):
            spec, _ = _gitignore(directory)
            # a folder named on the command line is linted even if a parent ignores it
            if spec is not None and not _ignored(os.path.abspath(root), True, [(directory, spec)]):
                specs.append((directory, spec))
    yield from _walk_directory(root, specs, exclude, set())


def _walk_directory(
    directory: str,
    specs: list[tuple[str, pathspec.GitIgnoreSpec]],
    exclude: PathGlobs,
    visited: set[str],
) -> Iterator[Candidate]:
    real = os.path.realpath(directory)
    if real in visited:  # a symlink loop
        return
    visited.add(real)
    own, problem = _gitignore(directory)
    if problem is not None:  # said, not silently skipped: its patterns do not apply
        yield Candidate(os.path.join(directory, ".gitignore"), problem)
    if own is not None:
        specs = [*specs, (directory, own)]
    if os.path.isfile(os.path.join(directory, "pyvenv.cfg")):
        return
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as error:
        yield Candidate(directory, f"cannot list folder: {error.strerror or error}")
        return
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError as error:  # a link in a cycle (a -> b, b -> a): neither file nor folder
            if not (exclude.matches(entry.path) or _ignored(entry.path, False, specs)):
                yield Candidate(entry.path, f"cannot read file: {error.strerror or error}")
            continue
        if exclude.matches(entry.path, is_dir) or _ignored(entry.path, is_dir, specs):
            continue
        if is_dir:
            yield from _walk_directory(entry.path, specs, exclude, visited)
        elif entry.name.endswith((".py", ".pyi", ".ipynb")):
            yield Candidate(entry.path)


def _ignored(path: str, is_dir: bool, specs: list[tuple[str, pathspec.GitIgnoreSpec]]) -> bool:
    for base, spec in specs:
        relative = os.path.relpath(path, base).replace(os.sep, "/")
        if is_dir:
            relative += "/"
        if spec.match_file(relative):
            return True
    return False


def _gitignore(directory: str) -> tuple[pathspec.GitIgnoreSpec | None, str | None]:
    """The folder's .gitignore, and why it could not be read when it exists but cannot."""
    path = os.path.join(directory, ".gitignore")
    if not os.path.lexists(path):
        return None, None
    try:
        data = read_regular(path, MAX_GITIGNORE_BYTES)
    except OSError as error:
        return None, f"cannot read .gitignore: {error.strerror or error}; its patterns do not apply"
    if len(data) > MAX_GITIGNORE_BYTES:
        limit = MAX_GITIGNORE_BYTES // (1024 * 1024)
        return None, f"cannot read .gitignore: larger than {limit} MB; its patterns do not apply"
    lines = data.decode("utf-8", errors="replace").splitlines()
    try:
        return _spec(lines), None
    except ValueError:  # a line git would skip, pathspec refuses (`!`, a lone `\\`)
        valid = [line for line in lines if _valid_pattern(line)]
        return _spec(valid), None


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _valid_pattern(line: str) -> bool:
    try:
        _spec([line])
    except ValueError:
        return False
    return True


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
