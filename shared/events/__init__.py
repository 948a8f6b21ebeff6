"""The event contract: the envelope and every event type of SPEC §3, one module per topic family.

Producers, consumers and the dead-letter queue all use these models, so a field's name and its
rules live in exactly one place.
"""

from shared.events.envelope import Envelope, EventData, EventRejected, new_envelope
from shared.events.registry import EVENT_TYPES, EventType, decode, event_type_of, topic_of

__all__ = [
    "EVENT_TYPES",
    "Envelope",
    "EventData",
    "EventRejected",
    "EventType",
    "decode",
    "event_type_of",
    "new_envelope",
    "topic_of",
]
