"""Progress on stderr: bars per layer and in total on a terminal, a plain line every few
seconds in CI logs (no carriage returns to garble them), nothing with --quiet."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

BAR = 28


@dataclass
class _Task:
    label: str
    total: int
    done: int = 0
    state: str = "pending"


def _rate(done: int, started: float) -> float:
    return done / max(time.monotonic() - started, 1e-6) / 1e6


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class Progress:
    """Thread-safe progress for many blobs at once; `mode` is tty, plain or quiet."""

    def __init__(self, mode: str, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.mode, self.stream, self.interval = mode, stream or sys.stderr, interval
        self.tasks: dict[str, _Task] = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._last = 0.0
        self._drawn = 0
        self.sent = 0  # bytes this run sent (not skipped, mounted or found)

    @classmethod
    def choose(cls, quiet: bool, stream: TextIO | None = None) -> Progress:
        stream = stream or sys.stderr
        if quiet:
            return cls("quiet", stream)
        return cls("tty" if stream.isatty() else "plain", stream)

    def add(self, digest: str, total: int) -> None:
        with self._lock:
            self.tasks[digest] = _Task(_short(digest), total)

    def advance(self, digest: str, amount: int, *, sent: bool = True) -> None:
        """`amount` more bytes of the blob done; `sent` False for parts sent by an earlier
        run (they count toward the bar, not the rate)."""
        with self._lock:
            self.tasks[digest].done += amount
            self.tasks[digest].state = "pushing"
            self.sent += amount if sent else 0
            self._maybe_draw(force=False)

    def mark(self, digest: str, state: str) -> None:
        """A blob's state while no bytes move (e.g. verifying: the registry checks it)."""
        with self._lock:
            self.tasks[digest].state = state
            self._maybe_draw(force=True)

    def finish(self, digest: str, state: str) -> None:
        """`state`: pushed, exists (already in the registry), mounted or resumed."""
        with self._lock:
            task = self.tasks[digest]
            task.done, task.state = task.total, state
            if self.mode == "plain":
                self._write(f"{task.label}: {state} ({task.total / 1e6:.1f} MB)\n")
            self._maybe_draw(force=True)

    def note(self, message: str) -> None:
        with self._lock:
            if self.mode != "quiet":
                self._write(message + "\n")
                self._drawn = 0

    def _rate(self) -> float:
        return _rate(self.sent, self.started)

    def _totals(self) -> tuple[int, int]:
        return sum(t.done for t in self.tasks.values()), sum(t.total for t in self.tasks.values())

    def _maybe_draw(self, force: bool) -> None:
        now = time.monotonic()
        if self.mode == "tty" and (force or now - self._last >= 0.1):
            self._last = now
            self._draw_tty()
        elif self.mode == "plain" and now - self._last >= self.interval:
            self._last = now
            done, total = self._totals()
            rate = self._rate()
            self._write(f"{done / 1e6:.1f} of {total / 1e6:.1f} MB done, sending {rate:.1f} MB/s\n")

    def _draw_tty(self) -> None:
        lines = [self._bar(t.label, t.done, t.total, t.state) for t in self.tasks.values()]
        done, total = self._totals()
        lines.append(self._bar("total", done, total, f"{self._rate():.1f} MB/s"))
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self._write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._drawn = len(lines)

    @staticmethod
    def _bar(label: str, done: int, total: int, state: str) -> str:
        fraction = min(done / total, 1.0) if total else 1.0
        filled = "#" * int(fraction * BAR)
        return f"{label:<12} [{filled:<{BAR}}] {fraction:6.1%} {state}"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
