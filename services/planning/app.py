"""Planning's composition root: store, broker, subscribers, outbox relay and HTTP app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from services.planning import (
    api,
    approval_api,
    budget_api,
    discount_api,
    forecast_api,
    handlers,
    rule_api,
    sales_api,
)
from services.planning.migrations import migration_set
from services.planning.settings import PlanningSettings
from services.planning.store import MESSAGING, Store
from shared import topics
from shared.consumer import EventConsumer
from shared.http import create_service_app, readiness_of
from shared.kafka import make_broker, prepare_kafka
from shared.metrics import ServiceMetrics
from shared.money import FxRates
from shared.outbox import OutboxRelay
from shared.runtime import broker_running
from shared.sql import database_answers
from shared.sql_service import MessagingPruner, open_store
from shared.watch import BrokerWatch

SERVICE = "planning"
PUBLISHES = (topics.PLANNING,)
"""The topics planning publishes to (its outbox's events)."""


def create_app(settings: PlanningSettings) -> FastAPI:
    """The planning service as an ASGI app; everything is built inside its lifespan."""
    metrics = ServiceMetrics(SERVICE)
    metrics.publishing(PUBLISHES)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await open_store(settings, migration_set())
        broker = make_broker(
            settings.bootstrap, client_id=f"mrm-{SERVICE}", kafka=settings.kafka_options()
        )
        relay = OutboxRelay(engine=engine, tables=MESSAGING, broker=broker, metrics=metrics)
        db = Store(engine, on_commit=relay.wake)
        consumer = EventConsumer(
            broker=broker,
            group_id=settings.consumer_group,
            max_attempts=settings.consumer_max_attempts,
            metrics=metrics,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )
        fx = FxRates(base=settings.currency, rates=dict(settings.fx_rates))
        handlers.register(consumer, db=db, fx=fx)
        await prepare_kafka(settings.bootstrap, kafka=settings.kafka_options())
        watch = BrokerWatch(
            bootstrap=settings.bootstrap,
            kafka=settings.kafka_options(),
            metrics=metrics,
            partitions=settings.topic_partitions,
            group_id=consumer.group_id,
            subscriptions=consumer.subscriptions,
            produced=PUBLISHES,
            on_reset=partial(handlers.on_topic_reset, db=db, relay=relay),
            stall_after_s=settings.consumer_stall_after_s,
        )

        readiness = readiness_of(
            kafka=watch.kafka_ready,
            consumer_progress=watch.progress_ready,
            database=partial(database_answers, engine),
        )
        app.state.store = db
        app.state.settings = settings
        app.state.fx = fx
        async with broker_running(
            broker,
            background=[relay.run, watch.run, MessagingPruner(engine, MESSAGING, settings).run],
            drain=[relay.relay_once],
        ):
            app.state.readiness = readiness
            yield
        engine.dispose()

    app = create_service_app(
        service=SERVICE,
        title="MRM planning",
        lifespan=lifespan,
        metrics=metrics,
        tokens=settings.tokens,
        max_body_bytes=settings.http_max_body_bytes,
    )
    app.include_router(api.router)
    app.include_router(budget_api.router)
    app.include_router(approval_api.router)
    app.include_router(sales_api.router)
    app.include_router(discount_api.router)
    app.include_router(rule_api.router)
    app.include_router(forecast_api.router)
    return app
