"""The envelope every message carries, the base of all event payloads, and shared field types."""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

# What every store holds (SPEC §3: values are bounded to what every store holds). ClickHouse's
# ``Date`` spans 1970-01-01 … 2149-06-06 and its ``DateTime64`` 1900 … 2299; timestamps get the
# narrower range too, so that ``toDate(occurred_at)`` (day and week series) is always a valid
# ``Date``. REST bodies use the same types, so the HTTP APIs and Kafka reject the same things.
EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(2149, 6, 6)
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1})
MAX_COUNT = 10**12
"""The largest count one event may report (impressions, clicks): sums over a billion such
events still fit ClickHouse's UInt64 and SQL's BIGINT."""
MAX_VERSION = 2**31 - 1
"""Versions and attempt counters fit a 32-bit integer column in every store."""
MAX_IDENTIFIER = 128
MAX_NAME = 200
MAX_SHORT_TEXT = 100
MAX_TEXT = 2000
MAX_LONG_TEXT = 100_000


DECIMAL_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
"""How a number given as a string looks (the JSON Schema pattern of a decimal's string form)."""
_NUMERIC_TEXT = re.compile(DECIMAL_TEXT)


def _not_a_number(value: Any) -> Any:
    # pydantic reads a bare number as Unix time; a publisher sending one almost certainly means
    # something else (SPEC §3 wants RFC 3339), so a number is rejected rather than read as 1970;
    # so is a number given as text, as every value of a query string is ("?to=0.5")
    if isinstance(value, int | float | Decimal) or (
        isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value)
    ):
        raise ValueError("must be an RFC 3339 date or timestamp string, not a number")
    return value


def _not_a_bool(value: Any) -> Any:
    # JSON true/false is no count: pydantic would read it as 1/0
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


def _to_utc(value: dt.datetime) -> dt.datetime:
    value = value.astimezone(dt.UTC)
    if not EARLIEST_DATE <= value.date() <= LATEST_DATE:
        raise ValueError(f"must be between {EARLIEST_DATE} and {LATEST_DATE} (UTC)")
    return value


def _date_in_range(value: dt.date) -> dt.date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(f"must be between {EARLIEST_DATE} and {LATEST_DATE}")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL rejects NUL in text; ClickHouse and SQLite would store it and make it a trap
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


@functools.cache
def iso_currencies() -> frozenset[str]:
    """The ISO 4217 currency codes (from pycountry's copy of the standard)."""
    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


def _iso_currency(code: str) -> str:
    if code not in iso_currencies():
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


def _supported_version(version: int) -> int:
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(map(str, sorted(SUPPORTED_SCHEMA_VERSIONS)))
        raise ValueError(f"schema version {version} is not supported (supported: {supported})")
    return version


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_to_utc)]
"""An RFC 3339 timestamp with an offset, normalised to UTC (naive values and numbers are
rejected), within the stores' range."""

Date = Annotated[dt.date, BeforeValidator(_not_a_number), AfterValidator(_date_in_range)]
"""A calendar date (``YYYY-MM-DD``) within the stores' range."""


def _decimal_text_schema(schema: dict[str, Any]) -> None:
    # the JSON Schema of a Decimal is "a number or any string": say which strings, so that API
    # clients (and property-based tests generating from the OpenAPI) know the form
    for branch in schema.get("anyOf", ()):
        if branch.get("type") == "string":
            branch["pattern"] = DECIMAL_TEXT


_DECIMAL = Field(json_schema_extra=_decimal_text_schema)

Money = Annotated[
    Decimal, Field(ge=0, max_digits=18, decimal_places=2, allow_inf_nan=False), _DECIMAL
]
"""A non-negative amount with at most two decimals, given as a decimal string or a number."""

SignedMoney = Annotated[
    Decimal, Field(max_digits=18, decimal_places=2, allow_inf_nan=False), _DECIMAL
]

Measure = Annotated[Decimal, Field(max_digits=28, decimal_places=10, allow_inf_nan=False), _DECIMAL]
"""A KPI value or target: finite, at most 18 integer digits and 10 decimals."""

Share = Annotated[Decimal, Field(ge=0, le=1, max_digits=7, decimal_places=6), _DECIMAL]
"""A fraction between 0 and 1 with at most six decimals (gross margin, tolerance)."""

Weight = Annotated[
    Decimal, Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False), _DECIMAL
]
"""A positive weight with at most six decimals."""

Count = Annotated[int, BeforeValidator(_not_a_bool), Field(ge=0, le=MAX_COUNT)]
"""A non-negative count one event reports (booleans and fractions are not counts)."""

Version = Annotated[int, BeforeValidator(_not_a_bool), Field(ge=1, le=MAX_VERSION)]
"""A state version or attempt number (1, 2, …)."""

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_iso_currency)]
"""An ISO 4217 code such as ``EUR``."""

Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_IDENTIFIER),
    AfterValidator(_no_nul),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME),
    AfterValidator(_no_nul),
]
Channel = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64),
    AfterValidator(_no_nul),
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(_no_nul)]
"""Free text (a comment, a reason)."""
LongText = Annotated[str, StringConstraints(max_length=MAX_LONG_TEXT), AfterValidator(_no_nul)]
"""A longer free text (a notification's body)."""
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SHORT_TEXT), AfterValidator(_no_nul)
]
"""A short label (an event's source, a reason code)."""
Month = Annotated[str, StringConstraints(pattern=r"^(19[7-9]\d|20\d\d|21[0-4]\d)-(0[1-9]|1[0-2])$")]
"""A calendar month as ``YYYY-MM`` (within the range of ``Date``)."""


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
    event_type: ShortText
    occurred_at: UtcDatetime
    source: ShortText
    schema_version: Annotated[
        int, BeforeValidator(_not_a_bool), AfterValidator(_supported_version)
    ] = 1
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
