"""What the warehouse scenario tests share: an event set built by name, whose event ids derive
from the names (so inserting it again is a replay the tables must collapse)."""

from __future__ import annotations

import datetime as dt
import uuid

from services.measurement.warehouse import StoredEvent
from shared.events import EventData, new_envelope


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
