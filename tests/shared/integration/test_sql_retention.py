"""Outbox and inbox pruning after the retention period (SQLite and PostgreSQL), and the
connection pool settings of a server database."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, MetaData, insert, select
from sqlalchemy.orm import Session

from services.execution.settings import ExecutionSettings
from services.notifier.settings import NotifierSettings
from services.planning.settings import PlanningSettings
from shared.sql import (
    MessagingTables,
    PoolOptions,
    claim_event,
    define_messaging_tables,
    make_engine,
    prune_messaging,
)
from shared.sql_service import MessagingPruner

NOW = dt.datetime(2027, 5, 20, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def messaging(database_url: str) -> Iterator[tuple[Engine, MessagingTables]]:
    engine = make_engine(database_url)
    metadata = MetaData()
    tables = define_messaging_tables(metadata, prefix="kit")
    metadata.create_all(engine)
    yield engine, tables
    engine.dispose()


def event_id(n: int) -> str:
    return str(uuid.UUID(int=n))


def fill(engine: Engine, tables: MessagingTables) -> None:
    """Outbox: 1 published 8 days ago, 2 published 6 days ago, 3 queued 8 days ago and never
    published; inbox: 4 processed 8 days ago, 5 processed 1 day ago, 6 by another consumer
    8 days ago."""
    outbox = [
        (1, NOW - 9 * DAY, NOW - 8 * DAY),
        (2, NOW - 6 * DAY, NOW - 6 * DAY),
        (3, NOW - 8 * DAY, None),
    ]
    inbox = [(4, "handler", NOW - 8 * DAY), (5, "handler", NOW - DAY), (6, "other", NOW - 8 * DAY)]
    with engine.begin() as connection:
        connection.execute(
            insert(tables.outbox),
            [
                {
                    "event_id": event_id(n),
                    "topic": "t",
                    "key": None,
                    "payload": {},
                    "created_at": created,
                    "published_at": published,
                }
                for n, created, published in outbox
            ],
        )
        connection.execute(
            insert(tables.inbox),
            [
                {"consumer": consumer, "event_id": event_id(n), "processed_at": at}
                for n, consumer, at in inbox
            ],
        )


def remaining(engine: Engine, tables: MessagingTables) -> tuple[list[str], list[str]]:
    with engine.connect() as connection:
        outbox = connection.scalars(select(tables.outbox.c.event_id)).all()
        inbox = connection.scalars(select(tables.inbox.c.event_id)).all()
    return sorted(outbox), sorted(inbox)


def test_published_outbox_rows_and_inbox_rows_older_than_the_retention_go(
    messaging: tuple[Engine, MessagingTables],
) -> None:
    engine, tables = messaging
    fill(engine, tables)

    deleted = prune_messaging(engine, tables, older_than=NOW - 7 * DAY)

    assert deleted == 3  # outbox 1; inbox 4 and 6
    assert remaining(engine, tables) == (
        [event_id(2), event_id(3)],  # 3 is not published yet: it stays however old
        [event_id(5)],
    )
    # an idempotent DELETE by age: a second replica's round finds nothing more
    assert prune_messaging(engine, tables, older_than=NOW - 7 * DAY) == 0


def test_a_redelivery_within_the_retention_is_still_recognised(
    messaging: tuple[Engine, MessagingTables],
) -> None:
    engine, tables = messaging
    fill(engine, tables)
    prune_messaging(engine, tables, older_than=NOW - 7 * DAY)
    with Session(engine) as session, session.begin():
        # processed a day ago: still a duplicate
        assert not claim_event(session, tables, consumer="handler", event_id=uuid.UUID(event_id(5)))
        # processed eight days ago: its record is gone, outside the window dedupe promises
        assert claim_event(session, tables, consumer="handler", event_id=uuid.UUID(event_id(4)))


def test_two_replicas_pruning_at_once_delete_each_row_once(
    messaging: tuple[Engine, MessagingTables], database_url: str
) -> None:
    engine, tables = messaging
    fill(engine, tables)
    settings = PlanningSettings(database_url=database_url, outbox_retention_s=7 * 86400)
    other = make_engine(database_url)
    replicas = [MessagingPruner(engine, tables, settings), MessagingPruner(other, tables, settings)]

    async def both() -> list[int]:
        return list(await asyncio.gather(*(r.prune_once(now=NOW) for r in replicas)))

    try:
        counts = asyncio.run(both())
    finally:
        other.dispose()
    assert sum(counts) == 3
    assert remaining(engine, tables) == ([event_id(2), event_id(3)], [event_id(5)])


def test_retention_and_pool_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert PlanningSettings().outbox_retention_s == 7 * 86400
    monkeypatch.setenv("MRM_OUTBOX_RETENTION_S", "86400")
    monkeypatch.setenv("MRM_DATABASE_POOL_SIZE", "12")
    monkeypatch.setenv("MRM_DATABASE_MAX_OVERFLOW", "3")
    monkeypatch.setenv("MRM_DATABASE_POOL_RECYCLE_S", "600")
    monkeypatch.setenv("MRM_DATABASE_POOL_TIMEOUT_S", "4.5")
    expected = PoolOptions(size=12, max_overflow=3, recycle_s=600.0, timeout_s=4.5)
    for settings_class in (PlanningSettings, ExecutionSettings, NotifierSettings):
        settings = settings_class()
        assert settings.outbox_retention_s == 86400
        assert settings.pool_options() == expected


def test_a_retention_under_an_hour_is_refused() -> None:
    with pytest.raises(ValueError, match="outbox_retention_s"):
        PlanningSettings(outbox_retention_s=60)


def test_a_postgresql_engine_gets_the_pool_settings() -> None:
    # no connection is opened: the pool is configured when the engine is made
    engine = make_engine(
        "postgresql://nobody@127.0.0.1:1/none",
        pool=PoolOptions(size=12, max_overflow=3, recycle_s=600.0, timeout_s=4.5),
    )
    pool = engine.pool
    assert (pool.size(), pool._max_overflow, pool._recycle, pool._timeout) == (  # type: ignore[attr-defined]
        12,
        3,
        600,
        4.5,
    )
    engine.dispose()
