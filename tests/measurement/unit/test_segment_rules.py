"""Rule-based segments without I/O: rule validation names the path of what is wrong, the
evaluation of conditions and ``any`` groups (unknown values included) on hand-made facts, the
buckets of segment sizes, the members' KPIs and the members CSV."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import pytest

from services.measurement import rfm, rule_segments, segment_rules
from services.measurement.conversion import conversion
from services.measurement.warehouse.customers import Profile
from services.measurement.warehouse.segment_members import MemberMeasures
from shared.errors import DomainError
from shared.money import FxRates


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({}, "rule.conditions"),
        ({"conditions": []}, "rule.conditions"),
        ({"conditions": [cond("industry", "eq", "x")], "extra": 1}, "rule.extra"),
        (
            {"conditions": [cond("industry", "eq", "x"), cond("colour", "eq", "x")]},
            "rule.conditions.1.field",
        ),
        (
            {"conditions": [cond("industry", "eq", "x"), cond("region", "gte", "x")]},
            "rule.conditions.1.op",
        ),
        ({"conditions": [cond("size", "eq", "huge")]}, "rule.conditions.0.value"),
        ({"conditions": [cond("size", "in", ["large", "huge"])]}, "rule.conditions.0.value.1"),
        ({"conditions": [cond("recency_score", "gte", 6)]}, "rule.conditions.0.value"),
        ({"conditions": [cond("recency_score", "gte", "4")]}, "rule.conditions.0.value"),
        ({"conditions": [cond("orders", "gte", True)]}, "rule.conditions.0.value"),
        ({"conditions": [cond("revenue", "gte", "10.001")]}, "rule.conditions.0.value"),
        ({"conditions": [cond("revenue", "in", ["10"])]}, "rule.conditions.0.op"),
        ({"conditions": [cond("region", "in", "EMEA")]}, "rule.conditions.0.value"),
        ({"conditions": [cond("region", "eq", ["EMEA"])]}, "rule.conditions.0.value"),
        ({"conditions": [cond("attributes.Tier", "eq", "gold")]}, "rule.conditions.0.field"),
        ({"conditions": [{"field": "region", "op": "eq"}]}, "rule.conditions.0.value"),
        (
            {"conditions": [{"any": [cond("region", "eq", "x"), cond("age_band", "lt", "x")]}]},
            "rule.conditions.0.any.1.op",
        ),
        ({"conditions": [{"any": []}]}, "rule.conditions.0.any"),
        ({"conditions": [{"any": [cond("region", "eq", "x")], "op": "eq"}]}, "rule.conditions.0"),
        ({"conditions": ["region = x"]}, "rule.conditions.0"),
    ],
)
def test_a_bad_rule_names_the_path_of_what_is_wrong(rule: Any, path: str) -> None:
    with pytest.raises(DomainError) as raised:
        segment_rules.check_rule(rule)
    assert raised.value.field == path
    assert raised.value.status_code == 422


def test_a_checked_rule_round_trips_with_amounts_as_text() -> None:
    raw = {
        "conditions": [
            cond("attributes.tier", "in", ["gold", "silver"]),
            {"any": [cond("revenue", "gte", 1000), cond("rfm_segment", "eq", "champions")]},
        ]
    }
    rule = segment_rules.check_rule(raw)
    assert rule.as_json() == {
        "conditions": [
            cond("attributes.tier", "in", ["gold", "silver"]),
            {"any": [cond("revenue", "gte", "1000.00"), cond("rfm_segment", "eq", "champions")]},
        ]
    }
    assert rule.uses_rfm and rule.uses_profile
    assert segment_rules.check_rule(rule.as_json()) == rule


FACTS: dict[str, dict[str, Any]] = {
    # a: large tech in EMEA, a champion; b: large tech, no region, no sales; c: small retail in
    # EMEA with a gold tier, at risk; d: no profile at all, a new customer
    "a": {
        "industry": "tech",
        "size": "large",
        "region": "EMEA",
        "attributes": {},
        "rfm_segment": "champions",
        "recency_score": 5,
        "orders": 7,
        "revenue": D("900.00"),
    },
    "b": {"industry": "tech", "size": "large", "attributes": {}},
    "c": {
        "industry": "retail",
        "size": "small",
        "region": "EMEA",
        "attributes": {"tier": "gold"},
        "rfm_segment": "at_risk",
        "recency_score": 1,
        "orders": 3,
        "revenue": D("1000.00"),
    },
    "d": {
        "attributes": {},
        "rfm_segment": "new",
        "recency_score": 5,
        "orders": 1,
        "revenue": D("50.00"),
    },
}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([cond("industry", "eq", "tech")], ["a", "b"]),
        ([cond("industry", "eq", "tech"), cond("region", "eq", "EMEA")], ["a"]),
        # an unknown value holds only for ne / not_in
        ([cond("region", "ne", "EMEA")], ["b", "d"]),
        ([cond("region", "not_in", ["EMEA", "APAC"])], ["b", "d"]),
        ([cond("region", "in", ["EMEA", "APAC"])], ["a", "c"]),
        ([cond("attributes.tier", "eq", "gold")], ["c"]),
        ([cond("attributes.tier", "ne", "gold")], ["a", "b", "d"]),
        ([cond("recency_score", "gte", 5)], ["a", "d"]),
        ([cond("recency_score", "lte", 1)], ["c"]),
        ([cond("revenue", "gte", "900.00")], ["a", "c"]),
        ([cond("revenue", "lte", "899.99")], ["d"]),
        ([cond("orders", "in", [1, 3])], ["c", "d"]),
        ([cond("rfm_segment", "eq", "champions")], ["a"]),
        (
            [
                cond("size", "in", ["large", "small"]),
                {
                    "any": [
                        cond("rfm_segment", "eq", "champions"),
                        cond("attributes.tier", "eq", "gold"),
                    ]
                },
            ],
            ["a", "c"],
        ),
        ([{"any": [cond("region", "eq", "EMEA"), cond("orders", "eq", 1)]}], ["a", "c", "d"]),
    ],
)
def test_members_by_hand(conditions: list[Any], expected: list[str]) -> None:
    rule = segment_rules.check_rule({"conditions": conditions})
    assert segment_rules.members(rule, FACTS) == expected


def test_size_buckets_end_on_their_last_day_or_the_last_day_asked() -> None:
    d = dt.date
    assert rule_segments.size_points(start=d(2091, 1, 30), end=d(2091, 3, 10), bucket="month") == [
        (d(2091, 1, 1), d(2091, 1, 31)),
        (d(2091, 2, 1), d(2091, 2, 28)),
        (d(2091, 3, 1), d(2091, 3, 10)),
    ]
    # 2091-01-03 is a Wednesday
    assert rule_segments.size_points(start=d(2091, 1, 3), end=d(2091, 1, 15), bucket="week") == [
        (d(2091, 1, 1), d(2091, 1, 7)),
        (d(2091, 1, 8), d(2091, 1, 14)),
        (d(2091, 1, 15), d(2091, 1, 15)),
    ]
    assert rule_segments.size_points(start=d(2091, 1, 3), end=d(2091, 1, 4), bucket="day") == [
        (d(2091, 1, 3), d(2091, 1, 3)),
        (d(2091, 1, 4), d(2091, 1, 4)),
    ]


def test_customer_facts_join_profiles_and_rfm() -> None:
    as_of = dt.date(2091, 6, 30)
    profiles = [Profile("p1", 2, industry="tech", attributes={"z": "1", "a": "2"})]
    scored = [rfm.CustomerRfm("p2", 3, 4, D("10.00"), 5, 4, 3, "champions")]
    facts = rule_segments.customer_facts(profiles=profiles, scored=scored, as_of=as_of)
    assert facts == {
        "p1": {
            "customer_id": "p1",
            "profile_version": 2,
            "industry": "tech",
            "size": None,
            "region": None,
            "age_band": None,
            "attributes": {"a": "2", "z": "1"},
        },
        "p2": {
            "customer_id": "p2",
            "profile_version": None,
            "attributes": {},
            "rfm_segment": "champions",
            "recency_score": 5,
            "frequency_score": 4,
            "monetary_score": 3,
            "recency_days": 3,
            "last_purchase": dt.date(2091, 6, 27),
            "orders": 4,
            "revenue": D("10.00"),
        },
    }
    rows = rule_segments.render_csv(list(facts.values()), currency="USD").split("\r\n")
    assert rows[0] == ",".join(rule_segments.CSV_COLUMNS)
    assert rows[1] == 'p1,2,tech,,,,"{""a"": ""2"", ""z"": ""1""}",,,,,,,,,'
    assert rows[2] == "p2,,,,,,{},champions,5,4,3,3,2091-06-27,4,10.00,USD"


def test_member_kpis_convert_each_currency_and_keep_counts_whole() -> None:
    fx = FxRates(base="USD", rates={"EUR": D("1.10")})
    m = MemberMeasures(
        revenue={"USD": D("100.00"), "EUR": D("50.00")},
        gross_profit={"USD": D("60.00"), "EUR": D("50.00")},
        discounts={"USD": D("10.00"), "EUR": D("0.00")},
        orders_by_currency={"USD": 2, "EUR": 1},
        orders=3,
        buyers=2,
        repeat_buyers=1,
        new_customers=1,
        reached=(4, 3, 2, 1, 1, 1, 1),
        lost=1,
    )
    to = rule_segments.conversion_of([m], currency="USD", fx=fx)
    kpis = rule_segments.member_kpis(m, to=to)
    # 100 + 50 × 1.10 = 155.00; gross 60 + 55 = 115.00; average check 155 / 3 = 51.67
    assert kpis["revenue"] == D("155.00")
    assert kpis["gross_profit"] == D("115.00")
    assert kpis["discounts"] == D("10.00")
    assert kpis["average_check"] == D("51.67")
    assert kpis["repeat_purchase_rate"] == D("0.500000")
    assert (kpis["orders"], kpis["customers"], kpis["new_customers"]) == (3, 2, 1)
    assert kpis["leads"] == 3
    assert kpis["conversions"]["lead_to_customer"] == D("0.333333")
    assert kpis["by_currency"]["EUR"] == {
        "revenue": D("50.00"),
        "gross_profit": D("50.00"),
        "discounts": D("0.00"),
        "orders": 1,
    }
    no_rate = conversion(currencies={"EUR"}, target="GBP", fx=fx)
    assert rule_segments.member_kpis(m, to=no_rate)["revenue"] is None


class FakeStore:
    """Answers the two reads membership makes; records which were made."""

    def __init__(self, profiles: list[Profile], sales: list[Any]) -> None:
        self.profiles, self.sales, self.reads = profiles, sales, []  # type: ignore[var-annotated]

    async def run(self, function: Any, /, **kwargs: Any) -> Any:
        self.reads.append(function.__name__)
        return self.profiles if function.__name__ == "profiles_as_of" else self.sales


@pytest.mark.parametrize(
    ("conditions", "expected", "reads"),
    [
        # a profile-only rule that no blank customer satisfies: the sales are not read
        ([cond("region", "eq", "EMEA")], ["p1"], ["profiles_as_of"]),
        # ... one a blank customer satisfies: s1 (sales, no profile) is a member too
        ([cond("region", "ne", "EMEA")], ["p2", "s1"], ["profiles_as_of", "customer_sales"]),
        ([cond("orders", "gte", 1)], ["p1", "s1"], ["customer_sales"]),
        (
            [cond("rfm_segment", "ne", "at_risk")],
            ["p1", "p2"],
            ["profiles_as_of", "customer_sales"],
        ),
    ],
)
def test_membership_reads_what_the_rule_needs_and_agrees_with_a_full_read(
    conditions: list[Any], expected: list[str], reads: list[str]
) -> None:
    import asyncio

    from services.measurement.warehouse.customers import CustomerCurrencySales

    last = dt.datetime(2091, 6, 29, 12, tzinfo=dt.UTC)
    sales = [
        # of two customers: p1 scores R 3, F 1, M 3 (need_attention), s1 R 1, F 3, M 1 (at_risk)
        CustomerCurrencySales("p1", "USD", last, 1, D("100.00")),
        CustomerCurrencySales("s1", "USD", last - dt.timedelta(days=9), 2, D("50.00")),
    ]
    profiles = [Profile("p1", 1, region="EMEA"), Profile("p2", 1, region="APAC")]
    rule = segment_rules.check_rule({"conditions": conditions})
    definition = rule_segments.Definition("x", 1, "x", "", rule, 365)
    fx = FxRates(base="USD", rates={})
    as_of = dt.date(2091, 6, 30)
    for full in (False, True):
        store = FakeStore(profiles, sales)
        found = asyncio.run(
            rule_segments.membership(
                store,  # type: ignore[arg-type]
                fx,
                definition=definition,
                as_of=as_of,
                full=full,
            )
        )
        assert found.ids == expected
        if not full:
            assert store.reads == reads
