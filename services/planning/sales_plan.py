"""Sales plans built from promotion plans, free of I/O: each unit of the sales-target tree gets
a **baseline** (its attributed sales in the same period one year earlier), a **planned uplift**
(what the campaigns planned against it or a unit beneath it promise in the period) and their
sum, the **sales plan**.

- Baseline: the attribution rule of ``shared.sales_attribution`` over the sales planning keeps
  from ``mrm.sales.v1``, of the tree's brand only if it has one; ``None`` when planning holds no
  sale at all in that period (no data, as opposed to a unit that sold nothing: 0.00).
- Planned uplift: a campaign's uplift is phased over its days like its committed budget
  (``budget.phase_by_days``: in proportion to its days in each month, to the cent, left-over
  cents to its first months); the months of the period are added. Cancelled and rejected
  campaigns count nothing; with a brand, only that brand's campaigns count.
- Every figure is in the node's currency (its target's, else the platform's), converted with
  the configured rates and rounded to the cent; amounts in a currency without a rate are kept
  apart (``unconverted``), not added.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.planning.sales import TargetFacts, UnitFacts
from shared.budget import RELEASED, ZERO, phase_by_days
from shared.money import FxRates, cents, in_currency
from shared.sales_attribution import SaleGroup, of_brand, roll_up, with_ancestors


@dataclass(frozen=True)
class Uplift:
    """The sales uplift a campaign plans against a unit, in the campaign's currency."""

    campaign_id: str
    unit_id: str
    amount: Decimal
    currency: str
    start_date: dt.date
    end_date: dt.date
    status: str
    brand: str | None = None


@dataclass(frozen=True)
class SalesPlan:
    """A unit's baseline (None: no data), planned uplift and what could not be converted."""

    currency: str
    baseline: Decimal | None
    planned_uplift: Decimal
    unconverted: dict[str, Decimal]

    @property
    def sales_plan(self) -> Decimal | None:
        """Baseline + planned uplift (None without a baseline)."""
        return None if self.baseline is None else self.baseline + self.planned_uplift


def year_before(months: Sequence[str]) -> list[str]:
    """The same ``YYYY-MM`` months one year earlier."""
    return [f"{int(month[:4]) - 1:04d}{month[4:]}" for month in months]


def uplift_in(uplift: Uplift, months: Sequence[str]) -> Decimal:
    """The part of a campaign's uplift that falls in ``months``, phased by its days."""
    phased = phase_by_days(uplift.amount, uplift.start_date, uplift.end_date)
    return sum((phased.get(month, ZERO) for month in months), ZERO)


def sales_plans(
    *,
    units: Iterable[UnitFacts],
    targets: Iterable[TargetFacts],
    last_year: Sequence[SaleGroup],
    uplifts: Iterable[Uplift],
    months: Sequence[str],
    brand: str,
    fx: FxRates,
) -> dict[str, SalesPlan]:
    """unit_id → its sales plan for the period of ``months`` and ``brand`` ('' = all brands);
    ``last_year`` holds the sales of the same months one year earlier."""
    units = list(units)
    currency_of = {target.unit_id: target.currency for target in targets}
    baseline_of = roll_up(units, of_brand(last_year, brand))
    parent = {unit.unit_id: unit.parent_id for unit in units}
    uplift_of: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for uplift in uplifts:
        if uplift.status in RELEASED or (brand and uplift.brand != brand):
            continue
        part = uplift_in(uplift, months)
        for unit_id in with_ancestors(uplift.unit_id, parent) if part else ():
            uplift_of[unit_id][uplift.currency] += part
    plans: dict[str, SalesPlan] = {}
    for unit in units:
        currency = currency_of.get(unit.unit_id, fx.base)
        sold, unsold = in_currency(baseline_of.get(unit.unit_id, {}), currency=currency, fx=fx)
        planned, unplanned = in_currency(uplift_of.get(unit.unit_id, {}), currency=currency, fx=fx)
        plans[unit.unit_id] = SalesPlan(
            currency=currency,
            baseline=cents(sold) if last_year else None,
            planned_uplift=cents(planned),
            unconverted=_added(unsold, unplanned),
        )
    return plans


def _added(*amounts: Mapping[str, Decimal]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = defaultdict(Decimal)
    for by_currency in amounts:
        for currency, amount in by_currency.items():
            total[currency] += amount
    return dict(sorted(total.items()))
