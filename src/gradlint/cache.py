"""Findings of files already linted, keyed by what decides them: content, versions and settings.

The cache lives in `.gradlint_cache/` (a `CACHEDIR.TAG` and a `.gitignore` inside, so backup
tools and git leave it alone). Each entry is one small JSON file written to a temporary name and
renamed into place, so parallel runs (pre-commit starts several) never see half an entry; an
entry that cannot be read, or does not hold exactly what gradlint writes, is a miss.

gradlint adopts a folder as its cache only when it created it (its tag is inside) or the folder
is empty, and removes only what it wrote there: a mistyped `--cache-dir .` must never turn the
project into a cache. Entries of other gradlint versions, and entries unused for
`MAX_AGE_DAYS`, are removed at most once a day.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import stat
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from gradlint import __version__
from gradlint.diagnostics import Diagnostic, Fix

DEFAULT_DIR = ".gradlint_cache"
TAG_NAME = "CACHEDIR.TAG"
_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by gradlint.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
_GITIGNORE = "# created by gradlint\n*\n"
MAX_AGE_DAYS = 30
_DAY = 24 * 60 * 60
_PRUNED = ".pruned"  # in the version folder: when entries were last pruned
_VERSION_FOLDER = re.compile(r"v\d[\w.+!-]*")
_ENTRY = re.compile(r"[0-9a-f]{62}\.json")
_SHARD = re.compile(r"[0-9a-f]{2}")
_CODE = re.compile(r"GL\d{3}")
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO in its place must not block the open
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Cache:
    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.entries = self.folder / f"v{__version__}"
        self._prepared = False

    def usable(self) -> bool:
        """Whether this folder is gradlint's cache or can become it: absent, empty or tagged."""
        try:
            info = os.lstat(self.folder)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if not stat.S_ISDIR(info.st_mode):
            return False
        return _tagged(self.folder) or not any(os.scandir(self.folder))

    def key(self, path: str, data: bytes, settings: object, mode: str) -> str:
        """The entry's name: everything that can change what is reported for these bytes."""
        digest = hashlib.sha256()
        for part in (__version__, _code_stamp(), _parser_stamp(), repr(settings), mode, path):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        digest.update(data)
        return digest.hexdigest()

    def get(self, key: str, path: str) -> list[Diagnostic] | None:
        """The findings stored for `path` under `key`, or None for a miss."""
        entry = self._entry(key)
        try:
            with open(entry, encoding="utf-8") as handle:
                stored = json.load(handle)
                used = os.fstat(handle.fileno()).st_mtime
            found = _diagnostics(stored, path)
        except (OSError, ValueError, RecursionError):
            return None
        if found is not None and time.time() - used > _DAY:
            with suppress(OSError):  # used: pruning goes by when entries were last used
                os.utime(entry)
        return found

    def put(self, key: str, diagnostics: list[Diagnostic]) -> None:
        """Store atomically; a cache that cannot be written only costs time."""
        entry = self._entry(key)
        try:
            self._prepare()
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".entry-", dir=entry.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump([asdict(d) for d in diagnostics], handle)
                os.replace(temporary, entry)
            except BaseException:
                if os.path.exists(temporary):
                    os.unlink(temporary)
                raise
        except OSError:
            pass

    def prune(self, now: float | None = None) -> None:
        """Remove other versions' entries and entries unused for MAX_AGE_DAYS, once a day."""
        now = time.time() if now is None else now
        stamp = self.entries / _PRUNED
        try:
            if not _tagged(self.folder) or now - stamp.stat().st_mtime < _DAY:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        for version in _version_folders(self.folder):
            if version.name != self.entries.name:
                _remove_entries(version, keep_after=None)
        _remove_entries(self.entries, keep_after=now - MAX_AGE_DAYS * _DAY)
        try:
            self.entries.mkdir(exist_ok=True)
            stamp.touch()
            os.utime(stamp, (now, now))
        except OSError:
            pass

    def clear(self) -> str:
        """Remove what gradlint wrote in the folder; says what happened. Raises NotACache when
        the folder holds something but is not gradlint's cache."""
        try:
            os.lstat(self.folder)
        except FileNotFoundError:
            return f"No cache at {self.folder}"
        if not _tagged(self.folder):
            raise NotACache(
                f"not removing {self.folder}: it is not a gradlint cache (no {TAG_NAME} "
                "written by gradlint in it)"
            )
        for version in _version_folders(self.folder):
            _remove_entries(version, keep_after=None)
        gitignore = self.folder / ".gitignore"
        if _read_small(gitignore) == _GITIGNORE:
            _unlink(gitignore)
        _unlink(self.folder / TAG_NAME)
        try:
            self.folder.rmdir()
        except OSError:
            return f"Removed gradlint's cache entries from {self.folder}; other files were kept"
        return f"Removed {self.folder}"

    def _entry(self, key: str) -> Path:
        return self.entries / key[:2] / f"{key[2:]}.json"

    def _prepare(self) -> None:
        if self._prepared:
            return
        if not self.usable():  # someone else's folder appeared since the run began
            raise OSError("not a gradlint cache")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, content in ((TAG_NAME, _TAG), (".gitignore", _GITIGNORE)):
            marker = self.folder / name
            if not marker.exists():
                marker.write_text(content, encoding="utf-8")
        self._prepared = True


class NotACache(Exception):
    """`gradlint clean` was pointed at a folder gradlint did not create."""


def _tagged(folder: Path) -> bool:
    """Whether gradlint's own CACHEDIR.TAG is in `folder`."""
    return _read_small(folder / TAG_NAME) == _TAG


def _read_small(path: Path) -> str | None:
    """A regular file's text if it is small; None for anything else (FIFO, device, link)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read(4096).decode("utf-8", "replace")


def _version_folders(folder: Path) -> list[Path]:
    try:
        return [
            Path(e.path)
            for e in os.scandir(folder)
            if _VERSION_FOLDER.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
        ]
    except OSError:
        return []


def _remove_entries(version: Path, keep_after: float | None) -> None:
    """Remove the entries gradlint wrote in one version folder (those last used before
    `keep_after`, or all), then the folders left empty; never anything else."""
    try:
        shards = [e for e in os.scandir(version) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for shard in shards:
        if not _SHARD.fullmatch(shard.name):
            continue
        try:
            entries = list(os.scandir(shard.path))
        except OSError:
            continue
        for entry in entries:
            ours = _ENTRY.fullmatch(entry.name) or entry.name.startswith(".entry-")
            if not ours or not entry.is_file(follow_symlinks=False):
                continue
            with suppress(OSError):
                if keep_after is None or entry.stat(follow_symlinks=False).st_mtime < keep_after:
                    os.unlink(entry.path)
        with suppress(OSError):  # not empty
            os.rmdir(shard.path)
    if keep_after is None:
        _unlink(version / _PRUNED)
        with suppress(OSError):
            os.rmdir(version)


def _unlink(path: Path) -> None:
    with suppress(OSError):
        os.unlink(path)


@functools.cache
def _code_stamp() -> str:
    """gradlint's own files (name, size, time): a development install whose rules change
    between runs must not be answered from entries its earlier code wrote."""
    package = Path(__file__).parent
    stamps = []
    for source in sorted(package.rglob("*.py")):
        info = source.stat()
        stamps.append(f"{source.relative_to(package)}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()


@functools.cache
def _parser_stamp() -> str:
    """The installed parser's files and the interpreter's version: two environments may share
    one cache. Found without importing libcst (a cached run never loads it)."""
    stamps = [f"python {sys.version}"]
    spec = importlib.util.find_spec("libcst")
    if spec is None or spec.origin is None:
        stamps.append("libcst missing")
    else:  # its own files (the native parser among them), not its subpackages
        for source in sorted(Path(spec.origin).parent.glob("*.*")):
            with suppress(OSError):
                info = source.stat()
                stamps.append(f"{source.name}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()


def _diagnostics(stored: Any, path: str) -> list[Diagnostic] | None:
    """The findings of an entry exactly as gradlint writes them; None for anything else."""
    if not isinstance(stored, list):
        return None
    found = []
    for item in stored:
        diagnostic = _diagnostic(item, path)
        if diagnostic is None:
            return None
        found.append(diagnostic)
    return found


_FIELDS = {f.name for f in fields(Diagnostic)}
_FIX_FIELDS = {f.name for f in fields(Fix)}


def _diagnostic(item: Any, path: str) -> Diagnostic | None:
    if not isinstance(item, dict) or set(item) != _FIELDS:
        return None
    code, line, col, message = item["code"], item["line"], item["col"], item["message"]
    trail, fix, cell = item["trail"], item["fix"], item["cell"]
    valid = (
        isinstance(code, str)
        and _CODE.fullmatch(code) is not None
        and item["path"] == path
        and _positive(line)
        and _positive(col)
        and isinstance(message, str)
        and isinstance(trail, list)
        and all(isinstance(t, str) for t in trail)
        and (cell is None or _positive(cell))
        and (fix is None or _fix(fix) is not None)
    )
    if not valid:
        return None
    return Diagnostic(code, path, line, col, message, tuple(trail), _fix(fix), cell)


def _fix(item: Any) -> Fix | None:
    if not isinstance(item, dict) or set(item) != _FIX_FIELDS:
        return None
    if not all(isinstance(v, str) for v in item.values()):
        return None
    if item["applicability"] not in ("safe", "unsafe"):
        return None
    return Fix(**item)


def _positive(value: Any) -> bool:
    return type(value) is int and value >= 1
