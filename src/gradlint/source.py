"""Reading a file's bytes into text and a CST, keeping what is needed to write it back intact."""

from __future__ import annotations

import difflib
import io
import re
import tokenize
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    path: str  # as shown to the user
    data: bytes
    encoding: str
    text: str


class UnreadableSource(Exception):
    """The file cannot be decoded as Python source; the message says why, `line` and `col`
    (1-based) where."""

    def __init__(self, message: str, line: int = 1, col: int = 1):
        super().__init__(message)
        self.line, self.col = line, col


def decode(path: str, data: bytes) -> SourceFile:
    if b"\x00" in data:
        raise UnreadableSource("file contains NUL bytes; it is not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        raise UnreadableSource(f"bad encoding declaration: {error}") from error
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        # the codec counts bytes from the start of the file; people count lines and characters
        before = data[: error.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode(encoding, "replace")) + 1
        message = (
            f"cannot decode as {encoding}: byte 0x{data[error.start]:02x} at line {line}, "
            f"column {col}: {error.reason}"
        )
        raise UnreadableSource(message, line, col) from error
    except LookupError as error:
        raise UnreadableSource(f"cannot decode as {encoding}: {error}") from error
    if text.startswith("\ufeff"):
        text = text[1:]
    return SourceFile(path, data, encoding, text)


def encode(source: SourceFile, text: str) -> bytes:
    """The fixed `text` as the file's bytes: its encoding and BOM, and every line no fix
    touched exactly as it was."""
    bom = b"\xef\xbb\xbf" if source.data.startswith(b"\xef\xbb\xbf") else b""
    encoding = "utf-8" if source.encoding == "utf-8-sig" else source.encoding
    return bom + keep_untouched(source.text, text).encode(encoding)


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def lines_with_endings(text: str) -> list[str]:
    """The lines of source text with their endings: unlike str.splitlines, only the line
    endings Python reads end a line (not a form feed, for one)."""
    return _LINE.findall(text)


def keep_untouched(original: str, fixed: str) -> str:
    """`fixed` (libcst's print of an edited tree) with the lines no fix touched as they are in
    `original`. libcst does not print every file back as it read it: a file with CR line endings
    loses its last one, a form feed in an indentation is dropped or copied onto the block's
    other lines. Lines that libcst's print of the unedited tree shares with `fixed` are the
    user's lines; a form feed heading a new line is dropped (it means nothing there)."""
    import libcst as cst  # only a fix needs it: reading and decoding files must not load it

    try:
        printed = cst.parse_module(original).code
    except (cst.ParserSyntaxError, RecursionError):
        return fixed
    user, before, after = (lines_with_endings(t) for t in (original, printed, fixed))
    if printed == original or len(user) != len(before):
        return fixed
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        out.extend(user[i1:i2] if tag == "equal" else (line.lstrip("\f") for line in after[j1:j2]))
    return "".join(out)


# CPython refuses deeper bracket nesting ("too many nested parentheses"); libcst's native parser
# has no such limit and overflows its stack (a crash, not an exception) a few thousand levels down.
MAX_NESTING = 200
_BRACKET = re.compile(r"[()\[\]{}]")


def too_deeply_nested(text: str) -> tuple[int, int] | None:
    """Line and column (1-based) of the first bracket nested deeper than Python allows, if any."""
    depth = deepest = 0
    for match in _BRACKET.finditer(text):  # a cheap count first; strings and comments included
        depth += 1 if match.group() in "([{" else -1
        deepest = max(deepest, depth)
    if deepest <= MAX_NESTING:
        return None
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
                if depth > MAX_NESTING:
                    return token.start[0], token.start[1] + 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
    except (tokenize.TokenError, SyntaxError):
        return None  # the parser reports what is wrong
    return None
