"""Request and response models of the rule-based segment routes, with their OpenAPI examples."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.measurement import segments
from shared.events.envelope import MAX_TEXT, Name

SegmentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
"""A rule-based segment's id: lower-case letters, digits, ``_`` and ``-``, at most 64."""

RULE_EXAMPLE: dict[str, Any] = {
    "conditions": [
        {"field": "industry", "op": "eq", "value": "tech"},
        {"field": "size", "op": "in", "value": ["large", "enterprise"]},
        {
            "any": [
                {"field": "region", "op": "eq", "value": "EMEA"},
                {"field": "rfm_segment", "op": "in", "value": ["champions", "loyal"]},
            ]
        },
        {"field": "revenue", "op": "gte", "value": "1000.00"},
    ]
}
RULE_DESCRIPTION = (
    "`conditions`: a list (1-20) that must all hold; an item is a condition "
    "`{field, op, value}` or a group `{any: [condition, …]}` that holds when one of its "
    "conditions does. Fields: profile — industry, size, region, age_band, attributes.<key> "
    "(ops eq, ne, in, not_in; text values, size one of small/medium/large/enterprise); RFM over "
    "the `rfm_days` days of sales — rfm_segment (eq, ne, in, not_in), recency_score, "
    "frequency_score, monetary_score (1-5), recency_days, orders (integers ≥ 0; eq, ne, in, "
    "not_in, gte, lte), revenue (amount in the default currency; eq, ne, gte, lte). in/not_in "
    "take a list. A value the customer does not have holds only for ne and not_in."
)

_DEFINITION_EXAMPLE: dict[str, Any] = {
    "name": "Large tech customers",
    "description": "Tech companies of size large or enterprise",
    "rule": {
        "conditions": [
            {"field": "industry", "op": "eq", "value": "tech"},
            {"field": "size", "op": "in", "value": ["large", "enterprise"]},
        ]
    },
    "rfm_days": 365,
}


class SegmentCreate(BaseModel):
    """A new rule-based segment."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"segment_id": "large-tech", **_DEFINITION_EXAMPLE}]},
    )

    segment_id: SegmentId | None = Field(
        default=None,
        description="The segment's id (default: generated, `seg-…`; `rfm` and `effectiveness` "
        "are reserved).",
    )
    name: Name
    description: str = Field(default="", max_length=MAX_TEXT)
    rule: dict[str, Any] = Field(
        description=RULE_DESCRIPTION, json_schema_extra={"examples": [RULE_EXAMPLE]}
    )
    rfm_days: int = Field(
        default=365,
        ge=1,
        le=segments.MAX_DAYS,
        description="Days of sales, ending with the as-of day, the RFM fields are computed over.",
    )


class SegmentReplace(BaseModel):
    """A segment's new definition, replacing the one of ``version``."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{**_DEFINITION_EXAMPLE, "version": 1}]}
    )

    version: int = Field(
        ge=1, description="The version the change is based on; another current version → 409."
    )
    name: Name
    description: str = Field(default="", max_length=MAX_TEXT)
    rule: dict[str, Any] = Field(
        description=RULE_DESCRIPTION, json_schema_extra={"examples": [RULE_EXAMPLE]}
    )
    rfm_days: int = Field(default=365, ge=1, le=segments.MAX_DAYS)


_DEFINITION_OUT: dict[str, Any] = {
    "segment_id": "large-tech",
    "kind": "rule",
    "version": 1,
    **_DEFINITION_EXAMPLE,
    "author": "max",
    "written_at": "2027-03-01T10:15:00.123456Z",
}


class SegmentOut(BaseModel):
    """A segment's current definition."""

    model_config = ConfigDict(json_schema_extra={"examples": [_DEFINITION_OUT]})

    segment_id: str
    kind: str = Field(description="rule, or rfm for a built-in `rfm:<segment>`.")
    version: int = Field(description="1, 2, … per write; 0 for a built-in RFM segment.")
    name: str
    description: str
    rule: dict[str, Any]
    rfm_days: int
    author: str | None = Field(description="Who wrote this version (null: built in).")
    written_at: dt.datetime | None


class SegmentList(BaseModel):
    """Every rule-based segment, and the ids of the built-in RFM segments."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segments": [_DEFINITION_OUT],
                    "rfm_segments": [f"rfm:{s}" for s in segments.rfm.SEGMENTS],
                }
            ]
        }
    )

    segments: list[SegmentOut]
    rfm_segments: list[str] = Field(description="Usable wherever a segment id is.")


class SegmentMember(BaseModel):
    """A member with the profile and RFM facts the rule was evaluated on (null: unknown)."""

    customer_id: str
    profile_version: int | None
    industry: str | None = None
    size: str | None = None
    region: str | None = None
    age_band: str | None = None
    attributes: dict[str, str]
    rfm_segment: str | None = None
    recency_score: int | None = None
    frequency_score: int | None = None
    monetary_score: int | None = None
    recency_days: int | None = None
    last_purchase: dt.date | None = Field(default=None, description="UTC day of the last sale.")
    orders: int | None = None
    revenue: Decimal | None = Field(default=None, description="In `currency`, RFM window.")


class SegmentMembers(BaseModel):
    """A segment's members as of a day."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": "large-tech",
                    "name": "Large tech customers",
                    "version": 1,
                    "as_of": "2027-03-31",
                    "rfm_days": 365,
                    "currency": "USD",
                    "size": 1,
                    "members": [
                        {
                            "customer_id": "cust-1001",
                            "profile_version": 3,
                            "industry": "tech",
                            "size": "large",
                            "region": "EMEA",
                            "age_band": None,
                            "attributes": {"tier": "gold"},
                            "rfm_segment": "champions",
                            "recency_score": 5,
                            "frequency_score": 5,
                            "monetary_score": 4,
                            "recency_days": 2,
                            "last_purchase": "2027-03-29",
                            "orders": 7,
                            "revenue": "4200.00",
                        }
                    ],
                }
            ]
        }
    )

    segment_id: str
    name: str
    version: int
    as_of: dt.date = Field(description="Profiles published and sales made up to this day's end.")
    rfm_days: int
    currency: str = Field(description="The currency of `revenue` (the default currency).")
    size: int
    members: list[SegmentMember]


class SizePoint(BaseModel):
    """A segment's size as of a bucket's last day."""

    start: dt.date = Field(description="The bucket's first day.")
    as_of: dt.date = Field(description="The day membership was evaluated as of.")
    size: int


class SegmentSizes(BaseModel):
    """A segment's size over time."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": "large-tech",
                    "bucket": "month",
                    "from": "2027-01-01",
                    "to": "2027-03-15",
                    "points": [
                        {"start": "2027-01-01", "as_of": "2027-01-31", "size": 12},
                        {"start": "2027-02-01", "as_of": "2027-02-28", "size": 15},
                        {"start": "2027-03-01", "as_of": "2027-03-15", "size": 14},
                    ],
                }
            ]
        }
    )

    segment_id: str
    bucket: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    points: list[SizePoint]
