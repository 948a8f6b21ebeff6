"""Measurement's sales-target progress route: the unit tree of a period with each node's
target, sales to date, shares, run-rate forecast and at-risk flag (``progress``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.measurement import progress
from services.measurement.api import Fx, Reader, Rule, Store, respond
from services.measurement.domain import ratio
from services.measurement.progress import SalesTarget, Unit
from services.measurement.warehouse import sales_targets
from shared.events.envelope import Name
from shared.periods import period_bounds

router = APIRouter(prefix="/api/v1", tags=["measurement"])


Period = Annotated[
    str,
    Query(
        description="A month (2027-03) or a quarter (2027-Q1).",
        examples=["2027-Q1"],
        max_length=7,
    ),
]
Brand = Annotated[
    Name | None, Query(description="The brand's targets and sales (default: all brands).")
]


class UnitNode(Protocol):
    """A unit of the sales-target tree with its target and sales (progress or forecast)."""

    @property
    def unit(self) -> Unit: ...
    @property
    def target(self) -> SalesTarget | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def sales(self) -> Decimal: ...
    @property
    def unconverted(self) -> dict[str, Decimal]: ...


def unit_fields(node: UnitNode) -> dict[str, Any]:
    """What every answer about a unit's target says first: the unit, its target, the currency,
    the sales so far and those not converted (shared with the sales-target forecast)."""
    unit, target = node.unit, node.target
    return {
        "unit_id": unit.unit_id,
        "name": unit.name,
        "kind": unit.kind,
        "owner": unit.owner,
        "code": unit.code,
        "target_id": target.target_id if target else None,
        "target": target.amount if target else None,
        "currency": node.currency,
        "sales": node.sales,
        "unconverted": node.unconverted,
    }


def _node(node: progress.NodeProgress) -> dict[str, Any]:
    return {
        **unit_fields(node),
        "share": node.share,
        "forecast": node.forecast,
        "forecast_share": node.forecast_share,
        "at_risk": node.at_risk,
        "children": [_node(child) for child in node.children],
    }


@router.get("/sales-targets/progress")
async def sales_target_progress(
    store: Store, fx: Fx, rule: Rule, _: Reader, period: Period, brand: Brand = None
) -> JSONResponse:
    """Every unit's target, attributed sales to date, share achieved and run-rate forecast."""
    start, end = period_bounds(period)
    now = dt.datetime.now(dt.UTC)
    units = await store.run(sales_targets.sales_units)
    targets = await store.run(sales_targets.targets_of_period, period=period)
    groups = await store.run(sales_targets.sale_groups, start=start, end=end)
    tree = progress.progress_tree(
        units=units,
        targets=targets,
        groups=groups,
        brand=brand,
        start=start,
        end=end,
        now=now,
        fx=fx,
        rule=rule,
    )
    elapsed = progress.pace(start=start, end=end, now=now, sales=Decimal(0))
    return respond(
        {
            "period": period,
            "period_start": start,
            "period_end": end,
            "brand": brand,
            "as_of": now,
            "elapsed_share": ratio(elapsed.elapsed_share, 1),
            "at_risk_share": rule.share,
            "min_elapsed_share": rule.min_elapsed,
            "units": [_node(node) for node in tree],
        }
    )
