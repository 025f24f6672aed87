"""Findings of files already linted, keyed by what decides them: content, version and settings.

The cache lives in `.gradlint_cache/` (a `CACHEDIR.TAG` and a `.gitignore` inside, so backup
tools and git leave it alone). Each entry is one small JSON file written to a temporary name and
renamed into place, so parallel runs (pre-commit starts several) never see half an entry; an
entry that cannot be read is a miss, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from gradlint import __version__
from gradlint.diagnostics import Diagnostic, Fix

DEFAULT_DIR = ".gradlint_cache"
_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by gradlint.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


class Cache:
    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.entries = self.folder / f"v{__version__}"
        self._prepared = False

    def key(self, path: str, data: bytes, settings: object, mode: str) -> str:
        """The entry's name: everything that can change what is reported for these bytes."""
        digest = hashlib.sha256()
        for part in (__version__, _code_stamp(), repr(settings), mode, path):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> list[Diagnostic] | None:
        try:
            with open(self._entry(key), encoding="utf-8") as handle:
                stored = json.load(handle)
            return [_diagnostic(item) for item in stored]
        except (OSError, ValueError, TypeError, KeyError):
            return None

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

    def clear(self) -> bool:
        """Remove the whole cache folder; False when there was none."""
        if not (self.folder / "CACHEDIR.TAG").is_file():
            return False  # never delete a folder gradlint did not create
        shutil.rmtree(self.folder, ignore_errors=True)
        return True

    def _entry(self, key: str) -> Path:
        return self.entries / key[:2] / f"{key[2:]}.json"

    def _prepare(self) -> None:
        if self._prepared:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, content in (("CACHEDIR.TAG", _TAG), (".gitignore", "# created by gradlint\n*\n")):
            marker = self.folder / name
            if not marker.exists():
                marker.write_text(content, encoding="utf-8")
        self._prepared = True


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


def _diagnostic(item: dict) -> Diagnostic:
    fix = item.get("fix")
    return Diagnostic(
        code=item["code"],
        path=item["path"],
        line=item["line"],
        col=item["col"],
        message=item["message"],
        trail=tuple(item.get("trail", ())),
        fix=Fix(**fix) if fix else None,
        cell=item.get("cell"),
    )
