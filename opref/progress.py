"""Progress of a long run on the terminal: cases done, rate, time left and failures so far.

On a terminal it is one line, redrawn in place (at most a few times a second); elsewhere (a CI
log, a pipe) it is a plain line now and then, so a log shows the run is alive without one line
per case. The clock is a parameter so that what is shown can be tested without waiting.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

# Redraw a terminal line at most this often (seconds), and write a plain line at most this often.
TTY_INTERVAL, PLAIN_INTERVAL = 0.2, 30.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Shows ``label: done/total cases, rate/s, ~time left, failures``.

    ``update`` is cheap to call on every case: it draws only when the interval has passed, when
    the label changes, or at the end of a total. ``close`` ends the terminal line.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "cases",
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.unit = unit
        self._label: str | None = None
        self._start = 0.0
        self._first = 0
        self._drawn_at = -float("inf")
        self._width = 0
        self.last = ""

    def line(self, label: str, done: int, total: int | None, failures: int = 0, unexpected: int = 0) -> str:
        """The text shown for this state (no drawing)."""
        elapsed = self.clock() - self._start
        # The clock starts at the first update of a label, which already counts its cases.
        rate = (done - self._first) / elapsed if elapsed > 0 else 0.0
        count = f"{done}/{total}" if total else f"{done}"
        parts = [f"{label}: {count} {self.unit}", f"{rate:.1f}/s"]
        if total and rate > 0 and done < total:
            parts.append(f"~{_duration((total - done) / rate)} left")
        elif total and done >= total:
            parts.append(f"done in {_duration(elapsed)}")
        fails = f"{failures} failing"
        if unexpected:
            fails += f" ({unexpected} unexpected)"
        parts.append(fails)
        return ", ".join(parts)

    def update(
        self, label: str, done: int, total: int | None = None, failures: int = 0, unexpected: int = 0
    ) -> None:
        now = self.clock()
        if label != self._label:
            if self._label is not None and self.tty:
                self.stream.write("\n")
            self._label, self._start, self._drawn_at = label, now, -float("inf")
            self._first = done
        finished = bool(total) and done >= total
        interval = TTY_INTERVAL if self.tty else PLAIN_INTERVAL
        if not finished and now - self._drawn_at < interval and done != 1:
            return
        self._drawn_at = now
        self.last = self.line(label, done, total, failures, unexpected)
        if self.tty:
            pad = " " * max(0, self._width - len(self.last))
            self.stream.write("\r" + self.last + pad)
            self._width = len(self.last)
        else:
            self.stream.write(self.last + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._label is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._label = None

    # validate(progress=...): (spec, done, total, failures, unexpected)
    def __call__(self, label: str, done: int, total: int, failures: int = 0, unexpected: int = 0) -> None:
        self.update(label, done, total, failures, unexpected)
