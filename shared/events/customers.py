"""Customer events the CRM publishes on ``mrm.customers.v1``: a customer's profile, the
dimensions segments are cut by (industry, size, region, age band, free attributes).

``customer.profile_updated`` carries the profile's full state, not a patch: a field left out is
unknown (stored empty), whatever an earlier version said. ``version`` is the customer's own
counter; the highest version wins, whatever order the events arrive in.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared import topics
from shared.events.envelope import EventData, Identifier, Name, Version

CompanySize = Literal["small", "medium", "large", "enterprise"]
"""A customer company's size class; one closed set, so segments by size read the same across
publishers (a free-text size would split "Large" from "large")."""

MAX_ATTRIBUTES = 32
"""The most free attributes one profile carries (each is a column value in every CSV export)."""


AttributeKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""An attribute's name: lower-case letters, digits and ``_``, starting with a letter, ≤ 64."""


class CustomerProfileUpdated(EventData):
    """A customer's profile as the CRM holds it now (full state, by ``version``)."""

    event_type = "customer.profile_updated"
    topic = topics.CUSTOMERS
    key_field = "customer_id"

    customer_id: Identifier
    version: Version = Field(description="The profile's version (1, 2, …); the highest wins.")
    industry: Name | None = Field(default=None, description="The customer's industry.")
    size: CompanySize | None = Field(
        default=None, description="small, medium, large or enterprise."
    )
    region: Name | None = Field(default=None, description="The customer's region.")
    age_band: Name | None = Field(
        default=None, description="The customer's age band as the CRM names it (e.g. 25-34)."
    )
    attributes: dict[AttributeKey, Name] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description=f"Free attributes (at most {MAX_ATTRIBUTES}): name → non-empty value.",
    )


CUSTOMER_EVENTS: tuple[type[EventData], ...] = (CustomerProfileUpdated,)
