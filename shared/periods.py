"""Sales-target periods: a month (``2027-03``) or a quarter (``2027-Q1``) and its first and last
day — one reading for planning, which sets targets, and measurement, which tracks them."""

from __future__ import annotations

import calendar
import datetime as dt
import re

from shared.errors import DomainError

_PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """The first and last day of a month (``2027-03``) or quarter (``2027-Q1``) period."""
    match = _PERIOD.match(period)
    if match is None:
        raise DomainError(
            "a period is a month (2027-03) or a quarter (2027-Q1)", field="period", status_code=422
        )
    year = int(match.group(1))
    if not 1970 <= year <= 2148:
        raise DomainError("the year must lie within 1970..2148", field="period", status_code=422)
    if match.group(2):
        first_month = last_month = int(match.group(2))
    else:
        first_month = 3 * (int(match.group(3)) - 1) + 1
        last_month = first_month + 2
    last_day = calendar.monthrange(year, last_month)[1]
    return dt.date(year, first_month, 1), dt.date(year, last_month, last_day)
