"""A small synchronous publisher for other internal systems (and the demo): validated events.

from shared.publisher import EventPublisher
from shared.events.ingest import SpendRecorded

with EventPublisher("localhost:9092", source="ads") as events:
    events.publish(SpendRecorded(campaign_id="…", channel="search", amount="120.50",
                                 currency="EUR"))
"""

from __future__ import annotations

import datetime as dt
import uuid
from types import TracebackType

from kafka import KafkaProducer

from shared.events import Envelope, EventData, new_envelope
from shared.kafka_config import PLAINTEXT, KafkaOptions
from shared.tracing import publish_span


class EventPublisher:
    """Publishes envelopes with kafka-python; the topic and key follow from the event type."""

    def __init__(
        self,
        bootstrap: str,
        *,
        source: str,
        kafka: KafkaOptions = PLAINTEXT,
        **producer_options: object,
    ) -> None:
        self.source = source
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            **kafka.security.kafka_python(),
            **producer_options,
        )

    def publish(
        self,
        data: EventData,
        *,
        event_id: uuid.UUID | None = None,
        occurred_at: dt.datetime | None = None,
    ) -> Envelope:
        """Validate-wrap ``data`` in an envelope and send it; returns the envelope sent."""
        envelope = new_envelope(
            data, source=self.source, event_id=event_id, occurred_at=occurred_at
        )
        self.send_envelope(envelope, topic=data.topic, key=data.key())
        return envelope

    def send_envelope(self, envelope: Envelope, *, topic: str, key: str | None) -> None:
        """Send an already-built envelope (e.g. to re-deliver one on purpose), in a producer
        span whose W3C trace context goes in the headers (none while tracing is off)."""
        headers: dict[str, str] = {}
        with publish_span(topic, headers, event_type=envelope.event_type):
            self._producer.send(
                topic,
                value=envelope.to_bytes(),
                key=key.encode() if key is not None else None,
                headers=[(name, value.encode()) for name, value in headers.items()] or None,
            )

    def send_raw(self, topic: str, value: bytes, *, key: str | None = None) -> None:
        """Send bytes as they are (for tools and tests that need malformed input)."""
        self._producer.send(topic, value=value, key=key.encode() if key is not None else None)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every sent message is acknowledged."""
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        """Flush and close the producer."""
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
