"""How far a long run is: `files done / total` on standard error.

A run over a repository can take minutes, and a CI gate that prints nothing looks hung. On a
terminal the count is redrawn in place once the run has lasted a second (short runs show
nothing), and erased when the run ends, so the report that follows starts on a clean line.
In pipes and CI logs it stays silent unless asked for (`--progress`); asked for there, it
writes a plain line every few seconds instead of redrawing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

from gradlint.report.streams import OutputError, write_err

DELAY = 1.0  # seconds before anything is shown: a short run stays quiet
REDRAW = 0.1  # seconds between two redraws on a terminal
LOG_EVERY = 5.0  # seconds between two lines in a log


class Progress:
    def __init__(
        self,
        total: int,
        terminal: bool,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] = write_err,
    ):
        self.total, self.terminal = total, terminal
        self.clock, self.write = clock, write
        self.done = 0
        self.started = clock()
        self.shown_at: float | None = None  # when the count was last written
        self.drawn = False  # a count is on the terminal's last line

    def __call__(self) -> None:
        """One more file done."""
        self.done += 1
        now = self.clock()
        if now - self.started < DELAY:
            return
        pause = REDRAW if self.terminal else LOG_EVERY
        if self.shown_at is not None and now - self.shown_at < pause and self.done < self.total:
            return
        self.shown_at = now
        text = f"gradlint: {self.done}/{self.total} files checked"
        self._show(f"\r{text}\033[K" if self.terminal else f"{text}\n")
        self.drawn = self.terminal

    def close(self) -> None:
        """Erase the count from the terminal (a log keeps its lines)."""
        if self.drawn:
            self._show("\r\033[K")
            self.drawn = False

    def _show(self, text: str) -> None:
        with suppress(OutputError):  # progress is never worth failing the run for
            self.write(text)
