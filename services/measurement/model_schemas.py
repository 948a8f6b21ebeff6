"""Request and response models of measurement's campaign-model routes (``model_api``): a
campaign to model and its P10/P50/P90 answer with the peers it learned from, a plan scenario
and its split, and the backtest's accuracy per figure."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Channel, Currency, Date, Identifier, Money, Name

MinPeers = Annotated[int, Field(ge=1, le=50)]


class ModelRequest(BaseModel):
    """A campaign to model: its channel, brand, partner and target segment (optional), budget
    and dates (unknown fields are refused)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel": "search",
                    "brand": "Acme",
                    "budget": "20000.00",
                    "start_date": "2027-04-01",
                    "end_date": "2027-05-31",
                },
                {
                    "channel": "events",
                    "brand": "Acme Pro",
                    "partner": "PartnerNet",
                    "segment": "rfm:champions",
                    "budget": "12000.00",
                    "start_date": "2027-04-01",
                    "end_date": "2027-04-30",
                    "currency": "EUR",
                    "min_peers": 5,
                },
            ]
        },
    )

    channel: Channel
    brand: Name | None = None
    partner: Name | None = Field(
        default=None, description="Peers of the same partner (budget line) weigh more."
    )
    segment: Identifier | None = Field(
        default=None,
        description="The customer segment the campaign targets (`rfm:<name>` or a rule-based "
        "segment's id): peers that targeted the same segment weigh more.",
    )
    budget: Annotated[Money, Field(gt=0)]
    start_date: Date
    end_date: Date
    currency: Currency | None = Field(
        default=None, description="Currency of the budget and the answer (default MRM_CURRENCY)."
    )
    min_peers: MinPeers = Field(
        default=3, description="Fewer peers of channel and brand than this widen the match."
    )


class BandOut(BaseModel):
    """A modelled figure: 10th, 50th and 90th percentile."""

    p10: Decimal | None
    p50: Decimal | None
    p90: Decimal | None


class PeerOut(BaseModel):
    """A past campaign the model learned from, and how similar it is (1 = same channel and
    brand)."""

    campaign_id: str
    name: str | None
    channel: str | None
    brand: str | None
    partner: str | None
    segment: str | None = Field(description="The customer segment it targeted (null = none).")
    matches: list[str] = Field(
        description="What it shares with the modelled campaign, of channel, brand, partner and "
        "segment: `segment` when it targeted the same segment (which adds 0.1 to its "
        "similarity, as the same partner does; capped at 1)."
    )
    similarity: Decimal
    spend: Decimal
    leads: Decimal | None
    revenue: Decimal | None


class CurveOut(BaseModel):
    """A fitted response curve ``a · ln(1 + spend / b)``."""

    a: float
    b: float
    method: str


class ModelOut(BaseModel):
    """What the campaign is expected to give: each figure's P10/P50/P90 (volumes: impressions,
    clicks, leads, mql, sql, customers, revenue, gross_profit; and cpl, cac, romi), the peers
    and curves it rests on, and ``match``: ``channel_brand``, ``channel`` or ``all``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2027-04-01T00:00:00Z",
                    "currency": "EUR",
                    "budget": "20000.00",
                    "match": "channel_brand",
                    "notes": [],
                    "figures": {
                        "leads": {"p10": "760", "p50": "810", "p90": "905"},
                        "cpl": {"p10": "22.10", "p50": "24.69", "p90": "26.32"},
                    },
                    "peers": [
                        {
                            "campaign_id": "c-2026-07",
                            "name": "Summer search",
                            "channel": "search",
                            "brand": "Acme",
                            "partner": None,
                            "segment": "rfm:champions",
                            "matches": ["channel", "brand", "segment"],
                            "similarity": "1",
                            "spend": "18000.00",
                            "leads": "760",
                            "revenue": "91000.00",
                        }
                    ],
                    "curves": {"leads": {"a": 500.2, "b": 10120.5, "method": "curve_fit"}},
                    "actual": None,
                }
            ]
        }
    )

    as_of: dt.datetime
    currency: str
    budget: Decimal
    match: str
    notes: list[str]
    figures: dict[str, BandOut]
    peers: list[PeerOut]
    curves: dict[str, CurveOut]
    actual: dict[str, Any] | None = Field(
        default=None, description="A known campaign's KPIs so far, next to the model."
    )


class ScenarioCandidate(BaseModel):
    """Where the money may go: a channel (and brand, partner, target segment), with optional
    bounds."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="How the answer names this candidate (unique).")
    channel: Channel
    brand: Name | None = None
    partner: Name | None = None
    segment: Identifier | None = None
    min_amount: Money = Decimal(0)
    max_amount: Money | None = None


class ScenarioRequest(BaseModel):
    """A total budget to split over candidate channels or lines for the most expected gross
    profit."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "total_budget": "60000.00",
                    "start_date": "2027-04-01",
                    "end_date": "2027-06-30",
                    "candidates": [
                        {"name": "Search", "channel": "search", "brand": "Acme"},
                        {"name": "Social", "channel": "social", "max_amount": "20000.00"},
                        {
                            "name": "Partner events",
                            "channel": "events",
                            "partner": "PartnerNet",
                            "min_amount": "5000.00",
                        },
                    ],
                }
            ]
        },
    )

    total_budget: Annotated[Money, Field(gt=0)]
    start_date: Date
    end_date: Date
    currency: Currency | None = None
    candidates: Annotated[list[ScenarioCandidate], Field(min_length=1, max_length=50)]
    min_peers: MinPeers = 3


class ScenarioLine(BaseModel):
    """A candidate's share of the budget and what it is expected to give there (P50)."""

    name: str
    amount: Decimal
    match: str
    notes: list[str]
    leads: Decimal | None
    customers: Decimal | None
    revenue: Decimal | None
    gross_profit: Decimal | None
    romi: Decimal | None
    marginal_return: float | None = Field(
        description="Expected gross profit of the next unit of money at this amount."
    )


class ScenarioOut(BaseModel):
    """The split at equal marginal returns and the expected totals (sums of P50s)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2027-04-01T00:00:00Z",
                    "currency": "USD",
                    "total_budget": "60000.00",
                    "lines": [
                        {
                            "name": "Search",
                            "amount": "31245.18",
                            "match": "channel_brand",
                            "notes": [],
                            "leads": "912.4",
                            "customers": "41.3",
                            "revenue": "98310.55",
                            "gross_profit": "49155.28",
                            "romi": "0.573201",
                            "marginal_return": 0.6214,
                        },
                        {
                            "name": "Social",
                            "amount": "20000.00",
                            "match": "channel",
                            "notes": [
                                "fewer than 3 campaigns of channel 'social' have spent: "
                                "learned from the channel campaigns"
                            ],
                            "leads": "655.0",
                            "customers": "22.8",
                            "revenue": "51980.00",
                            "gross_profit": "25990.00",
                            "romi": "0.299500",
                            "marginal_return": 0.7031,
                        },
                        {
                            "name": "Partner events",
                            "amount": "8754.82",
                            "match": "channel",
                            "notes": [
                                "fewer than 3 campaigns of channel 'events' have spent: "
                                "learned from the channel campaigns"
                            ],
                            "leads": "140.2",
                            "customers": "9.1",
                            "revenue": "26120.40",
                            "gross_profit": "13060.20",
                            "romi": "0.491764",
                            "marginal_return": 0.6214,
                        },
                    ],
                    "totals": {
                        "leads": "1707.6",
                        "customers": "73.2",
                        "revenue": "176410.95",
                        "gross_profit": "88205.48",
                    },
                }
            ]
        }
    )

    as_of: dt.datetime
    currency: str
    total_budget: Decimal
    lines: list[ScenarioLine]
    totals: dict[str, Decimal | None]


class AccuracyOut(BaseModel):
    """How the model did on one figure: over ``n`` campaigns, the mean absolute percentage
    error of P50 (``mape``, 0.12 = 12 %) and the share of actuals within P10–P90."""

    n: int
    mape: Decimal | None
    within_p10_p90: Decimal | None


class BacktestOut(BaseModel):
    """The model replayed on the campaigns that are over: each modelled at its actual spend
    from the campaigns over before it started, and compared with what it gave."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2027-06-30T12:00:00Z",
                    "currency": "EUR",
                    "campaigns": 48,
                    "modelled": 41,
                    "notes": [],
                    "figures": {"leads": {"n": 41, "mape": "0.1840", "within_p10_p90": "0.7561"}},
                }
            ]
        }
    )

    as_of: dt.datetime
    currency: str
    campaigns: int
    modelled: int
    notes: list[str]
    figures: dict[str, AccuracyOut]
