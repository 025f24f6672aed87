"""Writing reports to standard output and standard error.

Paths may hold bytes that are not valid in the terminal's encoding (a file name that is not
UTF-8 arrives as surrogate escapes): they are written escaped rather than aborting the report.
A reader that goes away (`gradlint check . | head`) or a full device ends the run quietly.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO


def _write(stream: TextIO | None, text: str) -> None:
    if not text:
        return
    if stream is None:  # the interpreter started with the descriptor closed
        raise OutputError("the output stream is closed")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    data = text.encode(encoding, errors="backslashreplace")
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a replaced stream (tests, editors): text only
            stream.write(data.decode(encoding))
        else:
            stream.flush()
            buffer.write(data)
        stream.flush()
    except BrokenPipeError:
        # the reader is gone; point stdout at devnull so the interpreter's exit flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except OSError as error:  # /dev/full, a closed descriptor
        raise OutputError(str(error)) from None


class OutputError(Exception):
    """The report could not be written."""


def write_out(text: str) -> None:
    """Write ``text`` to standard output."""
    _write(sys.stdout, text)


def write_err(text: str) -> None:
    """Write ``text`` to standard error."""
    _write(sys.stderr, text)
