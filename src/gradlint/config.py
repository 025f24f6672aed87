"""What to report: `[tool.gradlint]` of the nearest pyproject.toml with CLI options over it."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gradlint.discover import DEFAULT_EXCLUDE, DEFAULT_EXCLUSION, PathGlobs
from gradlint.limits import read_regular
from gradlint.rules.catalogue import CATALOGUE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, published separately before 3.11
    import tomli as tomllib

PYPROJECT = "pyproject.toml"
MAX_CONFIG_BYTES = 1024 * 1024  # a pyproject.toml larger than this is refused, not read
KEYS = (
    "select",
    "extend-select",
    "ignore",
    "exclude",
    "extend-exclude",
    "per-file-ignores",
    "force-exclude",
    "unsafe-fixes",
)
# Findings about the input (syntax error, unreadable file) are shown even when not selected,
# unless ignored: a file that was not analysed must not pass silently.
INPUT_PROBLEMS = "GL9"


def select_codes(codes: list[str], select: Sequence[str], ignore: Sequence[str]) -> list[str]:
    """Codes chosen by prefix (`GL` selects all, `GL00` both core rules): the longer prefix
    wins, and `ignore` wins a tie (`--select GL001,GL002 --ignore GL002` reports GL001)."""

    def longest(code: str, prefixes: Sequence[str]) -> int:
        return max((len(p) for p in prefixes if code.startswith(p)), default=-1)

    return [c for c in codes if longest(c, select) > longest(c, ignore)]


@functools.cache
def _chosen_codes(select: tuple[str, ...], ignore: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(select_codes(list(CATALOGUE), select, ignore))


class ConfigError(Exception):
    """A configuration gradlint cannot use; the message names the file and the key."""


@dataclass(frozen=True)
class Settings:
    """What the engine reports for one file: codes chosen by prefix, ignore wins a tie."""

    select: tuple[str, ...] = ("GL",)
    ignore: tuple[str, ...] = ()
    unsafe_fixes: bool = False  # `--fix` also applies fixes that may change behaviour

    def enabled(self, code: str) -> bool:
        return bool(select_codes([code], self.select, self.ignore))

    @property
    def codes(self) -> tuple[str, ...]:
        """Every rule code these settings report (asked for every file of a run, whose
        settings are each their own object: computed once per choice of codes)."""
        return _chosen_codes(self.select, self.ignore)


@dataclass(frozen=True)
class Selection:
    """One source of rule choices: the defaults, the config file or the command line."""

    select: tuple[str, ...] | None = None  # None: keep what the sources before chose
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


DEFAULT_SELECTION = Selection(select=("GL",))


def resolve(selections: Iterable[Selection]) -> tuple[str, ...]:
    """The codes reported after the defaults and then each selection, as ruff resolves them.

    A `select` starts over from its own prefixes (earlier `ignore`s no longer apply);
    `extend-select` and `ignore` adjust what came before, the longer prefix winning.
    """
    codes = list(CATALOGUE)
    inputs = [c for c in codes if c.startswith(INPUT_PROBLEMS)]
    enabled: set[str] = set()
    for selection in (DEFAULT_SELECTION, *selections):
        chosen = select_codes(
            codes, (*(selection.select or ()), *selection.extend_select), selection.ignore
        )
        if selection.select is not None:
            enabled = {*chosen, *select_codes(inputs, ("",), selection.ignore)}
        else:
            removed = set(select_codes(codes, selection.ignore, ())) - set(chosen)
            enabled = (enabled | set(chosen)) - removed
    return tuple(c for c in codes if c in enabled)


def unknown_codes(codes: Iterable[str]) -> list[str]:
    return [c for c in codes if not c or not any(r.startswith(c) for r in CATALOGUE)]


@dataclass(frozen=True)
class Config:
    """One run: the file it came from, the codes reported, what folder walks skip."""

    source: str | None = None  # the pyproject.toml read; None when only defaults apply
    codes: tuple[str, ...] = field(default_factory=lambda: resolve(()))
    exclude: PathGlobs = DEFAULT_EXCLUSION
    per_file_ignores: tuple[tuple[PathGlobs, tuple[str, ...]], ...] = ()
    force_exclude: bool = False
    unsafe_fixes: bool = False

    def settings_for(self, path: str) -> Settings:
        """The codes reported for `path`: per-file-ignores win over any selection."""
        ignored = tuple(
            prefix
            for globs, prefixes in self.per_file_ignores
            if globs.matches(path)
            for prefix in prefixes
        )
        return Settings(
            select=tuple(c for c in self.codes if not any(c.startswith(p) for p in ignored)),
            unsafe_fixes=self.unsafe_fixes,
        )

    def excluded(self, path: str) -> bool:
        """Whether a path given by name (or `--stdin-filename`) is skipped."""
        return self.force_exclude and self.exclude.matches(path, os.path.isdir(path))


def load_config(
    paths: Sequence[str],
    *,
    config_file: str | None = None,
    isolated: bool = False,
    cli: Selection | None = None,
    force_exclude: bool = False,
    unsafe_fixes: bool = False,
    exclude: Sequence[str] | None = None,
    extend_exclude: Sequence[str] = (),
) -> Config:
    """The run's Config: `config_file`, else the nearest pyproject.toml with a
    `[tool.gradlint]` table above the folder holding all `paths`, then the CLI options."""
    cli = cli or Selection()
    found: tuple[str, dict[str, Any]] | None = None
    if config_file is not None and not isolated:
        found = (config_file, _gradlint_table(config_file) or {})
    elif not isolated:
        found = _nearest(_common_folder(paths))
    if found is None:
        globs = (*(DEFAULT_EXCLUDE if exclude is None else exclude), *extend_exclude)
        return Config(
            codes=resolve([cli]),
            exclude=_globs(globs, ".", "the command line", "--exclude"),
            force_exclude=force_exclude,
            unsafe_fixes=unsafe_fixes,
        )
    source, table = found
    base = os.path.dirname(os.path.abspath(source))
    unknown = [key for key in table if key not in KEYS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key `{unknown[0]}` in [tool.gradlint] "
            f"(known keys: {', '.join(KEYS)})"
        )
    select = _codes(table, "select", source) if "select" in table else None
    file_selection = Selection(
        select, _codes(table, "extend-select", source), _codes(table, "ignore", source)
    )
    # as in ruff, `--exclude` replaces the file's `exclude` and `--extend-exclude` adds to both
    if exclude is not None:
        excluded = tuple(_rebased(glob, base) for glob in exclude)
    elif "exclude" in table:
        excluded = _strings(table, "exclude", source)
    else:
        excluded = DEFAULT_EXCLUDE
    excluded += _strings(table, "extend-exclude", source)
    excluded += tuple(_rebased(glob, base) for glob in extend_exclude)
    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{source}: `per-file-ignores` must be a table of glob = [codes]")
    file_force_exclude, file_unsafe_fixes = (_flag(table, key, source) for key in FLAGS)
    key = "exclude" if "exclude" in table else "extend-exclude"
    return Config(
        source=source,
        codes=resolve([file_selection, cli]),
        exclude=_globs(excluded, base, source, key),
        per_file_ignores=tuple(
            (
                _globs((glob,), base, source, f"per-file-ignores.{glob!r}"),
                _codes(per_file, glob, source, f"per-file-ignores.{glob!r}"),
            )
            for glob in per_file
        ),
        force_exclude=force_exclude or file_force_exclude,
        unsafe_fixes=unsafe_fixes or file_unsafe_fixes,
    )


FLAGS = ("force-exclude", "unsafe-fixes")


def _rebased(glob: str, base: str) -> str:
    """A command-line glob, relative to the working directory, as one relative to the config's
    folder; a name alone (`*_pb2.py`, `build/`) matches at any depth and stays as it is."""
    if "/" not in glob.rstrip("/"):
        return glob
    trailing = "/" if glob.endswith("/") else ""
    moved = os.path.relpath(os.path.abspath(glob.lstrip("/")), os.path.abspath(base))
    return "/" + moved.replace(os.sep, "/") + trailing


def _globs(patterns: tuple[str, ...], base: str, source: str, key: str) -> PathGlobs:
    globs = PathGlobs(patterns, base)
    if patterns == DEFAULT_EXCLUDE:  # known to compile; compiled when first matched
        return globs
    try:
        globs.spec  # noqa: B018 -- compiled now, so a bad glob is a configuration error
    except ValueError as error:  # pathspec's pattern errors (`!`, a lone backslash)
        raise ConfigError(f"{source}: invalid glob in `{key}`: {error}") from None
    return globs


def _flag(table: dict[str, Any], key: str, source: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: `{key}` must be true or false")
    return value


def _common_folder(paths: Sequence[str]) -> str:
    folders = [
        os.path.abspath(p) if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
        for p in paths
    ]
    try:
        return os.path.commonpath(folders) if folders else os.getcwd()
    except ValueError:  # paths on different drives (Windows)
        return os.getcwd()


def _nearest(folder: str) -> tuple[str, dict[str, Any]] | None:
    """Like ruff, a pyproject.toml without the tool's table is passed over."""
    while True:
        candidate = os.path.join(folder, PYPROJECT)
        if os.path.isfile(candidate):
            shown = _display(candidate)
            table = _gradlint_table(shown)
            if table is not None:
                return shown, table
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _gradlint_table(path: str) -> dict[str, Any] | None:
    try:
        data = read_regular(path, MAX_CONFIG_BYTES)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: cannot read: larger than {MAX_CONFIG_BYTES // 1024} KB")
        document = tomllib.loads(data.decode("utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except ValueError as error:  # TOMLDecodeError, or bytes that are not UTF-8
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    tool = document.get("tool", {})
    table = tool.get("gradlint") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: `tool.gradlint` must be a table")
    return table


def _strings(table: dict[str, Any], key: str, source: str, name: str = "") -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: `{name or key}` must be a list of strings")
    return tuple(value)


def _codes(table: dict[str, Any], key: str, source: str, name: str = "") -> tuple[str, ...]:
    codes = tuple(c.strip().upper() for c in _strings(table, key, source, name))
    unknown = unknown_codes(codes)
    if unknown:
        raise ConfigError(
            f"{source}: unknown rule code or prefix {unknown[0]!r} in `{name or key}`"
        )
    return codes


def _display(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def file_settings(path: str) -> Settings | None:
    """The settings of the nearest configuration for one file, as an editor or flake8 lints it:
    None when the configuration excludes the file. Raises ConfigError for a broken one."""
    config = load_config([path], force_exclude=True)
    return None if config.excluded(path) else config.settings_for(path)
