"""What measurement's integration tests share: an event set built by name, whose event ids
derive from the names (so inserting it again is a replay the tables must collapse), its insertion
with such a replay, and the helpers that read the service's answers."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent
from shared.events import EventData, new_envelope
from shared.events.ingest import SaleCompleted

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


class EventScenario:
    """A scenario's events, in the order they were added."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.events: list[StoredEvent] = []

    def id(self, name: str) -> str:
        """A scenario-unique id."""
        return f"{name}-{self.uid}"

    def add(self, name: str, data: EventData, when: dt.datetime) -> StoredEvent:
        """Record an event named ``name`` (its event_id derives from the name)."""
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.uid}/{name}")
        envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=when)
        event = StoredEvent(
            envelope=envelope, data=data, topic=data.topic, partition=0, offset=len(self.events)
        )
        self.events.append(event)
        return event

    def insert(
        self, client: Client, *, redelivered: Callable[[StoredEvent], bool] | None = None
    ) -> None:
        """Insert the events as one batch, then those ``redelivered`` picks as a second batch
        (a redelivery, which must count once)."""
        warehouse.insert_events(client, events=self.events)
        if redelivered is not None:
            warehouse.insert_events(client, events=[e for e in self.events if redelivered(e)])


class TradeScenario(EventScenario):
    """An event set whose sales carry trade fields."""

    def sale(self, name: str, campaign: str | None, amount: str, currency: str, when, **kw):  # type: ignore[no-untyped-def]
        """A sale.completed; its channel and trade fields through ``kw``."""
        data = SaleCompleted(
            order_id=self.id(name),
            customer_id=self.id(f"k-{name}"),
            campaign_id=campaign and self.id(campaign),
            amount=Decimal(amount),
            currency=currency,
            **{k: Decimal(v) if k == "discount_amount" else v for k, v in kw.items()},
        )
        self.add(name, data, when)


def on_topics(*topics: str) -> Callable[[StoredEvent], bool]:
    """Picks the events of ``topics``."""
    return lambda event: event.topic in topics


def every_event(_event: StoredEvent) -> bool:
    """Picks every event."""
    return True


def wait_for(client: httpx.Client, path: str, predicate, timeout_s: float = 30.0) -> Any:  # type: ignore[no-untyped-def]
    """Poll ``path`` until its 200 answer satisfies ``predicate``; that answer."""
    deadline = time.monotonic() + timeout_s
    body: Any = None
    while time.monotonic() < deadline:
        response = client.get(path)
        if response.status_code == 200:
            body = response.json()
            if predicate(body):
                return body
        time.sleep(0.2)
    raise AssertionError(f"{path} never satisfied the condition; last: {body}")


def tree_nodes(units: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every unit of a unit tree (children included) by its unit_id."""
    out = {}
    for unit in units:
        out[unit["unit_id"]] = unit
        out.update(tree_nodes(unit["children"]))
    return out
