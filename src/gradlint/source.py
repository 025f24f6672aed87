"""Reading a file's bytes into text and a CST, keeping what is needed to write it back intact."""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    path: str  # as shown to the user
    data: bytes
    encoding: str
    text: str


class UnreadableSource(Exception):
    """The file cannot be decoded as Python source; the message says why."""


def decode(path: str, data: bytes) -> SourceFile:
    if b"\x00" in data:
        raise UnreadableSource("file contains NUL bytes; it is not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        raise UnreadableSource(f"bad encoding declaration: {error}") from error
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise UnreadableSource(f"cannot decode as {encoding}: {error}") from error
    if text.startswith("\ufeff"):
        text = text[1:]
    return SourceFile(path, data, encoding, text)


def encode(source: SourceFile, text: str) -> bytes:
    bom = b"\xef\xbb\xbf" if source.data.startswith(b"\xef\xbb\xbf") else b""
    encoding = "utf-8" if source.encoding == "utf-8-sig" else source.encoding
    return bom + text.encode(encoding)
