"""The operational log under attack: unauthenticated noise summarised, never a traceback.

Rules:
- Noise (a refused connection, a client that broke the protocol before logging in, a
  connection handler that failed) is noted with a kind and an address. The first note of
  a kind from an address is logged at once, unless that address was already noisy in the
  interval before; the rest are counted and logged as one line per kind and address at
  the end of each ``interval``. A sustained flood from one address thus costs about one
  line per interval.
- At most ``max_sources`` kinds-and-addresses are tracked per interval; notes beyond that
  are counted into one "other addresses" line. The log's volume is bounded whatever the
  number of addresses.
- paramiko logs each line of a traceback as its own ERROR record when negotiation fails.
  ``TransportLog`` stands in for its logger on one transport: before authentication only
  the exception's first line becomes a note; tracebacks are dropped. After
  authentication records go to paramiko's own logger as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

INTERVAL = 60.0
MAX_SOURCES = 20
_HEADLINES = ("Exception (", "Socket exception:", "Unknown exception:")


class NoiseLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = INTERVAL,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self.interval = interval
        self._interval = interval
        self._max_sources = max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._counts: dict[tuple[str, str], list[object]] = {}  # -> [repeats, last detail]
        self._previous: set[tuple[str, str]] = set()
        self._overflow = 0

    def note(self, kind: str, ip: str, detail: str) -> None:
        """One event of ``kind`` (e.g. "sftp: refused") from ``ip``."""
        lines: list[str]
        with self._lock:
            lines = self._roll_locked(self._clock())
            key = (kind, ip)
            entry = self._counts.get(key)
            if entry is not None:
                entry[0] = int(entry[0]) + 1  # type: ignore[call-overload]
                entry[1] = detail
            elif len(self._counts) >= self._max_sources:
                self._overflow += 1
            elif key in self._previous:
                self._counts[key] = [1, detail]
            else:
                self._counts[key] = [0, detail]
                lines.append(
                    f"{kind} {ip}: {detail} (repeats are summarised every {self._interval:g} s)"
                )
        for line in lines:
            self._log.warning("%s", line)

    def flush(self) -> None:
        """Log the summaries of an interval that has ended (called now and then)."""
        with self._lock:
            lines = self._roll_locked(self._clock())
        for line in lines:
            self._log.warning("%s", line)

    def _roll_locked(self, now: float, force: bool = False) -> list[str]:
        elapsed = now - self._started
        if elapsed < self._interval and not force:
            return []
        lines = [
            f"{kind} {ip}: {repeats} more in the last {elapsed:.0f} s (last: {detail})"
            for (kind, ip), (repeats, detail) in self._counts.items()
            if repeats
        ]
        if self._overflow:
            lines.append(
                f"{self._overflow} more noisy connections from other addresses"
                f" in the last {elapsed:.0f} s"
            )
        self._previous = set(self._counts)
        self._counts = {}
        self._overflow = 0
        self._started = now
        return lines

    def close(self) -> None:
        with self._lock:
            lines = self._roll_locked(self._clock(), force=True)
        for line in lines:
            self._log.warning("%s", line)


class TransportLog:
    """paramiko's logger for one transport: noise before authentication, itself after."""

    def __init__(
        self,
        noise: NoiseLog,
        kind: str,
        ip: str,
        real: logging.Logger,
        authenticated: Callable[[], bool],
    ) -> None:
        self._noise = noise
        self._kind = kind
        self._ip = ip
        self._real = real
        self._authenticated = authenticated

    def isEnabledFor(self, level: int) -> bool:
        return self._real.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object) -> None:
        if not self._real.isEnabledFor(level):
            return
        if self._authenticated():
            self._real.log(level, msg, *args)
            return
        text = str(msg) % args if args else str(msg)
        if level >= logging.WARNING and text.startswith(_HEADLINES):
            self._noise.note(self._kind, self._ip, text[:200])
