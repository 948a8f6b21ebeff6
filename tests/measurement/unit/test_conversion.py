"""Unit tests of converting a scope's per-currency amounts (pure): rates, sums, what a missing
rate leaves unknown, and the KPIs computed from unknown amounts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from services.measurement import domain
from services.measurement.conversion import (
    SCOPE_LTV,
    conversion,
    converted_amounts,
    converted_budget,
    holds_amounts,
    holds_anything,
    own_fields,
)
from shared.money import FxRates

FX = FxRates(base="USD", rates={"EUR": D("1.08"), "GBP": D("1.25"), "JPY": D("1E-2")})
NOW = dt.datetime(2027, 3, 16, 12, tzinfo=dt.UTC)


def test_rates_to_the_reporting_currency_and_the_missing_ones() -> None:
    c = conversion(currencies=["EUR", "USD", "CHF", "EUR"], target="USD", fx=FX)
    assert (c.rates, c.missing) == ({"EUR": D("1.08")}, ("CHF",))
    assert c.summary() == {
        "currency": "USD",
        "fx_rates": {"EUR": D("1.08")},
        "missing_rates": ["CHF"],
    }
    # to another currency than the default one: through the default one
    to_gbp = conversion(currencies=["EUR", "USD"], target="GBP", fx=FX)
    assert to_gbp.rates == {"EUR": D("0.864"), "USD": D("0.8")}
    # echoed rates are never in exponent notation
    assert str(conversion(currencies=["JPY"], target="USD", fx=FX).rates["JPY"]) == "0.01"


def test_amounts_are_each_share_converted_then_added() -> None:
    shares = {
        "USD": {"spend": D("47000.18"), "revenue": D("100.00"), "ltv_gross_profit": D("5")},
        "EUR": {"spend": D("1000.00"), "discounts": D("50.00"), SCOPE_LTV: D("10")},
    }
    c = conversion(currencies=shares, target="USD", fx=FX)
    assert converted_amounts(shares, conversion=c) == {
        "spend": D("48080.18"),  # 47,000.18 + 1,000 × 1.08
        "revenue": D("100.00"),
        "gross_profit": D(0),
        "discounts": D("54.00"),
        # a share's part of the scope's LTV, when it has one, else its own
        "ltv_gross_profit": D("15.80"),  # 5 + 10 × 1.08
    }
    assert converted_budget({"USD": D(100), "EUR": D(10)}, conversion=c) == D("110.80")
    assert converted_budget({}, conversion=c) is None


def test_an_amount_with_a_part_without_rate_is_unknown() -> None:
    shares = {
        "USD": {"spend": D("10.00"), "revenue": D("20.00")},
        "CHF": {"spend": D("5.00"), "revenue": D(0)},
    }
    c = conversion(currencies=shares, target="USD", fx=FX)
    amounts = converted_amounts(shares, conversion=c)
    assert amounts["spend"] is None  # 10 USD + 5 CHF cannot be told in USD
    assert amounts["revenue"] == D("20.00")  # zero CHF needs no rate
    assert converted_budget({"USD": D(1), "CHF": D(1)}, conversion=c) is None
    assert converted_budget({"USD": D(1), "CHF": D(0)}, conversion=c) == D(1)


def test_what_a_share_holds() -> None:
    assert not holds_anything({"spend": D(0), "reached": (0, 0), "orders": 0})
    assert holds_anything({"spend": D(0), "reached": (1, 0)})
    assert not holds_amounts({"spend": D(0), "leads": 3})
    assert holds_amounts({SCOPE_LTV: D("0.01")})
    assert own_fields({"spend": D(1), SCOPE_LTV: D(2)}) == {"spend": D(1)}


def test_kpis_of_unknown_amounts_are_none_and_counts_stay() -> None:
    m = domain.Measures(
        spend=None,
        revenue=D(100),
        gross_profit=D(50),
        discounts=D(5),
        clicks=10,
        impressions=100,
        reached=(4, 2, 0, 0, 0, 0, 0),
        orders=2,
        new_customers=1,
        budget=D(1000),
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 3, 31),
    )
    k = domain.compute_kpis(m, as_of=NOW)
    for name in ("spend", "cpc", "cpl", "cac", "romi", "roi", "ltv_cac"):
        assert k[name] is None, name
    for name in ("marketing_pct_of_sales", "budget_utilisation", "forecast_at_completion"):
        assert k[name] is None, name
    assert (k["revenue"], k["average_check"], k["gross_profit"]) == (
        D("100.00"),
        D("50.00"),
        D("50.00"),
    )
    assert (k["leads"], k["ctr"], k["orders"]) == (2, D("0.100000"), 2)
    roi = domain.compute_kpis(
        domain.Measures(spend=D(10), gross_profit=D(20), discounts=None), as_of=NOW
    )
    assert (roi["romi"], roi["roi"]) == (D("1.000000"), None)
