"""Synthetic event streams of the benchmark, built fast and reproducibly.

Kafka messages are real envelopes: one ``new_envelope(...).to_bytes()`` per template, then
ids are substituted in the bytes, so a million messages cost a few seconds, not pydantic's
per-object price. The same rows are also built as Arrow tables in measurement's
``lead_events`` layout (``warehouse.COLUMNS``), so the bare insert writes exactly what the
service would write.

Row ``i`` of a stream is fully determined by ``i``: lead ``i // events_per_lead`` of campaign
``lead % campaigns``, at funnel stage ``min(6, lead % 7 + i % events_per_lead)``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from services.measurement import warehouse
from shared.events import EventData, new_envelope
from shared.events.ingest import FUNNEL, LeadStageChanged, SpendRecorded
from shared.topics import LEADS, PLANNING, SPEND

_EID = "ffffffff-ffff-4fff-bfff-ffffffffffff"
_LEAD = "LEAD-PLACEHOLDER"
_CUSTOMER = "CUSTOMER-PLACEHOLDER"
_CUSTOMER_RANK = FUNNEL.index("customer")
_OPPORTUNITY_RANK = FUNNEL.index("opportunity")
EXPECTED_VALUE = Decimal("1250.00")
OCCURRED_AT = dt.datetime(2027, 3, 1, 10, 15, tzinfo=dt.UTC)


@dataclass(frozen=True)
class LeadStream:
    """A reproducible stream of ``lead.stage_changed`` events of one benchmark run."""

    run: str
    """Eight hex digits that make this run's ids unique."""
    phase: int = 0
    """Distinguishes streams of one run (goes into the event_id)."""
    campaigns: int = 40
    events_per_lead: int = 1
    partitions: int = 3

    def campaign_ids(self) -> list[str]:
        """The campaign ids the stream spreads its leads over."""
        return [f"bench-{self.run}-c{k:03d}" for k in range(self.campaigns)]

    def event_id(self, i: int) -> str:
        """The event_id of row ``i`` (a UUID string; digits of ``i`` in its last group)."""
        return f"{self.run}-{self.phase:04x}-4000-8000-{i:012d}"

    def lead_id(self, i: int) -> str:
        """The lead_id of row ``i``."""
        return f"lead-{self.run}-{self.phase}-{i // self.events_per_lead}"

    def customer_id(self, i: int) -> str:
        """The customer_id a lead gets when it becomes a customer."""
        return f"cust-{self.run}-{self.phase}-{i // self.events_per_lead}"

    def rank(self, i: int) -> int:
        """The funnel rank of row ``i``."""
        lead = i // self.events_per_lead
        return min(_CUSTOMER_RANK, lead % 7 + i % self.events_per_lead)

    def campaign_index(self, i: int) -> int:
        """The campaign (index into ``campaign_ids``) of row ``i``."""
        return (i // self.events_per_lead) % self.campaigns

    def partition(self, i: int) -> int:
        """The partition row ``i`` is published to (all events of a lead on one partition)."""
        return (i // self.events_per_lead) % self.partitions

    def templates(self) -> dict[tuple[int, int], bytes]:
        """Envelope bytes per (campaign index, rank) with placeholders for the ids."""
        out = {}
        for k, campaign_id in enumerate(self.campaign_ids()):
            for rank, stage in enumerate(FUNNEL):
                data = LeadStageChanged(
                    lead_id=_LEAD,
                    campaign_id=campaign_id,
                    channel="paid_search",
                    stage=stage,  # type: ignore[arg-type]
                    customer_id=_CUSTOMER if rank == _CUSTOMER_RANK else None,
                    expected_value=EXPECTED_VALUE if rank == _OPPORTUNITY_RANK else None,
                )
                envelope = new_envelope(
                    data, source="crm", event_id=uuid.UUID(_EID), occurred_at=OCCURRED_AT
                )
                out[(k, rank)] = envelope.to_bytes()
        return out

    def messages(self, start: int, count: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(partition, key, value) of rows ``start … start + count - 1``."""
        templates = self.templates()
        eid, lead, customer = _EID.encode(), _LEAD.encode(), _CUSTOMER.encode()
        for i in range(start, start + count):
            lead_id = self.lead_id(i).encode()
            rank = self.rank(i)
            value = (
                templates[(self.campaign_index(i), rank)]
                .replace(eid, self.event_id(i).encode())
                .replace(lead, lead_id)
            )
            if rank == _CUSTOMER_RANK:
                value = value.replace(customer, self.customer_id(i).encode())
            yield self.partition(i), lead_id, value

    def arrow(self, start: int, count: int) -> pa.Table:
        """Rows ``start … start + count - 1`` as measurement's ``lead_events`` insert (Arrow)."""
        i = np.arange(start, start + count, dtype=np.int64)
        lead = i // self.events_per_lead
        rank = np.minimum(_CUSTOMER_RANK, lead % 7 + i % self.events_per_lead).astype(np.int8)
        lead_text = pc.cast(pa.array(lead), pa.string())
        campaigns = pa.array(self.campaign_ids())
        stages = pa.array(list(FUNNEL))
        is_customer = pa.array(rank == _CUSTOMER_RANK)
        customers = pc.binary_join_element_wise(f"cust-{self.run}-{self.phase}-", lead_text, "")
        expected = pa.array([EXPECTED_VALUE, None], pa.decimal128(18, 2)).take(
            pa.array(np.where(rank == _OPPORTUNITY_RANK, 0, 1))
        )
        columns = {
            "event_id": pc.binary_join_element_wise(
                f"{self.run}-{self.phase:04x}-4000-8000-",
                pc.utf8_lpad(pc.cast(pa.array(i), pa.string()), 12, "0"),
                "",
            ),
            "occurred_at": pa.array(
                np.full(count, int(OCCURRED_AT.timestamp() * 1000), dtype=np.int64)
            ).cast(pa.timestamp("ms", tz="UTC")),
            "source": pa.array(["crm"] * 1).take(pa.array(np.zeros(count, dtype=np.int32))),
            "_topic": pa.array([LEADS]).take(pa.array(np.zeros(count, dtype=np.int32))),
            "_partition": pa.array((lead % self.partitions).astype(np.int32)),
            "_offset": pa.array(i // self.partitions),
            "lead_id": pc.binary_join_element_wise(f"lead-{self.run}-{self.phase}-", lead_text, ""),
            "campaign_id": campaigns.take(pa.array(lead % self.campaigns)),
            "channel": pa.array(["paid_search"]).take(pa.array(np.zeros(count, dtype=np.int32))),
            "stage": stages.take(pa.array(rank.astype(np.int32))),
            "stage_rank": pa.array(rank),
            "customer_id": pc.if_else(is_customer, customers, ""),
            "expected_value": expected,
        }
        assert tuple(columns) == warehouse.COLUMNS["lead_events"]
        return pa.table(columns)

    def expected_funnel(self, start: int, count: int) -> dict[str, dict[str, int]]:
        """campaign_id → stage → distinct leads reaching it or later, over the given rows."""
        i = np.arange(start, start + count, dtype=np.int64)
        lead = i // self.events_per_lead
        rank = np.minimum(_CUSTOMER_RANK, lead % 7 + i % self.events_per_lead)
        best = np.zeros(0)
        out: dict[str, dict[str, int]] = {}
        unique_leads, first = np.unique(lead, return_index=True)
        best = np.maximum.reduceat(rank, first) if count else best
        for k, campaign_id in enumerate(self.campaign_ids()):
            mine = best[unique_leads % self.campaigns == k]
            out[campaign_id] = {stage: int((mine >= r).sum()) for r, stage in enumerate(FUNNEL)}
        return out


def company_funnel(per_campaign: dict[str, dict[str, int]]) -> dict[str, int]:
    """Sum per-campaign funnels into the company funnel."""
    return {stage: sum(f[stage] for f in per_campaign.values()) for stage in FUNNEL}


@dataclass(frozen=True)
class Malformed:
    """A message that must end in ``<topic>.dlq``; ``marker`` finds it there."""

    topic: str
    key: bytes
    value: bytes
    marker: str
    kind: str


def malformed_messages(run: str, count: int) -> list[Malformed]:
    """``count`` malformed messages of four kinds (bad JSON, unknown type, missing field,
    out-of-range value); every tenth one on the spend topic, the rest on the leads topic."""
    good = json.loads(
        new_envelope(
            LeadStageChanged(lead_id="x", campaign_id="x", channel="web", stage="lead"),
            source="crm",
        ).to_bytes()
    )
    spend = json.loads(
        new_envelope(
            SpendRecorded(campaign_id="x", channel="web", amount=Decimal("1"), currency="USD"),
            source="ads",
        ).to_bytes()
    )
    out = []
    for j in range(count):
        marker = f"bad-{run}-{j:07d}"
        key = marker.encode()
        if j % 10 == 9:
            doc = {**spend, "event_id": str(uuid.uuid4())}
            doc["data"] = {**spend["data"], "campaign_id": marker, "amount": "-1.00"}
            out.append(Malformed(SPEND, key, json.dumps(doc).encode(), marker, "out_of_range"))
            continue
        kind = ("bad_json", "unknown_type", "missing_field", "out_of_range")[j % 4]
        doc = {**good, "event_id": str(uuid.uuid4())}
        doc["data"] = {**good["data"], "lead_id": marker}
        if kind == "bad_json":
            value = f'{{"event_id": "{marker}", "data": {{'.encode()
        elif kind == "unknown_type":
            value = json.dumps({**doc, "event_type": "lead.teleported"}).encode()
        elif kind == "missing_field":
            doc["data"].pop("channel")
            value = json.dumps(doc).encode()
        else:
            doc["data"]["expected_value"] = "-5.00"
            value = json.dumps(doc).encode()
        out.append(Malformed(LEADS, key, value, marker, kind))
    return out


def spend_template(*, campaign_id: str, amount: Decimal) -> bytes:
    """Envelope bytes of a USD spend event with a placeholder event_id (see ``with_event_id``)."""
    data = SpendRecorded(campaign_id=campaign_id, channel="display", amount=amount, currency="USD")
    return new_envelope(data, source="ads", event_id=uuid.UUID(_EID)).to_bytes()


def with_event_id(template: bytes, event_id: str) -> bytes:
    """A template's bytes with its placeholder event_id replaced."""
    return template.replace(_EID.encode(), event_id.encode())


def interleave(
    stream: Iterator[tuple[int, bytes, bytes]], bad: Sequence[Malformed], *, every: int
) -> Iterator[tuple[str, int | None, bytes, bytes]]:
    """(topic, partition, key, value): the stream with one malformed message after every
    ``every`` good ones (malformed messages get their partition from the broker's hash)."""
    pending = list(reversed(bad))
    for n, (partition, key, value) in enumerate(stream, start=1):
        yield LEADS, partition, key, value
        if pending and n % every == 0:
            item = pending.pop()
            yield item.topic, None, item.key, item.value
    while pending:
        item = pending.pop()
        yield item.topic, None, item.key, item.value


def repeat(value: object, count: int) -> pa.Array:
    """``value`` ``count`` times, as an Arrow array."""
    return pa.array([value]).take(pa.array(np.zeros(count, dtype=np.int32)))


def money(cents: np.ndarray) -> pa.Array:
    """Amounts given in cents as a money column (decimal, 2 places)."""
    return pa.array([Decimal(int(c)) / 100 for c in cents], pa.decimal128(18, 2))


def meta(
    count: int, *, run: str, phase: int, topic: str, source: str, at_ms: np.ndarray | None = None
) -> dict[str, pa.Array]:
    """The event columns (id, time, source, topic, partition, offset) of ``count`` rows; the
    times are ``at_ms`` (epoch milliseconds), or spread over the year of ``OCCURRED_AT``."""
    i = np.arange(count, dtype=np.int64)
    digits = pc.utf8_lpad(pc.cast(pa.array(i), pa.string()), 12, "0")
    if at_ms is None:
        # spread over the year so period queries and partitions look like a real history
        at_ms = int(OCCURRED_AT.replace(month=1, day=1).timestamp() * 1000) + (i * 7919) % (
            360 * 86_400_000
        )
    return {
        "event_id": pc.binary_join_element_wise(f"{run}-{phase:04x}-4000-8000-", digits, ""),
        "occurred_at": pa.array(at_ms).cast(pa.timestamp("ms", tz="UTC")),
        "source": repeat(source, count),
        "_topic": repeat(topic, count),
        "_partition": pa.array((i % 3).astype(np.int32)),
        "_offset": pa.array(i // 3),
    }


def planning_rows(events: Sequence[EventData]) -> list[warehouse.StoredEvent]:
    """Planning events as measurement stores them (``warehouse.insert_events``), dated
    ``OCCURRED_AT``."""
    return [
        warehouse.StoredEvent(
            envelope=new_envelope(data, source="planning", occurred_at=OCCURRED_AT),
            data=data,
            topic=PLANNING,
            partition=0,
            offset=n,
        )
        for n, data in enumerate(events)
    ]
