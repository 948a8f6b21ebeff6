"""Planning's composition root: store, broker, subscribers, outbox relay and HTTP app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from services.planning import api, handlers
from services.planning.settings import PlanningSettings
from services.planning.store import MESSAGING, Store
from shared.consumer import EventConsumer
from shared.http import create_service_app
from shared.kafka import kafka_reachable, make_broker, prepare_kafka
from shared.metrics import ServiceMetrics
from shared.outbox import OutboxRelay
from shared.runtime import broker_running
from shared.sql import make_engine

SERVICE = "planning"


def create_app(settings: PlanningSettings) -> FastAPI:
    """The planning service as an ASGI app; everything is built inside its lifespan."""
    metrics = ServiceMetrics(SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        broker = make_broker(settings.bootstrap, client_id=f"mrm-{SERVICE}")
        relay = OutboxRelay(engine=engine, tables=MESSAGING, broker=broker, metrics=metrics)
        db = Store(engine, on_commit=relay.wake)
        await asyncio.to_thread(db.create_schema)
        handlers.register(
            EventConsumer(broker=broker, group_id=f"mrm-{SERVICE}", metrics=metrics), db=db
        )
        await prepare_kafka(settings.bootstrap, partitions=settings.topic_partitions)

        async def readiness() -> dict[str, bool]:
            return {
                "kafka": await asyncio.to_thread(kafka_reachable, settings.bootstrap),
                "database": await asyncio.to_thread(_database_answers, engine),
            }

        app.state.store = db
        app.state.settings = settings
        async with broker_running(broker, background=[relay.run]):
            app.state.readiness = readiness
            yield
        engine.dispose()

    app = create_service_app(
        service=SERVICE,
        title="MRM planning",
        lifespan=lifespan,
        metrics=metrics,
        tokens=settings.tokens,
    )
    app.include_router(api.router)
    return app


def _database_answers(engine) -> bool:  # type: ignore[no-untyped-def]
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - readiness reports, never raises
        return False
