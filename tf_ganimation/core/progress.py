"""Progress of a long job for a person: a one-line bar on a terminal, a line every 10 s elsewhere (logs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """`[#####.....] 40/100 photos, kept 38, 3.1 photos/s, 13 s, ETA 19 s`.

    Args:
        total: items to process.
        stream: where to write; None writes nothing.
        unit: what an item is called ("photos", "steps").
        interval_s: seconds between lines when `stream` is not a terminal (a terminal redraws 5 times a second).
        clock: seconds since some fixed point (tests pass their own).
    """

    def __init__(self, total: int, stream: TextIO | None, unit: str = "items", interval_s: float = 10.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.total, self.stream, self.unit, self.interval_s = total, stream, unit, interval_s
        self.done = 0
        self.counters: dict[str, int] = {}
        self._clock = clock
        self.started = self._last = clock()
        self._tty = bool(stream) and hasattr(stream, "isatty") and stream.isatty()

    def update(self, done: int = 1, **counters: int) -> None:
        """Counts `done` more items, and adds to named counters shown after the count (kept=1)."""
        self.done += done
        for name, value in counters.items():
            self.counters[name] = self.counters.get(name, 0) + int(value)
        now = self._clock()
        if self.stream and (now - self._last >= (0.2 if self._tty else self.interval_s) or self.done >= self.total):
            self._last = now
            self._write()

    def line(self) -> str:
        """The bar, the count, the counters, the rate, the time so far and the time left."""
        elapsed = self._clock() - self.started
        rate = self.done / max(elapsed, 1e-9)
        eta = max(self.total - self.done, 0) / rate if rate > 0 else 0.0
        filled = int(30 * min(self.done, self.total) / max(self.total, 1))
        counters = "".join(f", {name} {value}" for name, value in self.counters.items())
        return (f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {self.unit}{counters}, "
                f"{rate:.1f} {self.unit}/s, {elapsed:.0f} s, ETA {eta:.0f} s")

    def _write(self) -> None:
        line = self.line()
        self.stream.write(("\r" + line) if self._tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        """Ends the terminal line of the bar."""
        if self._tty and self.done:
            self.stream.write("\n")
            self.stream.flush()
