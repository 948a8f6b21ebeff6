"""Measurement's composition root: ClickHouse, broker, batch ingestion, target monitor, HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI

from services.measurement import (
    api,
    discount_api,
    effectiveness_api,
    handlers,
    model_api,
    pipeline_api,
    progress_api,
    rule_segments_api,
    segment_kpis_api,
    segments_api,
    target_forecast_api,
    uplift_api,
)
from services.measurement.campaign_models import ApprovalModels
from services.measurement.handlers import Ingestor
from services.measurement.monitor import TargetMonitor
from services.measurement.reallocation import PlanRule
from services.measurement.sales_watch import SalesTargetWatch
from services.measurement.settings import MeasurementSettings
from services.measurement.warehouse import Warehouse, connect, migrate, ping
from shared import topics
from shared.consumer import EventConsumer
from shared.http import create_service_app
from shared.kafka import make_broker, prepare_kafka
from shared.leadership import Leadership
from shared.metrics import ServiceMetrics
from shared.money import FxRates
from shared.runtime import broker_running, supervise
from shared.watch import BrokerWatch

SERVICE = "measurement"
PUBLISHES = (topics.KPI,)
"""The topics measurement publishes to (what the monitor and the models decide)."""
MONITOR_TOPIC = "mrm.measurement.monitor"
"""One partition, no messages: its consumer group elects the replica that runs the monitor."""


def create_app(settings: MeasurementSettings) -> FastAPI:
    """The measurement service as an ASGI app; everything is built inside its lifespan."""
    metrics = ServiceMetrics(SERVICE)
    metrics.publishing(PUBLISHES)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await asyncio.to_thread(
            connect, settings.clickhouse_url, **settings.clickhouse_options()
        )
        await asyncio.to_thread(
            migrate,
            client,
            database=settings.clickhouse_database,
            cluster=settings.clickhouse_cluster,
        )
        readers = [
            await asyncio.to_thread(
                connect, settings.clickhouse_url, **settings.clickhouse_options()
            )
            for _ in range(settings.readers)
        ]
        warehouse = Warehouse(client, readers=readers)
        broker = make_broker(
            settings.bootstrap, client_id=f"mrm-{SERVICE}", kafka=settings.kafka_options()
        )
        fx = FxRates(base=settings.currency, rates=settings.fx_rates)
        ingestor = Ingestor(warehouse=warehouse, fx=fx)
        consumer = EventConsumer(
            broker=broker,
            group_id=settings.consumer_group,
            max_attempts=settings.consumer_max_attempts,
            classifiers=[handlers.classify_failure],
            metrics=metrics,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )
        handlers.register(
            consumer,
            ingestor=ingestor,
            max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
        )
        leadership = Leadership(
            bootstrap=settings.bootstrap,
            kafka=settings.kafka_options(),
            topic=MONITOR_TOPIC,
            group_id=settings.monitor_group,
            client_id=f"mrm-{SERVICE}-monitor",
        )
        monitor = TargetMonitor(
            warehouse=warehouse,
            broker=broker,
            metrics=metrics,
            leadership=leadership,
            max_per_round=settings.evaluate_max_campaigns,
            evidence=settings.alert_min_spend_share,
            fallback_rule=PlanRule(spec=settings.default_rule()),
        )
        approval_models = ApprovalModels(
            warehouse=warehouse, broker=broker, metrics=metrics, leadership=leadership, fx=fx
        )
        sales_watch = SalesTargetWatch(
            warehouse=warehouse,
            broker=broker,
            metrics=metrics,
            leadership=leadership,
            fx=fx,
            rule=settings.sales_at_risk_rule(),
        )
        await prepare_kafka(settings.bootstrap, kafka=settings.kafka_options())
        watch = BrokerWatch(
            bootstrap=settings.bootstrap,
            kafka=settings.kafka_options(),
            metrics=metrics,
            partitions=settings.topic_partitions,
            group_id=consumer.group_id,
            subscriptions=consumer.subscriptions,
            stall_after_s=settings.consumer_stall_after_s,
            single_partition=[MONITOR_TOPIC],  # re-created with the others after a reset
        )

        async def readiness() -> dict[str, bool]:
            return {
                "kafka": watch.kafka_ready(),
                "consumer_progress": watch.progress_ready(),
                "clickhouse": await warehouse.run(ping),
            }

        app.state.warehouse = warehouse
        app.state.fx = fx
        app.state.leadership = leadership
        app.state.sales_rule = settings.sales_at_risk_rule()
        background: list[Callable[[], Coroutine[Any, Any, None]]] = [
            watch.run,
            partial(supervise, "monitor_leadership", leadership.run, every_s=1.0),
            partial(
                supervise,
                "evaluate_targets",
                monitor.evaluate_changed,
                every_s=settings.evaluate_interval_s,
            ),
            partial(
                supervise,
                "reallocation_proposals",
                monitor.reallocate_touched,
                every_s=settings.reallocation_interval_s,
            ),
            partial(
                supervise,
                "discount_checks",
                monitor.watch_discounts,
                every_s=settings.evaluate_interval_s,
            ),
            partial(
                supervise,
                "kpi_snapshots",
                monitor.snapshot_active,
                every_s=settings.snapshot_interval_s,
            ),
            partial(
                supervise,
                "approval_models",
                approval_models.model_new_approvals,
                every_s=settings.model_interval_s,
            ),
            partial(
                supervise,
                "sales_target_risk",
                sales_watch.check_running,
                every_s=settings.sales_target_interval_s,
            ),
        ]
        try:
            async with broker_running(broker, background=background):
                app.state.readiness = readiness
                yield
        finally:
            for reader in readers:
                reader.close()
            client.close()

    app = create_service_app(
        service=SERVICE,
        title="MRM measurement",
        lifespan=lifespan,
        metrics=metrics,
        tokens=settings.tokens,
        max_body_bytes=settings.http_max_body_bytes,
    )
    app.include_router(api.router)
    app.include_router(progress_api.router)
    app.include_router(target_forecast_api.router)
    app.include_router(discount_api.router)
    app.include_router(model_api.router)
    app.include_router(pipeline_api.router)
    app.include_router(uplift_api.router)
    # before any /segments/{id} route, which would take "effectiveness" for an id
    app.include_router(effectiveness_api.router)
    app.include_router(segments_api.router)
    app.include_router(rule_segments_api.router)  # after segments_api: /segments/rfm is RFM's
    app.include_router(segment_kpis_api.router)
    return app
