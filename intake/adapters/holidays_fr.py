"""French public holidays: the one seam to the ``holidays`` package.

Rules:
- The pure core (``intake.core.durations``) never imports ``holidays``; it receives
  ``french_holidays`` as its holiday provider through ``working_calendar()``.
- Metropolitan France, as the ``holidays`` package lists it (1 January, Easter Monday,
  1 and 8 May, Ascension, Whit Monday, 14 July, 15 August, 1 and 11 November,
  25 December). Alsace-Moselle's two extra days (Good Friday, 26 December) are not
  holidays here: a period counted in working days there may end one day earlier than
  the local rule says.
"""

from __future__ import annotations

import datetime as _dt

import holidays

from intake.core.durations import WorkingCalendar


def french_holidays(year: int) -> frozenset[_dt.date]:
    """The public holidays of metropolitan France in ``year``."""
    return frozenset(holidays.country_holidays("FR", years=year).keys())


def working_calendar() -> WorkingCalendar:
    """Weekends and French public holidays excluded."""
    return WorkingCalendar(french_holidays)
