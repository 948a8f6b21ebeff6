"""What the warehouse scenario tests share: an event set built by name, whose event ids derive
from the names (so inserting it again is a replay the tables must collapse), and its insertion
with such a replay."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent
from shared.events import EventData, new_envelope

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


def on_topics(*topics: str) -> Callable[[StoredEvent], bool]:
    """Picks the events of ``topics``."""
    return lambda event: event.topic in topics


def every_event(_event: StoredEvent) -> bool:
    """Picks every event."""
    return True
