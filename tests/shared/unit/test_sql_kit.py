"""shared.sql (column types, outbox, readiness probe) and shared.http's readiness check."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select
from sqlalchemy.orm import Session

from shared.events import new_envelope
from shared.events.ingest import SpendRecorded
from shared.http import readiness_of
from shared.sql import (
    Cents,
    UtcDateTime,
    add_to_outbox,
    database_answers,
    define_messaging_tables,
    make_engine,
)


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


def test_outbox_skips_an_already_queued_event_id_only_when_asked(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    metadata = MetaData()
    tables = define_messaging_tables(metadata, prefix="kit")
    metadata.create_all(engine)
    data = SpendRecorded(campaign_id="c-1", channel="search", amount=Decimal("1"), currency="USD")
    envelope = new_envelope(data, source="test")
    with Session(engine) as session, session.begin():
        queue = {"envelope": envelope, "topic": data.topic, "key": data.key()}
        assert add_to_outbox(session, tables, **queue) is True
        assert add_to_outbox(session, tables, **queue, skip_existing=True) is False
        rows = session.execute(select(func.count()).select_from(tables.outbox)).scalar_one()
    engine.dispose()
    assert rows == 1
