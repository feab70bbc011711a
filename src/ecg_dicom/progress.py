"""A one-line progress bar on stderr, for the commands that read many pages.

Drawn only when stderr is a terminal (a pipe, a log file or a test gets nothing
from it); redrawn at most ten times a second.  ``classify 12/50 [#####.....] 24 %
0.6 s/page, about 23 s left``.  A command that prints a result line while the bar
is shown calls :meth:`Progress.clear` first, so the bar never garbles its output.
"""

from __future__ import annotations

import shutil
import sys
import time
from types import TracebackType
from typing import TextIO

#: Seconds between two redraws.
REDRAW = 0.1


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """``with Progress("classify", total) as bar: ... bar.advance()``."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None,
                 unit: str = "page") -> None:
        self.what = what
        self.total = max(total, 0)
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.total > 0 and _isatty(self.stream)
        self.done = 0
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._shown = False

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        self._draw(force=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.clear()

    def advance(self, count: int = 1) -> None:
        """``count`` more items finished."""
        self.done = min(self.total, self.done + count)
        self._draw(force=self.done == self.total)

    def line(self) -> str:
        """The text of the bar as it would be drawn now."""
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        text = (f"{self.what} {self.done}/{self.total} [{'#' * filled}{'.' * (width - filled)}] "
                f"{100 * self.done // max(self.total, 1)} %")
        if self.done:
            per_item = (time.monotonic() - self.started) / self.done
            left = per_item * (self.total - self.done)
            text += f"  {per_item:.1f} s/{self.unit}"
            if self.done < self.total:
                text += f", about {_duration(left)} left"
        return text

    def clear(self) -> None:
        """Erase the bar (before printing something else on the terminal)."""
        if self.enabled and self._shown:
            self._write("\r\033[K")
            self._shown = False

    def redraw(self) -> None:
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < REDRAW:
            return
        self._drawn_at = now
        columns = shutil.get_terminal_size((80, 24)).columns
        self._write("\r\033[K" + self.line()[: max(columns - 1, 10)])
        self._shown = True

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: no more bar
            self.enabled = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
