"""Fixtures of the execution service's tests: a controllable clock."""

from __future__ import annotations

import datetime as dt

import pytest


class FakeClock:
    """A clock that stands still until moved (the Clock port's fake)."""

    def __init__(self, now: dt.datetime) -> None:
        self.current = now

    def now(self) -> dt.datetime:
        """The fake current time."""
        return self.current

    def advance(self, delta: dt.timedelta) -> None:
        """Move time forward."""
        self.current += delta


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fake clock at 2027-03-10 12:00 UTC."""
    return FakeClock(dt.datetime(2027, 3, 10, 12, 0, tzinfo=dt.UTC))
