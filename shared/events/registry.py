"""Every event type by name, and ``decode``: raw Kafka bytes → validated envelope and payload.

``decode`` is the single gate for incoming messages: whatever it rejects goes to the DLQ with
the reason it gives, which always names the offending field.
"""

from __future__ import annotations

import json
from typing import TypeAlias

from pydantic import ValidationError

from shared.events.customers import CUSTOMER_EVENTS
from shared.events.discounts import DISCOUNT_EVENTS
from shared.events.envelope import Envelope, EventData, EventRejected
from shared.events.execution import EXECUTION_EVENTS
from shared.events.ingest import INGEST_EVENTS
from shared.events.kpi import KPI_EVENTS
from shared.events.notifications import NOTIFICATION_EVENTS
from shared.events.planning import PLANNING_EVENTS

EventType: TypeAlias = type[EventData]

EVENT_TYPES: dict[str, EventType] = {
    model.event_type: model
    for model in (
        *INGEST_EVENTS,
        *CUSTOMER_EVENTS,
        *PLANNING_EVENTS,
        *EXECUTION_EVENTS,
        *KPI_EVENTS,
        *DISCOUNT_EVENTS,
        *NOTIFICATION_EVENTS,
    )
}


def event_type_of(name: str) -> EventType:
    """The payload model of an event type name; ``KeyError`` if unknown."""
    return EVENT_TYPES[name]


def topic_of(name: str) -> str:
    """The topic an event type is published on."""
    return EVENT_TYPES[name].topic


def describe_errors(error: ValidationError, prefix: str = "") -> str:
    """A readable, field-naming summary of a pydantic validation error."""
    parts = []
    for item in error.errors():
        loc = ".".join(str(part) for part in (*((prefix,) if prefix else ()), *item["loc"]))
        parts.append(f"{loc or prefix or 'body'}: {item['msg']}")
    return "; ".join(parts)


def decode(raw: bytes | str | None, *, topic: str | None = None) -> tuple[Envelope, EventData]:
    """Parse and validate one message; raise ``EventRejected`` with a field-naming reason.

    Whatever the bytes are (a tombstone, deep nesting, a number of thousands of digits), the
    outcome is a value or ``EventRejected``, never another exception: a message that breaks the
    gate itself would otherwise be retried for ever as if the failure were transient."""
    if raw is None:
        raise EventRejected("body: the message has no value (a tombstone); expected an envelope")
    try:
        document = json.loads(raw)
    except RecursionError:
        raise EventRejected("body: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, over-long integers
        raise EventRejected(f"body: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(document, dict):
        raise EventRejected("body: the envelope must be a JSON object")
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as exc:
        raise EventRejected(describe_errors(exc)) from None
    model = EVENT_TYPES.get(envelope.event_type)
    if model is None or (topic is not None and model.topic != topic):
        where = f" on topic {topic}" if topic else ""
        raise EventRejected(f"event_type: unknown event type {envelope.event_type!r}{where}")
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise EventRejected(describe_errors(exc, prefix="data")) from None
    return envelope, data
