"""Planning's composition root: store, broker, subscribers, outbox relay and HTTP app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from services.planning import api, handlers
from services.planning.settings import PlanningSettings
from services.planning.store import MESSAGING, Store
from shared.consumer import EventConsumer
from shared.http import create_service_app, readiness_of
from shared.kafka import kafka_reachable, make_broker, prepare_kafka
from shared.metrics import ServiceMetrics
from shared.outbox import OutboxRelay
from shared.runtime import broker_running
from shared.sql import database_answers, make_engine

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
            EventConsumer(
                broker=broker,
                group_id=settings.consumer_group,
                metrics=metrics,
                fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            ),
            db=db,
        )
        await prepare_kafka(settings.bootstrap, partitions=settings.topic_partitions)

        readiness = readiness_of(
            kafka=partial(kafka_reachable, settings.bootstrap),
            database=partial(database_answers, engine),
        )
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
