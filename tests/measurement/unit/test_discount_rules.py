"""Discount rules by hand-computed values: the rate, the applicable limit, the discount over
it, fund use up the line tree, thresholds announced once per crossing, the analytics."""

from __future__ import annotations

from decimal import Decimal as D

from services.measurement import discounts
from services.measurement.discounts import Limit, Sale


def sale(amount: str, discount: str, *, campaign: str = "c1", reason: str = "") -> Sale:
    return Sale(
        event_id=f"e-{amount}-{discount}",
        order_id="o",
        campaign_id=campaign,
        amount=D(amount),
        discount_amount=D(discount),
        currency="EUR",
        reason=reason,
    )


def test_the_rate_is_the_discount_over_the_undiscounted_price() -> None:
    assert discounts.discount_rate(amount=D("1450.00"), discount_amount=D("150.00")) == D(
        "0.09375"
    )  # 150 / 1600
    assert discounts.discount_rate(amount=D("80"), discount_amount=D("20")) == D("0.2")
    assert discounts.discount_rate(amount=D("0"), discount_amount=D("0")) == 0
    assert discounts.discount_rate(amount=D("0"), discount_amount=D("5")) == 1


def test_the_nearest_limit_applies_campaign_then_lines_then_plan() -> None:
    parents = {"partner": "brand", "brand": None}
    chain = discounts.scope_chain(
        campaign_id="c1", plan_id="p1", line_id="partner", parents=parents
    )
    assert chain == [("campaign", "c1"), ("line", "partner"), ("line", "brand"), ("plan", "p1")]
    limits = {
        ("plan", "p1"): Limit(max_discount_rate=D("0.3")),
        ("line", "brand"): Limit(max_discount_rate=D("0.2")),
        ("line", "partner"): Limit(promo_fund=D("100")),  # a fund only: the rate comes from above
    }
    assert discounts.applicable_rate(chain, limits) == (("line", "brand"), D("0.2"))
    limits[("campaign", "c1")] = Limit(max_discount_rate=D("0.25"))
    assert discounts.applicable_rate(chain, limits) == (("campaign", "c1"), D("0.25"))
    assert discounts.applicable_rate([("plan", "p2")], limits) is None
    looped = discounts.scope_chain(
        campaign_id="c", plan_id="p", line_id="a", parents={"a": "b", "b": "a"}
    )
    assert looped == [("campaign", "c"), ("line", "a"), ("line", "b"), ("plan", "p")]


def test_a_sale_over_its_rate_gives_the_discount_beyond_it() -> None:
    limit = (("line", "brand"), D("0.2"))
    # 300 off 1000 = 0.3; 0.2 allows 200: 100 over
    excess = discounts.exceeded(sale("700.00", "300.00"), limit=limit)
    assert excess is not None
    assert (excess.rate, excess.amount_over, excess.scope) == (D("0.3"), D("100.00"), limit[0])
    assert discounts.exceeded(sale("800.00", "200.00"), limit=limit) is None  # at the limit
    assert discounts.exceeded(sale("700.00", "300.00"), limit=None) is None
    # 0.15 of 33.33 = 4.9995 allowed; 5.00 given: 0.0005 over rounds to 0.00
    odd = discounts.exceeded(sale("28.33", "5.00"), limit=(("plan", "p"), D("0.15")))
    assert odd is not None and odd.amount_over == D("0.00") and odd.rate == D("0.150015")


def test_fund_use_adds_up_the_campaigns_beneath_each_scope() -> None:
    chains = {
        "c1": [("campaign", "c1"), ("line", "partner"), ("line", "brand"), ("plan", "p")],
        "c2": [("campaign", "c2"), ("line", "brand"), ("plan", "p")],
        "c3": [("campaign", "c3"), ("plan", "p")],
    }
    used = {"c1": D("40.00"), "c2": D("25.50"), "c3": D("10.00")}
    use = discounts.fund_use(used_by_campaign=used, chains=chains)
    assert use[("line", "partner")] == D("40.00")
    assert use[("line", "brand")] == D("65.50")
    assert use[("plan", "p")] == D("75.50")


def test_thresholds_are_announced_once_per_crossing() -> None:
    fund = D("1000.00")
    assert discounts.thresholds_reached(used=D("799.99"), promo_fund=fund) == set()
    assert discounts.thresholds_reached(used=D("800.00"), promo_fund=fund) == {80}
    assert discounts.thresholds_reached(used=D("1000.00"), promo_fund=fund) == {80, 100}
    assert discounts.thresholds_reached(used=D("0"), promo_fund=D("0")) == set()
    assert discounts.thresholds_reached(used=D("0.01"), promo_fund=D("0")) == {80, 100}
    assert discounts.threshold_changes(reached={80}, announced=set()) == {80: True}
    assert discounts.threshold_changes(reached={80, 100}, announced={80}) == {100: True}
    assert discounts.threshold_changes(reached={80, 100}, announced={80, 100}) == {}
    # the fund was raised: 100 % re-arms, silently
    assert discounts.threshold_changes(reached={80}, announced={80, 100}) == {100: False}


def test_analytics_sum_by_reason_partner_campaign_with_the_share_over_limits() -> None:
    sales = [
        sale("700.00", "300.00", reason="clearance"),  # 100.00 over 0.2
        sale("900.00", "100.00", reason="spring"),  # within
        sale("50.00", "50.00", campaign="c2", reason="spring"),  # no limit
    ]
    result = discounts.analytics(sales, limit_of={"c1": (("plan", "p"), D("0.2")), "c2": None})
    assert result.total == D("450.00")
    assert result.over_limit == D("100.00")
    assert result.over_limit_share == D("0.2222")  # 100 / 450
    assert result.by_reason == {"clearance": D("300.00"), "spring": D("150.00")}
    assert result.by_campaign == {"c1": D("400.00"), "c2": D("50.00")}
    assert result.by_partner == {"": D("450.00")}
    assert discounts.analytics([], limit_of={}).over_limit_share is None
