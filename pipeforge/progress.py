"""Progress output for long-running scripts: shown on a terminal, silent when piped.

Scripts create one :class:`Progress` and hand it to the training functions,
which report stages ("loading data", "fitting", ...) and, where they can
count, steps of a bar. Library code never writes to the terminal itself.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Writes stage lines and a one-line progress bar to ``stream`` (stderr).

    ``enabled=None`` means: only when ``stream`` is a terminal, so logs and
    pipes stay clean.
    """

    width = 30

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream
        self.enabled = enabled
        self._total = 0
        self._done = 0
        self._label = ""
        self._started = 0.0
        self._bar_open = False

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    @property
    def active(self) -> bool:
        """Whether anything is written at all."""
        if self.enabled is not None:
            return self.enabled
        isatty = getattr(self._out(), "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # closed stream
            return False

    def stage(self, name: str) -> None:
        """Announce the next stage of work, e.g. ``"fitting"``."""
        if not self.active:
            return
        self._close_bar()
        self._write(f"... {name}\n")

    def start(self, total: int, label: str = "") -> None:
        """Begin a bar of ``total`` steps."""
        self._total = max(int(total), 0)
        self._done = 0
        self._label = label
        self._started = time.monotonic()
        self._draw()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more steps as done."""
        self._done += steps
        self._draw()

    def finish(self) -> None:
        """Complete the bar and end its line."""
        if self._total:
            self._done = self._total
            self._draw()
        self._close_bar()

    def _draw(self) -> None:
        if not self.active or not self._total:
            return
        done = min(self._done, self._total)
        filled = int(self.width * done / self._total)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self._started
        label = f"{self._label} " if self._label else ""
        self._write(f"\r{label}[{bar}] {done}/{self._total} {elapsed:.1f}s")
        self._bar_open = True

    def _close_bar(self) -> None:
        if self._bar_open:
            self._write("\n")
            self._bar_open = False

    def _write(self, text: str) -> None:
        out = self._out()
        out.write(text)
        out.flush()
