"""shared.sql's column types and readiness probe, and shared.http's readiness check."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from shared.http import readiness_of
from shared.sql import Cents, UtcDateTime, database_answers, make_engine


def test_cents_and_utc_timestamps_round_trip_exactly(database_url: str) -> None:
    engine = make_engine(database_url)
    table = Table(
        "kit_values",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("amount", Cents()),
        Column("at", UtcDateTime()),
    )
    table.create(engine)
    at = dt.datetime(2027, 3, 10, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with engine.begin() as connection:
        connection.execute(insert(table).values(id=1, amount=Decimal("1234567.89"), at=at))
        amount, stored_at = connection.execute(select(table.c.amount, table.c.at)).one()
    engine.dispose()
    assert amount == Decimal("1234567.89")
    assert stored_at == at and stored_at.tzinfo == dt.UTC


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UtcDateTime().process_bind_param(dt.datetime(2027, 3, 10), make_engine("sqlite://").dialect)


async def test_readiness_reports_each_probe_by_name(tmp_path: Path) -> None:
    answering = make_engine(f"sqlite:///{tmp_path / 'ok.db'}")
    missing = make_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    check = readiness_of(
        db=lambda: database_answers(answering), other=lambda: database_answers(missing)
    )
    assert await check() == {"db": True, "other": False}
