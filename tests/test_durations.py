"""Retention durations, table-tested with fixed aware datetimes (borg's ``test_prune`` style).

The working-day tables use the real French public holidays (``holidays`` package through
``intake.adapters.holidays_fr``), so a change of that package's data shows here.
"""

from __future__ import annotations

import datetime as dt

import pytest

from intake.adapters.holidays_fr import french_holidays, working_calendar
from intake.core.durations import Duration, Unit, WorkingCalendar, due_at, parse_duration

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


CAL = working_calendar()


class TestParse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("3 months", Duration(3, Unit.MONTHS)),
            ("1 month", Duration(1, Unit.MONTHS)),
            ("90 days", Duration(90, Unit.DAYS)),
            ("1 day", Duration(1, Unit.DAYS)),
            ("15 working days", Duration(15, Unit.WORKING_DAYS)),
            ("1 working day", Duration(1, Unit.WORKING_DAYS)),
            ("3 years", Duration(3, Unit.YEARS)),
            ("  2   Working   Days ", Duration(2, Unit.WORKING_DAYS)),
            ("+4 Years", Duration(4, Unit.YEARS)),
        ],
    )
    def test_valid(self, text: str, expected: Duration) -> None:
        """Every unit of the policy format, singular or plural, any case and spacing."""
        assert expected == parse_duration(text)

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("0 days", "must be positive"),
            ("-3 months", "must be positive"),
            ("0 working days", "must be positive"),
            ("3 weeks", "unknown unit"),
            ("3 fortnights", "unknown unit"),
            ("three months", "expected"),
            ("3", "expected"),
            ("", "expected"),
            ("3months", "expected"),
            ("1.5 months", "expected"),
            ("101 years", "more than 100 years"),
        ],
    )
    def test_invalid(self, text: str, says: str) -> None:
        """A bad duration is refused with a reason a person can act on."""
        with pytest.raises(ValueError, match=says):
            parse_duration(text)

    def test_str_round_trips(self) -> None:
        """A duration prints as it is written in a policy file."""
        assert ["1 month", "3 months", "15 working days", "1 year"] == [
            str(parse_duration(t)) for t in ("1 months", "3 month", "15 working day", "1 year")
        ]


MONTHS = [
    # received                  months  due
    ("2025-11-30T10:00:00", 3, "2026-02-28T10:00:00"),  # the example
    ("2023-11-30T10:00:00", 3, "2024-02-29T10:00:00"),  # ... in a leap year
    ("2026-01-31T08:00:00", 1, "2026-02-28T08:00:00"),
    ("2024-01-31T08:00:00", 1, "2024-02-29T08:00:00"),
    ("2026-03-31T00:00:00", 3, "2026-06-30T00:00:00"),
    ("2026-08-31T12:00:00", 3, "2026-11-30T12:00:00"),
    ("2026-05-31T12:00:00", 1, "2026-06-30T12:00:00"),
    ("2026-10-15T13:45:30.500000", 3, "2027-01-15T13:45:30.500000"),  # over new year
    ("2026-12-31T23:59:59", 2, "2027-02-28T23:59:59"),
    ("2026-02-28T10:00:00", 3, "2026-05-28T10:00:00"),  # a clamped day stays clamped only once
    ("2026-01-15T10:00:00", 12, "2027-01-15T10:00:00"),
    ("2026-01-15T10:00:00", 25, "2028-02-15T10:00:00"),
]


class TestMonths:
    @pytest.mark.parametrize(("received", "months", "due"), MONTHS)
    def test_calendar_months(self, received: str, months: int, due: str) -> None:
        """Calendar months, the day clamped to the end of a shorter month."""
        assert at(due) == due_at(at(received), Duration(months, Unit.MONTHS))

    def test_counted_in_utc(self) -> None:
        """An arrival given in another zone is counted in UTC (its UTC date decides)."""
        received = dt.datetime.fromisoformat("2026-03-01T01:00:00+02:00")  # 28 Feb 23:00 UTC
        assert at("2026-03-28T23:00:00") == due_at(received, Duration(1, Unit.MONTHS))

    def test_naive_refused(self) -> None:
        """A naive arrival time is a programming error, never guessed."""
        with pytest.raises(ValueError, match="aware"):
            due_at(dt.datetime(2026, 1, 1), Duration(1, Unit.MONTHS))


YEARS = [
    ("2024-02-29T09:00:00", 1, "2025-02-28T09:00:00"),  # 29 February, no anniversary
    ("2024-02-29T09:00:00", 3, "2027-02-28T09:00:00"),
    ("2024-02-29T09:00:00", 4, "2028-02-29T09:00:00"),  # a leap year again
    ("2023-03-01T09:00:00", 1, "2024-03-01T09:00:00"),
    ("2026-11-26T13:22:00", 3, "2029-11-26T13:22:00"),
]


class TestYears:
    @pytest.mark.parametrize(("received", "years", "due"), YEARS)
    def test_years(self, received: str, years: int, due: str) -> None:
        """Years are twelve calendar months: 29 February plus one year is 28 February."""
        assert at(due) == due_at(at(received), Duration(years, Unit.YEARS))


DAYS = [
    ("2026-03-28T12:00:00", 90, "2026-06-26T12:00:00"),
    ("2026-03-28T23:30:00", 1, "2026-03-29T23:30:00"),  # Paris changes hour that night: no matter
    ("2024-02-28T10:00:00", 2, "2024-03-01T10:00:00"),
    ("2026-12-31T23:59:59.999999", 1, "2027-01-01T23:59:59.999999"),
]


class TestDays:
    @pytest.mark.parametrize(("received", "days", "due"), DAYS)
    def test_days(self, received: str, days: int, due: str) -> None:
        """N days are exactly N times 24 hours."""
        assert at(due) == due_at(at(received), Duration(days, Unit.DAYS))


WORKING = [
    # received (UTC)          working days  due (end of the last working day)
    ("2026-07-13T10:00:00", 1, "2026-07-16T00:00:00"),  # Tue 14 July skipped: Wed 15 counts
    ("2026-07-06T10:00:00", 15, "2026-07-29T00:00:00"),  # 14 July inside the period
    ("2025-08-14T09:00:00", 1, "2025-08-19T00:00:00"),  # Fri 15 Aug 2025 + weekend: Mon 18
    ("2026-08-14T09:00:00", 1, "2026-08-18T00:00:00"),  # 15 Aug 2026 is a Saturday anyway
    ("2026-12-24T16:00:00", 1, "2026-12-29T00:00:00"),  # Fri 25 Dec + weekend: Mon 28
    ("2026-12-24T16:00:00", 15, "2027-01-19T00:00:00"),  # Christmas and 1 January inside
    ("2026-04-03T11:00:00", 1, "2026-04-08T00:00:00"),  # Easter Monday 6 April 2026
    ("2027-03-26T11:00:00", 1, "2027-03-31T00:00:00"),  # Easter Monday 29 March 2027
    ("2026-11-21T10:00:00", 1, "2026-11-24T00:00:00"),  # received on a Saturday: Monday counts
    ("2026-11-23T00:00:00", 1, "2026-11-25T00:00:00"),  # the arrival day never counts
    ("2026-11-23T23:59:59", 5, "2026-12-01T00:00:00"),
    ("2026-05-07T10:00:00", 1, "2026-05-12T00:00:00"),  # 8 May (Fri) + weekend: Mon 11
]


class TestWorkingDays:
    @pytest.mark.parametrize(("received", "count", "due"), WORKING)
    def test_working_days(self, received: str, count: int, due: str) -> None:
        """Weekends and French public holidays excluded; due at the end of the last one."""
        assert at(due) == due_at(at(received), Duration(count, Unit.WORKING_DAYS), CAL)

    def test_the_holidays_counted(self) -> None:
        """The French holidays used are the eleven of metropolitan France."""
        expected = {
            dt.date(2026, 1, 1),
            dt.date(2026, 4, 6),  # Easter Monday
            dt.date(2026, 5, 1),
            dt.date(2026, 5, 8),
            dt.date(2026, 5, 14),  # Ascension
            dt.date(2026, 5, 25),  # Whit Monday
            dt.date(2026, 7, 14),
            dt.date(2026, 8, 15),
            dt.date(2026, 11, 1),
            dt.date(2026, 11, 11),
            dt.date(2026, 12, 25),
        }
        assert expected == set(french_holidays(2026))

    def test_injected_provider(self) -> None:
        """The pure core takes any holiday provider: with none, only weekends are skipped."""
        plain = WorkingCalendar(lambda _year: ())
        assert at("2026-07-15T00:00:00") == due_at(
            at("2026-07-13T10:00:00"), Duration(1, Unit.WORKING_DAYS), plain
        )

    def test_needs_a_calendar(self) -> None:
        """Working days without a calendar is a programming error, never a guess."""
        with pytest.raises(ValueError, match="working calendar"):
            due_at(at("2026-07-13T10:00:00"), Duration(1, Unit.WORKING_DAYS))


class TestNeverEarly:
    def test_minimum_lengths(self) -> None:
        """Over two years of arrival times, no period ends before its shortest possible length."""
        start = at("2027-01-01T00:00:00")
        minimum = {
            Duration(3, Unit.MONTHS): dt.timedelta(days=89),  # Dec-Jan-Feb, 28 days
            Duration(1, Unit.YEARS): dt.timedelta(days=365),
            Duration(15, Unit.WORKING_DAYS): dt.timedelta(days=19),  # from a Sunday night
            Duration(90, Unit.DAYS): dt.timedelta(days=90),
        }
        for hours in range(0, 2 * 366 * 24, 7):
            received = start + dt.timedelta(hours=hours, minutes=13)
            for duration, least in minimum.items():
                due = due_at(received, duration, CAL)
                assert due - received >= least, (received, duration, due)

    def test_whole_working_days(self) -> None:
        """Between arrival and due there are exactly N whole working days, never fewer."""
        start = at("2026-12-01T00:00:00")
        for hours in range(0, 60 * 24, 5):
            received = start + dt.timedelta(hours=hours)
            due = due_at(received, Duration(15, Unit.WORKING_DAYS), CAL)
            day, whole = received.date() + dt.timedelta(days=1), 0
            while day < due.date():
                whole += CAL.is_working_day(day)
                day += dt.timedelta(days=1)
            assert 15 == whole, received
