"""Composition root of the notifier: store, broker, consumer, relay, delivery worker, HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx
from fastapi import FastAPI

from services.notifier import api, domain, store
from services.notifier.delivery import DeliveryWorker
from services.notifier.handlers import NotifierHandlers
from services.notifier.metrics import NotifierMetrics
from services.notifier.migrations import migration_set
from services.notifier.senders import HttpWebhookSender, Senders, SmtpEmailSender
from services.notifier.settings import NotifierSettings
from shared import topics
from shared.consumer import EventConsumer
from shared.http import create_service_app, readiness_of
from shared.kafka import make_broker, prepare_kafka
from shared.metrics import ServiceMetrics
from shared.outbox import OutboxRelay
from shared.runtime import broker_running, supervise
from shared.sql import database_answers
from shared.sql_service import MessagingPruner, open_store
from shared.watch import BrokerWatch

PARKED_SWEEP_S = 30.0
PUBLISHES = (topics.NOTIFICATIONS,)
"""The topics the notifier publishes to (delivery outcomes, through its outbox)."""


def create_app(settings: NotifierSettings) -> FastAPI:
    """The notifier's FastAPI app; everything with I/O is built in its lifespan."""
    metrics = ServiceMetrics("notifier")
    metrics.publishing(PUBLISHES)
    notifier_metrics = NotifierMetrics(metrics, channels=domain.CHANNELS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await open_store(settings, migration_set())
        broker = make_broker(
            settings.bootstrap, client_id="mrm-notifier", kafka=settings.kafka_options()
        )
        relay = OutboxRelay(engine=engine, tables=store.MESSAGING, broker=broker, metrics=metrics)
        timeout = max(settings.smtp_timeout_s, settings.webhook_timeout_s)
        async with httpx.AsyncClient(timeout=settings.webhook_timeout_s) as client:
            senders = Senders(
                email=SmtpEmailSender(
                    host=settings.smtp_host,
                    port=settings.smtp_port,
                    sender=settings.smtp_from,
                    username=settings.smtp_username,
                    password=settings.smtp_password.get_secret_value()
                    if settings.smtp_password
                    else None,
                    starttls=settings.smtp_starttls,
                    timeout_s=settings.smtp_timeout_s,
                ),
                webhook=HttpWebhookSender(
                    client=client,
                    secret=settings.webhook_secret.get_secret_value()
                    if settings.webhook_secret
                    else None,
                    allow_private=settings.webhook_allow_private,
                ),
            )
            worker = DeliveryWorker(
                engine=engine,
                senders=senders,
                policy=domain.RetryPolicy(
                    max_attempts=settings.max_attempts,
                    initial_s=settings.retry_initial_s,
                    max_s=settings.retry_max_s,
                ),
                metrics=notifier_metrics,
                on_settled=relay.wake,
                poll_interval_s=settings.poll_interval_s,
                concurrency=settings.delivery_concurrency,
                lease_s=max(60.0, 4 * timeout),
            )

            def wake() -> None:
                worker.wake()
                relay.wake()

            handlers = NotifierHandlers(
                engine=engine,
                metrics=notifier_metrics,
                after_commit=wake,
                parked_max_age=dt.timedelta(hours=settings.parked_max_age_h),
            )
            consumer = EventConsumer(
                broker=broker,
                group_id=settings.consumer_group,
                max_attempts=settings.consumer_max_attempts,
                metrics=metrics,
                fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            )
            handlers.register(consumer)

            async def sweep_parked() -> None:
                await supervise("release_parked", handlers.release_ready, every_s=PARKED_SWEEP_S)

            app.state.engine = engine
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
            try:
                async with broker_running(
                    broker,
                    background=[
                        relay.run,
                        worker.run,
                        sweep_parked,
                        watch.run,
                        MessagingPruner(engine, store.MESSAGING, settings).run,
                    ],
                    drain=[relay.relay_once],
                ):
                    yield
            finally:
                app.state.readiness = None
        engine.dispose()

    app = create_service_app(
        service="notifier",
        title="MRM notifier",
        lifespan=lifespan,
        metrics=metrics,
        tokens=settings.tokens,
        max_body_bytes=settings.http_max_body_bytes,
    )
    app.state.webhook_allow_private = settings.webhook_allow_private
    app.include_router(api.router)
    return app
