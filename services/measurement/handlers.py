"""Measurement's subscriber: ingest and planning events into ClickHouse, in batches.

The ingest topics take the columnar hot path (``columns.split``: a batch's raw values → one
validated Arrow table per topic, one insert per table). Planning events, customer profiles
(``mrm.customers.v1``: low volume, a map column), any message the batch check declines, and
spend or sales in another currency than their campaign's go through the pydantic gate
(``shared.events.decode``) and the domain one by one, so a malformed message reaches the DLQ
with the same field-naming reason as everywhere else.

A batch is durable in ClickHouse before the handler returns, so its offsets (on every
partition it spans) are committed only then. A batch failing on an outage is retried whole;
on any other error the consumer splits it to isolate the failing records (``classify_failure``
tells it which errors are the data's) — both safe because the tables collapse repeated
event_ids and queries count each event_id once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import structlog

from services.measurement import domain, warehouse
from services.measurement.warehouse import StoredEvent, Warehouse, alerts, columns
from shared.consumer import EventConsumer
from shared.events import EventRejected, decode
from shared.events.ingest import SaleCompleted, SpendRecorded
from shared.events.planning import DiscountLimitSet, ReallocationRuleRemoved, ReallocationRuleSet
from shared.failures import Failure
from shared.money import CurrencyNotConvertible, FxRates
from shared.topics import INGEST_TOPICS, PLANNING

log = structlog.get_logger(__name__)

Rejection = tuple[Any, str]


class Ingestor:
    """Writes batches to the warehouse and notes the campaigns they touched in its change log."""

    def __init__(self, *, warehouse: Warehouse, fx: FxRates) -> None:
        self.warehouse = warehouse
        self.fx = fx

    async def on_events(self, records: Sequence[Any]) -> list[Rejection]:
        """Store a batch of raw records; return those rejected, with their reason (→ DLQ)."""
        # CPU-bound, off the event loop (pyarrow also releases the GIL): HTTP requests and the
        # Kafka fetcher keep running meanwhile
        batch = await asyncio.to_thread(columns.split, records)
        planning, events, rejected = _decoded(batch.unusual)
        monetary = batch.campaign_ids(tables=("spend", "sales"))
        monetary.update(
            e.data.campaign_id
            for e in events
            if isinstance(e.data, SpendRecorded | SaleCompleted) and e.data.campaign_id
        )
        currencies: dict[str, str] = {}
        if monetary:
            # on the writer, which this batch needs next anyway: the readers stay free for
            # KPI requests (a lookup per spend batch competed with them for a reader)
            currencies = await self.warehouse.write(
                warehouse.campaign_currencies, campaign_ids=sorted(monetary)
            )
        # rows in another currency are converted (or rejected) one by one by the domain
        foreign = columns.foreign_currency(batch, currencies=currencies, fx=self.fx)
        if foreign:
            _, more_events, more_rejected = _decoded(foreign)
            events += more_events
            rejected += more_rejected
        if planning:
            await self.warehouse.write(warehouse.insert_events, events=planning)
        accepted = []
        for event in events:
            campaign_id = getattr(event.data, "campaign_id", None)
            try:
                data = domain.in_campaign_currency(
                    event.data, campaign_currency=currencies.get(campaign_id or ""), fx=self.fx
                )
            except CurrencyNotConvertible as exc:
                rejected.append((event.source, f"data.currency: {exc}"))
                continue
            accepted.append(_with_data(event, data))
        tables = columns.to_arrow_tables(batch)
        if tables or accepted:
            await self.warehouse.write(warehouse.insert_batch, tables=tables, events=accepted)
        # after the rows are stored and before the offsets are committed: the monitor (on
        # whichever replica leads) finds every campaign whose data changed, wherever it landed
        changed = set(batch.campaign_ids())
        changed.update(_campaign_of(event.data) for event in planning)
        changed.update(getattr(event.data, "campaign_id", None) or "" for event in accepted)
        # a plan's new or changed reallocation rule is evaluated at once, not at its next data
        ruled = {e.data.plan_id for e in planning if isinstance(e.data, RULE_EVENTS)}
        if ruled:
            changed.update(
                await self.warehouse.run(alerts.campaigns_of_plans, plan_ids=sorted(ruled))
            )
        changed.discard("")
        if changed:
            await self.warehouse.write(alerts.record_changes, campaign_ids=sorted(changed))
        return rejected


RULE_EVENTS = (ReallocationRuleSet, ReallocationRuleRemoved)


def _campaign_of(data: Any) -> str:
    """The campaign a planning event changes ('' = none; a campaign's discount limit counts)."""
    if isinstance(data, DiscountLimitSet):
        return data.scope_id if data.scope_kind == "campaign" else ""
    return getattr(data, "campaign_id", None) or ""


def _decoded(
    records: Sequence[Any],
) -> tuple[list[StoredEvent], list[StoredEvent], list[Rejection]]:
    """Planning events, other events and rejections of records decoded one by one (pydantic)."""
    planning: list[StoredEvent] = []
    events: list[StoredEvent] = []
    rejected: list[Rejection] = []
    for record in records:
        try:
            envelope, data = decode(record.value, topic=record.topic)
        except EventRejected as exc:
            rejected.append((record, exc.reason))
            continue
        stored = StoredEvent(
            envelope=envelope,
            data=data,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            source=record,
        )
        (planning if record.topic == PLANNING else events).append(stored)
    return planning, events, rejected


def _with_data(event: StoredEvent, data: Any) -> StoredEvent:
    if data is event.data:
        return event
    return StoredEvent(
        envelope=event.envelope,
        data=data,
        topic=event.topic,
        partition=event.partition,
        offset=event.offset,
        source=event.source,
    )


def classify_failure(exc: BaseException) -> Failure | None:
    """Measurement's own rule: a value Arrow cannot put in its column type (an overflowing
    count, a mistyped field that slipped past the checks) is the record's fault, not an
    outage; the consumer isolates the record and dead-letters it."""
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError | OverflowError):
        return Failure.DATA
    return None


def register(
    consumer: EventConsumer, *, ingestor: Ingestor, max_records: int, batch_timeout_ms: int
) -> None:
    """Subscribe measurement to every ingest topic and the planning topic, in raw batches."""
    consumer.on_raw_batch(
        *INGEST_TOPICS,
        PLANNING,
        handler=ingestor.on_events,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
    )
