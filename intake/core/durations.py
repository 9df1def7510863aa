"""Retention durations: parsing ``"3 months"`` and computing when a kept file falls due.

Pure: no clock, no I/O, no third-party import. Public holidays come from a provider the
caller injects (``intake.adapters.holidays_fr`` is the production one, backed by the
``holidays`` package); this module only knows that weekends are not working days.

Rules (every moment is aware UTC; a period runs from the server-recorded arrival time,
never from a file's mtime, and never ends early):

- ``N days``: exactly ``N * 24`` hours after arrival.
- ``N months``: the same time of day, ``N`` calendar months later; when that month is
  shorter, the last day of that month (received 30 November, due 28 February, or 29 in a
  leap year). This is the French civil rule for periods in months (code de procédure
  civile, art. 641: "à défaut d'un quantième identique, le délai expire le dernier jour
  du mois").
- ``N years``: ``12 * N`` months, so 29 February plus one year is 28 February.
- ``N working days``: working days are whole UTC dates that are neither a Saturday, a
  Sunday nor a public holiday. The arrival date itself does not count (as in art. 641);
  the period ends at the end of the ``N``-th working day after it, i.e. at 00:00 UTC on
  the next date. A partial working day is never counted as a whole one.
- A count is a whole number from 1 up to a cap (about a century): zero, negative and
  absurd durations are refused with a message that says why.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import enum
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

UTC = _dt.UTC


class Unit(enum.StrEnum):
    DAYS = "days"
    WORKING_DAYS = "working days"
    MONTHS = "months"
    YEARS = "years"


_SINGULAR = {
    Unit.DAYS: "day",
    Unit.WORKING_DAYS: "working day",
    Unit.MONTHS: "month",
    Unit.YEARS: "year",
}
_CAPS = {Unit.DAYS: 36_600, Unit.WORKING_DAYS: 25_000, Unit.MONTHS: 1_200, Unit.YEARS: 100}
_UNIT_WORDS = {
    "day": Unit.DAYS,
    "days": Unit.DAYS,
    "working day": Unit.WORKING_DAYS,
    "working days": Unit.WORKING_DAYS,
    "month": Unit.MONTHS,
    "months": Unit.MONTHS,
    "year": Unit.YEARS,
    "years": Unit.YEARS,
}
_DURATION = re.compile(r"^\s*([+-]?\d+)\s+([a-z]+(?:\s+[a-z]+)?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Duration:
    count: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.count} {_SINGULAR[self.unit] if self.count == 1 else self.unit.value}"


def parse_duration(text: str) -> Duration:
    """``"3 months"`` → ``Duration(3, MONTHS)``; ``ValueError`` with the reason otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f'expected "N days", "N working days", "N months" or "N years", got {text!r}'
        )
    count = int(match[1])
    words = " ".join(match[2].lower().split())
    unit = _UNIT_WORDS.get(words)
    if unit is None:
        raise ValueError(f"unknown unit {match[2]!r}: use days, working days, months or years")
    if count <= 0:
        raise ValueError(
            f"{text.strip()!r}: a duration must be positive (zero or negative "
            "would destroy files on arrival)"
        )
    if count > _CAPS[unit]:
        raise ValueError(f"{text.strip()!r}: more than {_CAPS[unit]} {unit.value}")
    return Duration(count, unit)


HolidayProvider = Callable[[int], Collection[_dt.date]]
"""Given a year, the public holidays of that year."""


class WorkingCalendar:
    """Which dates are working days: not a weekend, not one of the provider's holidays."""

    def __init__(self, holidays_for_year: HolidayProvider) -> None:
        self._provider = holidays_for_year
        self._years: dict[int, frozenset[_dt.date]] = {}
        self._added: dict[tuple[_dt.date, int], _dt.date] = {}

    def holidays(self, year: int) -> frozenset[_dt.date]:
        known = self._years.get(year)
        if known is None:
            known = self._years[year] = frozenset(self._provider(year))
        return known

    def is_working_day(self, day: _dt.date) -> bool:
        return day.weekday() < 5 and day not in self.holidays(day.year)

    def add_working_days(self, day: _dt.date, count: int) -> _dt.date:
        """The ``count``-th working day strictly after ``day``."""
        known = self._added.get((day, count))
        if known is not None:
            return known
        seen, current = 0, day
        while seen < count:
            current += _dt.timedelta(days=1)
            if self.is_working_day(current):
                seen += 1
        self._added[(day, count)] = current
        return current


def add_months(moment: _dt.datetime, months: int) -> _dt.datetime:
    """``moment`` moved by whole calendar months, the day clamped to the month's end."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def due_at(
    received_at: _dt.datetime, duration: Duration, working: WorkingCalendar | None = None
) -> _dt.datetime:
    """The first moment at which a file received at ``received_at`` has been kept long enough.

    A file is due when ``now >= due_at(...)``. ``working`` is needed for working days only.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be an aware datetime")
    start = received_at.astimezone(UTC)
    if duration.unit is Unit.DAYS:
        return start + _dt.timedelta(days=duration.count)
    if duration.unit is Unit.MONTHS:
        return add_months(start, duration.count)
    if duration.unit is Unit.YEARS:
        return add_months(start, 12 * duration.count)
    if working is None:
        raise ValueError("working days need a working calendar (public holidays)")
    last = working.add_working_days(start.date(), duration.count)
    return _dt.datetime.combine(last + _dt.timedelta(days=1), _dt.time(), tzinfo=UTC)
