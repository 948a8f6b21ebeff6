"""RFM segments as the API answers them — pure, no I/O: per-currency sales aggregates converted
to the reporting currency, scored (``rfm``), summed into segment sizes, joined with the
customers' profiles, and written as CSV for the CRM.

A customer with a sale in a currency that has no rate to the reporting currency has no
comparable monetary value: it is left out of the scoring (every score is relative to the
others) and counted in ``unconverted_customers``; ``missing_rates`` names the currencies.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.measurement import rfm
from services.measurement.conversion import Conversion, conversion
from services.measurement.report import csv_cell
from services.measurement.warehouse.customers import CustomerCurrencySales, Profile
from shared.money import FxRates, cents

MAX_DAYS = 3660
"""The longest window of sales a segmentation looks back over (about ten years)."""


@dataclass(frozen=True)
class Window:
    """The sales a segmentation reads: the ``days`` UTC days ending with ``as_of`` (inclusive)."""

    as_of: dt.date
    days: int

    @property
    def start(self) -> dt.datetime:
        """The window's first instant."""
        first = self.as_of - dt.timedelta(days=self.days - 1)
        return dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """The instant after the window (midnight after ``as_of``)."""
        return dt.datetime.combine(self.as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


@dataclass(frozen=True)
class Segmentation:
    """The scored customers of a window and how their amounts were converted."""

    window: Window
    customers: list[rfm.CustomerRfm]
    unconverted: list[str]
    """The customers left unscored: a sale in a currency without a rate."""
    conversion: Conversion

    def header(self) -> dict[str, Any]:
        """The fields every answer starts with."""
        return {
            "as_of": self.window.as_of,
            "days": self.window.days,
            "window_start": self.window.start.date(),
            **self.conversion.summary(),
            "customers": len(self.customers),
            "unconverted_customers": len(self.unconverted),
        }


def segment(
    rows: Iterable[CustomerCurrencySales], *, window: Window, currency: str, fx: FxRates
) -> Segmentation:
    """Convert each customer's sales to ``currency`` and score them."""
    by_customer: dict[str, list[CustomerCurrencySales]] = defaultdict(list)
    for row in rows:
        by_customer[row.customer_id].append(row)
    to = conversion(
        currencies={r.currency for rs in by_customer.values() for r in rs if r.revenue},
        target=currency,
        fx=fx,
    )
    sales, unconverted = [], []
    for customer_id, parts in sorted(by_customer.items()):
        converted = customer_sales(customer_id, parts, to=to)
        if converted is None:
            unconverted.append(customer_id)
        else:
            sales.append(converted)
    scored = rfm.score(sales, as_of=window.as_of)
    return Segmentation(window=window, customers=scored, unconverted=unconverted, conversion=to)


def customer_sales(
    customer_id: str, parts: Sequence[CustomerCurrencySales], *, to: Conversion
) -> rfm.CustomerSales | None:
    """One customer's sales (one part per currency) in ``to``'s currency; ``None`` when a part
    has no rate."""
    converted = [to.convert(p.revenue, source=p.currency) for p in parts]
    if any(amount is None for amount in converted):
        return None
    return rfm.CustomerSales(
        customer_id=customer_id,
        last_sale_at=max(p.last_sale_at for p in parts),
        orders=sum(p.orders for p in parts),
        revenue=cents(sum((a for a in converted if a is not None), Decimal(0))),
    )


def overview(segmentation: Segmentation) -> dict[str, Any]:
    """Segment sizes and the distribution of each score."""
    return {**segmentation.header(), **rfm.summary(segmentation.customers)}


def _profile_fields(profile: Profile | None) -> dict[str, Any]:
    if profile is None:
        return {"profile": None}
    return {
        "profile": {
            "version": profile.version,
            "industry": profile.industry,
            "size": profile.size,
            "region": profile.region,
            "age_band": profile.age_band,
            "attributes": dict(sorted(profile.attributes.items())),
        }
    }


def members(
    segmentation: Segmentation, *, segment: str | None, profiles: Mapping[str, Profile]
) -> list[dict[str, Any]]:
    """The scored customers (of ``segment`` if given) with their profile, by customer_id."""
    return [
        {
            "customer_id": c.customer_id,
            "segment": c.segment,
            "recency_days": c.recency_days,
            "frequency": c.frequency,
            "monetary": c.monetary,
            "r_score": c.r_score,
            "f_score": c.f_score,
            "m_score": c.m_score,
            **_profile_fields(profiles.get(c.customer_id)),
        }
        for c in segmentation.customers
        if segment is None or c.segment == segment
    ]


CSV_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "segment",
    "recency_days",
    "frequency",
    "monetary",
    "currency",
    "r_score",
    "f_score",
    "m_score",
    "profile_version",
    "industry",
    "size",
    "region",
    "age_band",
    "attributes",
)
"""The CSV header; ``attributes`` is a JSON object with sorted keys (``{}`` without any)."""


def render_csv(rows: Sequence[Mapping[str, Any]], *, currency: str) -> str:
    """A header row and one line per customer (``members`` rows); empty cells for no profile."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        profile = row["profile"] or {}
        values = {
            **row,
            "currency": currency,
            "profile_version": profile.get("version"),
            **{k: profile.get(k) for k in ("industry", "size", "region", "age_band")},
            "attributes": json.dumps(profile["attributes"], ensure_ascii=False)
            if profile
            else None,
        }
        writer.writerow([csv_cell(values[column]) for column in CSV_COLUMNS])
    return out.getvalue()
