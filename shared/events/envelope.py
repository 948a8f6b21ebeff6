"""The envelope every message carries, the base of all event payloads, and shared field types."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)


def _to_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An RFC 3339 timestamp with an offset, normalised to UTC (naive values are rejected)."""

Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
"""A non-negative amount with at most two decimals, given as a decimal string or a number."""

SignedMoney = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 code such as ``EUR``."""

Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Channel = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]


class EventRejected(ValueError):
    """A message that cannot be accepted; ``reason`` names the offending field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventData(BaseModel):
    """Base of every event payload: frozen, unknown fields forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[str]
    key_field: ClassVar[str | None] = None

    def key(self) -> str | None:
        """The Kafka message key of this event (SPEC §3 names it per topic)."""
        if self.key_field is None:
            return None
        value = getattr(self, self.key_field)
        return None if value is None else str(value)


class Envelope(BaseModel):
    """The UTF-8 JSON envelope around every message on every topic (SPEC §3)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    occurred_at: UtcDatetime
    source: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    schema_version: Annotated[int, Field(ge=1)] = 1
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        """Serialise to the wire format (UTF-8 JSON)."""
        return self.model_dump_json().encode()


def new_envelope(
    data: EventData,
    *,
    source: str,
    event_id: uuid.UUID | None = None,
    occurred_at: dt.datetime | None = None,
) -> Envelope:
    """Wrap a payload in a fresh envelope (new event_id, now in UTC unless given)."""
    return Envelope(
        event_id=event_id or uuid.uuid4(),
        event_type=data.event_type,
        occurred_at=occurred_at or dt.datetime.now(dt.UTC),
        source=source,
        data=data.model_dump(mode="json"),
    )
