"""The demo's past: last year's campaigns, so the campaign model has peers to learn from when
the demo's plan is approved (``campaign.modelled``) and ``GET /api/v1/models/backtest`` has
something to replay.

Each sample campaign ran three times last year, at half, once and twice its budget, for 30
days each; a bigger budget buys clicks at a worse rate (click-through falls with the spend's
0.4th power), so results grow less than the money — the saturation the model's curves fit. The
half-budget runs targeted no segment, the others the sample's segment, so segment
effectiveness has past campaigns on both sides and the model's peers show who shared the
segment. The campaigns are created through the planning API in a plan of last year (as the CMO
would have), and their events published with last year's dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

FACTORS = (Decimal("0.5"), Decimal(1), Decimal(2))
DAYS = 30
GAP_DAYS = 10


class SpecLike(Protocol):
    """What the history needs of a sample campaign (``demo.CampaignSpec``)."""

    name: str
    channel: str
    brand: str
    budget: Decimal
    daily_spend: Decimal
    ctr: float
    segment: str | None


def scaled(spec: Any, factor: Decimal) -> Any:
    """The sample campaign run at ``factor`` times its budget: the daily spend scales with it,
    the click-through rate falls with its 0.4th power; below its budget it targeted no
    segment."""
    return replace(
        spec,
        name=f"{spec.name} ({factor:g}x, last year)",
        segment=spec.segment if factor >= 1 else None,
        budget=(spec.budget * factor).quantize(Decimal("0.01")),
        daily_spend=(spec.daily_spend * factor).quantize(Decimal("0.01")),
        ctr=spec.ctr * float(factor) ** -0.4,
    )


def schedule(today: dt.date, count: int) -> list[dt.date]:
    """Start dates of ``count`` past runs, one after the other, the last over a month before
    ``today`` (so the demo's plan, starting 20 days ago, learns from all of them)."""
    first = today - dt.timedelta(days=40 + count * (DAYS + GAP_DAYS))
    return [first + dt.timedelta(days=i * (DAYS + GAP_DAYS)) for i in range(count)]


def create_past_plan(
    post: Callable[[str, str, object], dict[str, Any]],
    samples: Sequence[Any],
    *,
    today: dt.date,
) -> tuple[str, list[tuple[str, Any, dt.date]]]:
    """Last year's plan and campaigns through the planning API: (plan id, [(campaign id, the
    scaled spec, start date)])."""
    runs = [(scaled(spec, factor), factor) for factor in FACTORS for spec in samples]
    starts = schedule(today, len(runs))
    plan = post(
        "planning",
        "/api/v1/plans",
        {
            "name": f"Marketing plan {today.year - 1}",
            "period_start": str(starts[0]),
            "period_end": str(starts[-1] + dt.timedelta(days=DAYS)),
            "owner": "cmo",
        },
    )
    created = []
    for (spec, _), start in zip(runs, starts, strict=True):
        campaign = post(
            "planning",
            f"/api/v1/plans/{plan['plan_id']}/campaigns",
            {
                "name": spec.name,
                "channel": spec.channel,
                "brand": spec.brand,
                "owner": "manager",
                "budget": str(spec.budget),
                "start_date": str(start),
                "end_date": str(start + dt.timedelta(days=DAYS - 1)),
                "gross_margin": "0.6",
                "target_segment": spec.segment,
            },
        )
        created.append((campaign["campaign_id"], spec, start))
    post("planning", f"/api/v1/plans/{plan['plan_id']}/approve", None)
    return plan["plan_id"], created
