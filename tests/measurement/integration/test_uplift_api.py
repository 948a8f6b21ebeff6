"""Promotion uplift on chDB through the route: a two-week campaign, the sales of its two
product/partner pairs before, during and after it (its own, another campaign's in EUR,
unattributed ones), sales of other pairs, and every figure computed by hand.

The session shares one chDB engine: the events live in 2097 (no other test uses that year), and
the ids are unique per module, so only this scenario's sales are of its pairs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import EventScenario, on_topics

from services.measurement.warehouse.uplift import uplift_inputs
from shared.events.ingest import SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned
from shared.money import FxRates

pytestmark = pytest.mark.integration

Y = 2097
TOKEN = "t-uplift-viewer"
OVER = "2098-01-01T00:00:00Z"  # every window over


def at(month: int, day: int) -> dt.datetime:
    """A UTC timestamp in the scenario's year."""
    return dt.datetime(Y, month, day, 10, tzinfo=dt.UTC)


class Scenario(EventScenario):
    """Builds the event set (event ids derive from names)."""

    def campaign(self, key: str, *, currency: str, margin: str) -> None:
        """A campaign running 1–14 March."""
        data = CampaignPlanned(
            campaign_id=self.id(key),
            plan_id=self.id(f"plan-{currency}"),
            name=f"campaign {key}",
            channel="retail",
            owner="ann",
            budget=D("10000"),
            currency=currency,
            start_date=dt.date(Y, 3, 1),
            end_date=dt.date(Y, 3, 14),
            gross_margin=D(margin),
        )
        self.add(f"campaign-{key}", data, at(1, 1))

    def sale(  # type: ignore[no-untyped-def]
        self, name: str, campaign: str | None, pair: tuple[str, str] | None, amount: str, when, **kw
    ) -> None:
        """A sale of ``pair`` (product, partner; scenario-unique ids, None: neither)."""
        product, partner = (None, None) if pair is None else (self.id(pair[0]), self.id(pair[1]))
        data = SaleCompleted(
            order_id=self.id(name),
            customer_id=self.id(f"k-{name}"),
            campaign_id=campaign and self.id(campaign),
            amount=D(amount),
            currency=kw.pop("currency", "USD"),
            product_id=product,
            partner_id=partner,
            discount_amount=D(kw.pop("discount", "0")),
        )
        self.add(name, data, when)


X1P1, X2P1, X1P2 = ("X1", "P1"), ("X2", "P1"), ("X1", "P2")
X2P3, X3P3 = ("X2", "P3"), ("X3", "P3")


def build(uid: str) -> Scenario:
    """Campaign A (USD, margin 0.5) promotes X1/P1 and X2/P1 (its own sales' pairs); B (EUR,
    margin 0.4) sells them too. 1 EUR = 1.08 USD."""
    s = Scenario(uid)
    s.campaign("A", currency="USD", margin="0.5")
    s.campaign("B", currency="EUR", margin="0.4")
    # spend of A: before its start (production) and during it; after the end
    s.add("sp1", SpendRecorded(campaign_id=s.id("A"), channel="retail", amount=D("250"),
                               currency="USD"), at(2, 20))  # fmt: skip
    s.add("sp2", SpendRecorded(campaign_id=s.id("A"), channel="retail", amount=D("150"),
                               currency="USD"), at(3, 3))  # fmt: skip
    # the 8 weeks before the start (4 Jan – 1 Mar) and the 4 before it (1 Feb – 1 Mar)
    s.sale("jan", None, X1P1, "500", at(1, 20))  # only in the 8 weeks
    s.sale("b1", None, X1P1, "100", at(2, 3))
    s.sale("b2", None, X2P1, "100", at(2, 10))
    s.sale("b3", "B", X1P1, "100", at(2, 17), currency="EUR")  # 108.00 USD
    s.sale("b4", None, X1P1, "92", at(2, 24), discount="8")
    s.sale("other-pair", None, X1P2, "1000", at(2, 5))  # never counts
    # during, 1–14 March
    s.sale("d1", "A", X1P1, "300", at(3, 2), discount="30")
    s.sale("d2", "A", X2P1, "200", at(3, 5), discount="20")
    s.sale("d3", "A", X1P1, "150", at(3, 9))
    s.sale("d4", None, X1P1, "100", at(3, 12))
    s.sale("d5", "A", None, "1000", at(3, 6))  # A's, but of no pair: tells nothing
    s.sale("d6", "B", X2P1, "50", at(3, 13), currency="EUR", discount="5")  # 54.00, 5.40
    s.sale("d7", "B", X1P2, "700", at(3, 13), currency="EUR")  # another pair
    # after: 15–29 March (2 weeks), to 12 April (4 weeks)
    s.sale("a1", None, X1P1, "50", at(3, 20))
    s.sale("a2", None, X2P1, "999", at(4, 2))  # only in the 4 weeks
    # P2 (X1/P2 above) and P3 sell the promoted products without the promotion: the control
    s.sale("c1", None, X2P3, "200", at(2, 12))
    s.sale("c2", None, X2P3, "100", at(3, 22))
    s.sale("c3", None, X3P3, "500", at(2, 12))  # a product not promoted: never counts
    return s


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    """The event set inserted once per module, and its sales once more (redelivered)."""
    s = build(uuid.uuid4().hex[:10])
    s.insert(warehouse_client, redelivered=on_topics("mrm.sales.v1"))
    return s


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, timeout=20, currency="USD", fx_rates={"EUR": D("1.08")})


def get_uplift(client: httpx.Client, s: Scenario, **params: Any) -> dict[str, Any]:
    """Campaign A's uplift."""
    response = client.get(f"/api/v1/campaigns/{s.id('A')}/uplift", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_four_weeks_before_and_two_after(measurement: httpx.Client, scenario: Scenario) -> None:
    body = get_uplift(measurement, scenario, weeks_before=4, weeks_after=2, as_of=OVER)
    # baseline: b1 100 + b2 100 + b3 108 (100 EUR) + b4 92 = 400.00, 4 units in 4 weeks
    # during: d1 300 + d2 200 + d3 150 + d4 100 + d6 54 = 804.00, 5 units; expected 2, 200.00
    # incremental: 3 units, 604.00, gross profit 302.00 (A's margin 0.5)
    # discounts: 30 + 20 + 5.40 = 55.40; cost: 250 + 150 = 400.00
    # ROI: (302 − 400 − 55.40) / (400 + 55.40) = −0.336847
    # after: a1 50.00, 1 unit against 2 units, 200.00: a dip of 1 unit, 150.00, 75.00
    assert body["currency"] == "USD"
    assert (body["pairs"], body["missing_rates"], body["gross_margin"]) == (2, [], "0.500000")
    assert body["baseline"] == {
        "start": "2097-02-01T00:00:00Z",
        "end": "2097-03-01T00:00:00Z",
        "weeks": "4.000000",
        "units": 4,
        "revenue": "400.00",
        "discounts": "8.00",
        "units_per_week": "1.00",
        "revenue_per_week": "100.00",
    }
    assert body["during"] == {
        "start": "2097-03-01T00:00:00Z",
        "end": "2097-03-15T00:00:00Z",
        "weeks": "2.000000",
        "units": 5,
        "revenue": "804.00",
        "discounts": "55.40",
        "expected_units": "2.00",
        "expected_revenue": "200.00",
    }
    assert body["after"] == {
        "start": "2097-03-15T00:00:00Z",
        "end": "2097-03-29T00:00:00Z",
        "weeks": "2.000000",
        "units": 1,
        "revenue": "50.00",
        "discounts": "0.00",
        "expected_units": "2.00",
        "expected_revenue": "200.00",
    }
    assert body["incremental"] == {"units": "3.00", "revenue": "604.00", "gross_profit": "302.00"}
    assert body["dip"] == {"units": "-1.00", "revenue": "-150.00", "gross_profit": "-75.00"}
    assert (body["discounts"], body["cost"], body["promotion_roi"]) == (
        "55.40",
        "400.00",
        "-0.336847",
    )
    # net: 3 − 1 units, 604 − 150, 302 − 75; net ROI (227 − 455.40) / 455.40
    assert body["net"] == {"units": "2.00", "revenue": "454.00", "gross_profit": "227.00"}
    assert body["net_promotion_roi"] == "-0.501537"
    assert (body["baseline_used"], body["control"], body["baselines"]["control"]) == (
        "before",
        None,
        None,
    )
    assert body["baselines"]["before"] == {
        "expected_during": {"units": "2.00", "revenue": "200.00"},
        "expected_after": {"units": "2.00", "revenue": "200.00"},
        "incremental": body["incremental"],
        "dip": body["dip"],
        "net": body["net"],
        "promotion_roi": "-0.336847",
        "net_promotion_roi": "-0.501537",
    }


def test_partners_without_the_promotion_as_a_control(
    measurement: httpx.Client, scenario: Scenario
) -> None:
    body = get_uplift(
        measurement, scenario, weeks_before=4, weeks_after=2, as_of=OVER, control="partners"
    )
    # control: P2 and P3 selling X1 or X2 (c3 is X3: not promoted)
    # before: other-pair 1000 + c1 200 = 1200.00, 2 units; during: d7 700 EUR = 756.00, 1 unit;
    # after: c2 100.00, 1 unit
    control = body["control"]
    assert (control["partners"], control["pairs"], control["used"], control["reason"]) == (
        2,
        2,
        True,
        None,
    )
    assert [control[w]["units"] for w in ("before", "during", "after")] == [2, 1, 1]
    assert [control[w]["revenue"] for w in ("before", "during", "after")] == [
        "1200.00",
        "756.00",
        "100.00",
    ]
    # per week: before 0.5, 300.00; during 0.5, 378.00; after 0.5, 50.00
    assert control["during_change"] == {"units": "1.000000", "revenue": "1.260000"}
    assert control["after_change"] == {"units": "1.000000", "revenue": "0.166667"}
    # expected during: 4 units × 1/2 = 2, 400.00 × 756/1200 = 252.00
    # expected after: 4 × 1/2 = 2, 400.00 × 100/1200 = 33.33
    assert body["baseline_used"] == "control"
    assert (body["during"]["expected_units"], body["during"]["expected_revenue"]) == (
        "2.00",
        "252.00",
    )
    assert (body["after"]["expected_units"], body["after"]["expected_revenue"]) == ("2.00", "33.33")
    # incremental: 5 − 2, 804 − 252, 552 × 0.5; dip: 1 − 2, 50 − 33.333…, × 0.5
    assert body["incremental"] == {"units": "3.00", "revenue": "552.00", "gross_profit": "276.00"}
    assert body["dip"] == {"units": "-1.00", "revenue": "16.67", "gross_profit": "8.33"}
    assert body["net"] == {"units": "2.00", "revenue": "568.67", "gross_profit": "284.33"}
    # ROI (276 − 455.40) / 455.40; net (284.333… − 455.40) / 455.40
    assert (body["promotion_roi"], body["net_promotion_roi"]) == ("-0.393939", "-0.375640")
    assert body["baselines"]["control"]["incremental"] == body["incremental"]
    assert body["baselines"]["before"]["incremental"]["revenue"] == "604.00"


def test_a_control_with_no_sales_yet_is_not_used(
    measurement: httpx.Client, scenario: Scenario
) -> None:
    body = get_uplift(measurement, scenario, as_of="2097-01-02T00:00:00Z", control="partners")
    # nothing of any window has elapsed: no control partner sold anything yet
    control = body["control"]
    assert (control["partners"], control["used"], body["baseline_used"]) == (0, False, "before")
    assert control["reason"] == "no partner outside the promotion sold the promoted products"
    assert body["baselines"]["control"] is None


def test_the_defaults_eight_weeks_before_and_four_after(
    measurement: httpx.Client, scenario: Scenario
) -> None:
    body = get_uplift(measurement, scenario, as_of=OVER)
    # baseline: jan 500 + 400 = 900.00, 5 units in 8 weeks: 0.625 units, 112.50 a week
    # during: expected 1.25 units, 225.00; incremental 3.75 units, 579.00, 289.50
    # ROI: (289.50 − 400 − 55.40) / 455.40 = −0.364295
    # after (4 weeks): a1 50 + a2 999 = 1049.00, 2 units against 2.5, 450.00
    assert (body["weeks_before"], body["weeks_after"]) == (8, 4)
    assert (body["baseline"]["start"], body["baseline"]["units"]) == ("2097-01-04T00:00:00Z", 5)
    assert (body["baseline"]["units_per_week"], body["baseline"]["revenue_per_week"]) == (
        "0.63",  # 0.625 half up
        "112.50",
    )
    assert (body["during"]["expected_units"], body["during"]["expected_revenue"]) == (
        "1.25",
        "225.00",
    )
    assert body["incremental"] == {"units": "3.75", "revenue": "579.00", "gross_profit": "289.50"}
    assert body["promotion_roi"] == "-0.364295"
    assert (body["after"]["end"], body["after"]["units"], body["after"]["revenue"]) == (
        "2097-04-12T00:00:00Z",
        2,
        "1049.00",
    )
    assert body["dip"] == {"units": "-0.50", "revenue": "599.00", "gross_profit": "299.50"}


def test_as_of_one_week_into_the_campaign(measurement: httpx.Client, scenario: Scenario) -> None:
    body = get_uplift(
        measurement, scenario, weeks_before=4, weeks_after=2, as_of="2097-03-08T00:00:00Z"
    )
    # during so far: d1 300 + d2 200, 2 units against 1 week's baseline (1 unit, 100.00)
    # cost: both spends booked by then; ROI (200 − 400 − 50) / 450
    assert (body["during"]["weeks"], body["during"]["units"], body["during"]["revenue"]) == (
        "1.000000",
        2,
        "500.00",
    )
    assert body["incremental"] == {"units": "1.00", "revenue": "400.00", "gross_profit": "200.00"}
    assert (body["cost"], body["discounts"], body["promotion_roi"]) == (
        "400.00",
        "50.00",
        "-0.555556",
    )
    assert (body["after"]["weeks"], body["after"]["units"]) == ("0.000000", 0)
    assert body["dip"] == {"units": "0.00", "revenue": "0.00", "gross_profit": "0.00"}


def test_unknown_campaign_and_bad_parameters(measurement: httpx.Client, scenario: Scenario) -> None:
    missing = measurement.get(f"/api/v1/campaigns/{scenario.id('nope')}/uplift")
    assert missing.status_code == 404, missing.text
    path = f"/api/v1/campaigns/{scenario.id('A')}/uplift"
    for params, field in (
        ({"weeks_before": 0}, "weeks_before"),
        ({"weeks_before": 105}, "weeks_before"),
        ({"weeks_after": "x"}, "weeks_after"),
        ({"weeks_after": 0}, "weeks_after"),
        ({"as_of": "2097-03-08"}, "as_of"),
        ({"control": "regions"}, "control"),
    ):
        response = measurement.get(path, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", field], params


def test_sales_without_an_fx_rate_leave_their_amounts_unknown(
    warehouse_client: Client, scenario: Scenario
) -> None:
    inputs = uplift_inputs(
        warehouse_client,
        campaign_id=scenario.id("A"),
        fx=FxRates(base="USD", rates={}),
        as_of=dt.datetime(2098, 1, 1, tzinfo=dt.UTC),
        weeks_before=4,
        weeks_after=2,
    )
    assert inputs is not None
    assert (inputs.pairs, inputs.cost, inputs.missing_rates) == (2, D("400.00"), ["EUR"])
    by_week = {(w.window, w.week): (w.units, w.revenue) for w in inputs.sales}
    # weeks from 1 Feb, 1 Mar, 15 Mar; b3 (17 Feb, week 2) and d6 (13 Mar, week 1) are in EUR;
    # during: d1, d2 in week 0; d3 (9 Mar), d4, d6 in week 1
    assert by_week == {
        ("before", 0): (1, D("100.00")),
        ("before", 1): (1, D("100.00")),
        ("before", 2): (1, None),
        ("before", 3): (1, D("92.00")),
        ("during", 0): (2, D("500.00")),
        ("during", 1): (3, None),
        ("after", 0): (1, D("50.00")),
    }
