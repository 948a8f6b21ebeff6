"""Composition root of the execution service: store, broker, subscribers, relay, scheduler, API."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from services.execution import api, store
from services.execution.handlers import ExecutionHandlers
from services.execution.migrations import migration_set
from services.execution.scheduler import Scheduler
from services.execution.settings import ExecutionSettings
from shared import topics
from shared.clock import Clock, SystemClock
from shared.consumer import EventConsumer
from shared.http import create_service_app, readiness_of
from shared.kafka import make_broker, prepare_kafka
from shared.metrics import ServiceMetrics
from shared.money import FxRates
from shared.outbox import OutboxRelay
from shared.runtime import broker_running, supervise
from shared.sql import database_answers
from shared.sql_service import MessagingPruner, open_store
from shared.watch import BrokerWatch

SERVICE = "execution"
PUBLISHES = (topics.EXECUTION,)
"""The topics execution publishes to (its outbox's events)."""


def create_app(settings: ExecutionSettings, *, clock: Clock | None = None) -> FastAPI:
    """The execution service's app; everything it runs on is built in its lifespan."""
    metrics = ServiceMetrics(SERVICE)
    metrics.publishing(PUBLISHES)
    clock = clock or SystemClock()
    fx = FxRates(base=settings.currency, rates=dict(settings.fx_rates))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await open_store(settings, migration_set())
        try:
            broker = make_broker(
                settings.bootstrap, client_id=f"mrm-{SERVICE}", kafka=settings.kafka_options()
            )
            relay = OutboxRelay(
                engine=engine, tables=store.MESSAGING, broker=broker, metrics=metrics
            )
            handlers = ExecutionHandlers(engine=engine, relay=relay, clock=clock, fx=fx)
            consumer = EventConsumer(
                broker=broker,
                group_id=settings.consumer_group,
                max_attempts=settings.consumer_max_attempts,
                metrics=metrics,
                fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            )
            # one subscription, batches in partition order: a batch's spend is applied per
            # campaign in one transaction (a commit per event caps the service near 300/s)
            consumer.on_batch(
                topics.PLANNING, topics.SPEND, topics.TASKS, handler=handlers.on_events
            )
            scheduler = Scheduler(
                engine=engine,
                relay=relay,
                clock=clock,
                fx=fx,
                warning_window=dt.timedelta(hours=settings.deadline_warning_hours),
            )
            app.state.execution = api.ApiDeps(engine=engine, relay=relay, clock=clock, fx=fx)
            await prepare_kafka(settings.bootstrap, kafka=settings.kafka_options())
            watch = BrokerWatch(
                bootstrap=settings.bootstrap,
                kafka=settings.kafka_options(),
                metrics=metrics,
                partitions=settings.topic_partitions,
                group_id=consumer.group_id,
                subscriptions=consumer.subscriptions,
                stall_after_s=settings.consumer_stall_after_s,
            )
            app.state.readiness = readiness_of(
                kafka=watch.kafka_ready,
                consumer_progress=watch.progress_ready,
                db=partial(database_answers, engine),
            )
            scheduling = partial(
                supervise,
                "execution_scheduler",
                scheduler.tick,
                every_s=settings.scheduler_interval_s,
            )
            prune = MessagingPruner(engine, store.MESSAGING, settings).run
            async with broker_running(
                broker,
                background=[relay.run, scheduling, watch.run, prune],
                drain=[relay.relay_once],
            ):
                yield
        finally:
            app.state.readiness = None
            engine.dispose()

    app = create_service_app(
        service=SERVICE,
        title="MRM execution",
        lifespan=lifespan,
        metrics=metrics,
        tokens=settings.tokens,
        max_body_bytes=settings.http_max_body_bytes,
    )
    app.include_router(api.router)
    return app
