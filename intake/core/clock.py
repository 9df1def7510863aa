"""The one place intake reads the time.

Rules:
- Every datetime in intake is timezone-aware UTC.
- Code that needs "now" takes a ``Clock``; production passes ``SystemClock()``,
  tests and ``--now`` pass a ``FixedClock``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Protocol

UTC = _dt.UTC


class Clock(Protocol):
    def now(self) -> _dt.datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(UTC)


class FixedClock:
    """A clock that says what it is told (``--now``, tests)."""

    def __init__(self, at: _dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> _dt.datetime:
        return self._at

    def advance(self, delta: _dt.timedelta) -> None:
        self._at += delta


def isoformat(moment: _dt.datetime) -> str:
    """ISO-8601 UTC with a ``Z`` suffix and microseconds, e.g. ``2026-11-26T13:00:00.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> _dt.datetime:
    """Parse an ISO-8601 time; a time without a zone is taken as UTC."""
    value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
