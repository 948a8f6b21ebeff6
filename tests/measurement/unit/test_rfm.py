"""RFM segmentation, pure: quintile scores with ties, the segment table, conversion of each
customer's sales to the reporting currency, and the CSV — every value computed by hand."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal as D
from typing import get_args

import pytest

from services.measurement import rfm, segments, segments_api
from services.measurement.rfm import CustomerSales
from services.measurement.warehouse.customers import CustomerCurrencySales, Profile
from shared.events import EventRejected, decode
from shared.money import FxRates

AS_OF = dt.date(2098, 12, 31)


def at(month: int, day: int) -> dt.datetime:
    """A sale time in 2098 (late in the UTC day: recency counts days, not hours)."""
    return dt.datetime(2098, month, day, 23, 30, tzinfo=dt.UTC)


# customer: last sale, orders, revenue; recency = days from the last sale's day to AS_OF
TEN = {
    "c01": (at(12, 30), 10, "1000"),  # recency 1
    "c02": (at(12, 29), 8, "900"),  # 2
    "c03": (at(12, 25), 1, "50"),  # 6
    "c04": (at(12, 20), 3, "300"),  # 11
    "c05": (at(11, 30), 7, "500"),  # 31
    "c06": (at(11, 30), 2, "120"),  # 31 (tied with c05)
    "c07": (at(10, 1), 6, "700"),  # 91
    "c08": (at(6, 1), 5, "400"),  # 213
    "c09": (at(3, 1), 1, "40"),  # 305
    "c10": (at(1, 15), 2, "60"),  # 350
}

# worst first, a customer's score is 1 + 5 * (customers strictly worse) // 10:
# recency  350 305 213 91 31 31 11 6 2 1  → worse 0 1 2 3 4 4 6 7 8 9 → 1 1 2 2 3 3 4 4 5 5
# orders   1 1 2 2 3 5 6 7 8 10 (c03 c09 c06 c10 c04 c08 c07 c05 c02 c01)
#          → worse 0 0 2 2 4 5 6 7 8 9 → 1 1 2 2 3 3 4 4 5 5
# revenue  40 50 60 120 300 400 500 700 900 1000 → 1 1 2 2 3 3 4 4 5 5
EXPECTED = {
    # id: (recency, R, F, M, segment)
    "c01": (1, 5, 5, 5, "champions"),
    "c02": (2, 5, 5, 5, "champions"),
    "c03": (6, 4, 1, 1, "new"),
    "c04": (11, 4, 3, 3, "promising"),
    "c05": (31, 3, 4, 4, "loyal"),
    "c06": (31, 3, 2, 2, "need_attention"),
    "c07": (91, 2, 4, 4, "at_risk"),
    "c08": (213, 2, 3, 3, "at_risk"),
    "c09": (305, 1, 1, 1, "hibernating"),
    "c10": (350, 1, 2, 2, "hibernating"),
}


def ten() -> list[CustomerSales]:
    return [
        CustomerSales(customer_id=c, last_sale_at=last, orders=n, revenue=D(r))
        for c, (last, n, r) in TEN.items()
    ]


def test_ten_customers_are_scored_by_quintile_and_segmented() -> None:
    scored = rfm.score(reversed(ten()), as_of=AS_OF)  # input order does not matter
    got = {
        c.customer_id: (c.recency_days, c.r_score, c.f_score, c.m_score, c.segment) for c in scored
    }
    assert got == EXPECTED
    assert [c.customer_id for c in scored] == sorted(TEN)
    assert {c.customer_id: (c.frequency, c.monetary) for c in scored}["c05"] == (7, D("500"))
    assert rfm.summary(scored) == {
        "segments": {
            "champions": 2,
            "loyal": 1,
            "new": 1,
            "promising": 1,
            "at_risk": 2,
            "hibernating": 2,
            "need_attention": 1,
        },
        "r_scores": dict.fromkeys("12345", 2),
        "f_scores": dict.fromkeys("12345", 2),
        "m_scores": dict.fromkeys("12345", 2),
    }


def test_ties_share_the_lower_positions_score_whatever_the_order() -> None:
    values = {"a": 5, "b": 5, "c": 5, "d": 9}
    # worse: a, b, c 0 → 1; d 3 → 1 + 15 // 4 = 4
    assert rfm.quintile_scores(values, higher_is_better=True) == {"a": 1, "b": 1, "c": 1, "d": 4}
    flipped = dict(reversed(values.items()))
    assert rfm.quintile_scores(flipped, higher_is_better=True) == {"a": 1, "b": 1, "c": 1, "d": 4}
    # lower is better: d is the worst (0), a, b, c have one worse → 1 + 5 // 4 = 2
    assert rfm.quintile_scores(values, higher_is_better=False) == {"a": 2, "b": 2, "c": 2, "d": 1}
    assert rfm.quintile_scores({"x": 1, "y": 1}, higher_is_better=True) == {"x": 1, "y": 1}
    assert rfm.quintile_scores({"only": 3}, higher_is_better=True) == {"only": 1}
    assert rfm.quintile_scores({}, higher_is_better=True) == {}


def test_the_segment_table_covers_every_score_and_the_api_lists_its_segments() -> None:
    for r in rfm.SCORES:
        for f in rfm.SCORES:
            for m in rfm.SCORES:
                assert rfm.segment_of(r, f, m) in rfm.SEGMENTS
    assert rfm.segment_of(5, 5, 3) == "loyal"  # champions need the spend too
    assert rfm.segment_of(3, 4, 1) == "loyal"
    assert rfm.segment_of(2, 5, 5) == "at_risk"
    assert get_args(segments_api.SegmentName) == rfm.SEGMENTS


def test_recency_counts_utc_days() -> None:
    late = dt.datetime(2098, 12, 31, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # 30th UTC
    (one,) = rfm.score(
        [CustomerSales(customer_id="x", last_sale_at=late, orders=1, revenue=D(1))], as_of=AS_OF
    )
    assert one.recency_days == 1


def test_the_window_is_the_days_ending_with_as_of() -> None:
    window = segments.Window(as_of=AS_OF, days=365)
    assert window.start == dt.datetime(2098, 1, 1, tzinfo=dt.UTC)
    assert window.end == dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def test_amounts_convert_and_a_customer_without_a_rate_is_left_unscored() -> None:
    fx = FxRates(base="USD", rates={"EUR": D("1.10")})
    rows = [
        CustomerCurrencySales("a", "USD", at(12, 1), 2, D("100.00")),
        CustomerCurrencySales("a", "EUR", at(12, 20), 1, D("10.01")),  # 11.011 USD
        CustomerCurrencySales("b", "USD", at(6, 1), 1, D("50.00")),
        CustomerCurrencySales("c", "JPY", at(6, 1), 1, D("500")),
    ]
    found = segments.segment(
        rows, window=segments.Window(as_of=AS_OF, days=365), currency="USD", fx=fx
    )
    assert [(c.customer_id, c.recency_days, c.frequency, c.monetary) for c in found.customers] == [
        ("a", 11, 3, D("111.01")),
        ("b", 213, 1, D("50.00")),
    ]
    assert found.unconverted == ["c"]
    header = found.header()
    assert header["missing_rates"] == ["JPY"] and header["fx_rates"] == {"EUR": D("1.10")}
    assert (header["customers"], header["unconverted_customers"]) == (2, 1)


def test_members_and_csv_carry_the_profile() -> None:
    fx = FxRates(base="USD", rates={})
    rows = [
        CustomerCurrencySales("a", "USD", at(12, 30), 2, D("100.00")),
        CustomerCurrencySales("b", "USD", at(6, 1), 1, D("50.00")),
    ]
    found = segments.segment(
        rows, window=segments.Window(as_of=AS_OF, days=365), currency="USD", fx=fx
    )
    profile = Profile(
        customer_id="a",
        version=3,
        industry="=retail",  # a formula-like cell is quoted
        size="large",
        attributes={"z": "1", "tier": "gold"},
    )
    members = segments.members(found, segment=None, profiles={"a": profile})
    assert members[0]["profile"] == {
        "version": 3,
        "industry": "=retail",
        "size": "large",
        "region": None,
        "age_band": None,
        "attributes": {"tier": "gold", "z": "1"},
    }
    assert members[1]["profile"] is None
    assert [
        m["customer_id"] for m in segments.members(found, segment="hibernating", profiles={})
    ] == ["b"]
    assert segments.members(found, segment="loyal", profiles={}) == []
    text = segments.render_csv(members, currency="USD")
    assert text.split("\r\n") == [
        ",".join(segments.CSV_COLUMNS),
        "a,need_attention,1,2,100.00,USD,3,3,3,3,'=retail,large,,,"
        '"{""tier"": ""gold"", ""z"": ""1""}"',
        "b,hibernating,213,1,50.00,USD,1,1,1,,,,,,",
        "",
    ]


def _profile_message(data: dict[str, object]) -> str:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "customer.profile_updated",
            "occurred_at": "2098-01-01T00:00:00Z",
            "source": "crm",
            "data": data,
        }
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"customer_id": "c", "version": 0}, "data.version"),
        ({"customer_id": "c"}, "data.version"),
        ({"version": 1}, "data.customer_id"),
        ({"customer_id": "c", "version": 1, "size": "huge"}, "data.size"),
        ({"customer_id": "c", "version": 1, "attributes": {"Bad Key": "x"}}, "data.attributes"),
        ({"customer_id": "c", "version": 1, "attributes": {"k": ""}}, "data.attributes.k"),
        (
            {"customer_id": "c", "version": 1, "attributes": {f"k{n}": "v" for n in range(33)}},
            "data.attributes",
        ),
        ({"customer_id": "c", "version": 1, "tier": "gold"}, "data.tier"),
    ],
)
def test_a_malformed_profile_is_rejected_naming_the_field(
    data: dict[str, object], reason: str
) -> None:
    with pytest.raises(EventRejected) as rejected:
        decode(_profile_message(data), topic="mrm.customers.v1")
    assert rejected.value.reason.startswith(reason)


def test_a_profile_decodes_with_optional_fields_absent() -> None:
    _, data = decode(
        _profile_message({"customer_id": " c ", "version": 2}), topic="mrm.customers.v1"
    )
    assert data.model_dump() == {
        "customer_id": "c",
        "version": 2,
        "industry": None,
        "size": None,
        "region": None,
        "age_band": None,
        "attributes": {},
    }


def test_the_segment_names_other_services_check_are_measurements() -> None:
    """Planning refuses a campaign aimed at ``rfm:<name>`` unless ``name`` is one of
    ``shared.segments.RFM_SEGMENTS``: the segments measurement computes, in its table order."""
    from shared.segments import RFM_SEGMENTS, check_target_segment

    assert rfm.SEGMENTS == RFM_SEGMENTS
    assert get_args(segments_api.SegmentName) == RFM_SEGMENTS
    for name in RFM_SEGMENTS:
        assert check_target_segment(f"rfm:{name}") == f"rfm:{name}"
    assert check_target_segment("lapsed-vip") == "lapsed-vip"  # a rule-based segment's id
    with pytest.raises(ValueError, match="unknown RFM segment 'rfm:vip'"):
        check_target_segment("rfm:vip")
