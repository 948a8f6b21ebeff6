"""Customer segments as the other services name them. A campaign's target segment is an RFM
segment, ``rfm:<name>``, or a rule-based segment's id; measurement computes both, and the RFM
names are a fixed set that planning checks a campaign against."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from shared.events.envelope import Identifier

RFM_PREFIX = "rfm:"
RFM_SEGMENTS: tuple[str, ...] = (
    "champions",
    "loyal",
    "new",
    "promising",
    "at_risk",
    "hibernating",
    "need_attention",
)
"""The RFM segments measurement assigns customers to (``services.measurement.rfm``)."""


def check_target_segment(value: str) -> str:
    """``value`` if it is an RFM segment that exists or a rule-based segment's id."""
    if value.startswith(RFM_PREFIX) and value[len(RFM_PREFIX) :] not in RFM_SEGMENTS:
        known = ", ".join(RFM_PREFIX + name for name in RFM_SEGMENTS)
        raise ValueError(f"unknown RFM segment {value!r}: one of {known}")
    return value


TargetSegment = Annotated[Identifier, AfterValidator(check_target_segment)]
"""A campaign's target segment: ``rfm:<one of RFM_SEGMENTS>`` or a rule-based segment's id."""
