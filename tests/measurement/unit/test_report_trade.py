"""The plan report's brand, partner and segment sections (pure): which rows, which cells, the
plan's spend per brand, empty states — every figure by hand."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as D
from typing import Any

from services.measurement import report_html, report_trade

DAYS = (dt.date(2027, 3, 1), dt.date(2027, 3, 31))


def cells(page: str, row: str) -> list[str]:
    """The cells of the row ``data-row=row`` (the name first), unescaped."""
    found = re.search(rf'<tr data-row="{re.escape(row)}">(.*?)</tr>', page, re.S)
    assert found, f"no row {row!r}"
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", found[1])]


def sales_row(value: str | None, orders: int, revenue: str, **more: Any) -> dict[str, Any]:
    return {
        "value": value,
        "orders": orders,
        "revenue": D(revenue),
        "discounts": D(more.get("discounts", "0")),
        "gross_profit": D(more.get("gross", revenue)),
        "revenue_share": D(more["share"]) if "share" in more else None,
        "spend": D(more["spend"]) if "spend" in more else None,
        "romi": D(more["romi"]) if "romi" in more else None,
    }


def test_plan_spend_by_brand_sums_the_plans_campaigns() -> None:
    campaigns = [
        {"campaign_id": "c1", "brand": "Acme"},
        {"campaign_id": "c2", "brand": "Acme"},
        {"campaign_id": "c3", "brand": None},
        {"campaign_id": "c4", "brand": "Bolt"},  # no spend in the period: listed at zero
    ]
    daily = [
        {"day": dt.date(2027, 3, 1), "campaign_id": "c1", "spend": D("100.00")},
        {"day": dt.date(2027, 3, 2), "campaign_id": "c1", "spend": D("0.50")},
        {"day": dt.date(2027, 3, 1), "campaign_id": "c2", "spend": D("50.00")},
        {"day": dt.date(2027, 3, 3), "campaign_id": "c3", "spend": D("7.00")},
    ]
    assert report_trade.plan_spend_by_brand(campaigns=campaigns, daily=daily) == {
        "Acme": D("150.50"),
        "": D("7.00"),
        "Bolt": D(0),
    }


def test_brand_section_rows_and_the_plans_own_spend() -> None:
    brands = {
        "currency": "USD",
        "rows": [
            sales_row(
                "Acme",
                3,
                "1300.00",
                discounts="10",
                gross="650",
                share="0.65",
                spend="300.00",
                romi="1.166667",
            ),
            sales_row(None, 1, "700.00", share="0.35", spend="0.00"),
        ],
    }
    # Zed: a brand of the plan's campaigns without sales in the period
    plan_spend = {"Acme": D("100.00"), "Zed": D("40.00")}
    page = report_trade.brand_section(brands=brands, plan_spend=plan_spend, days=DAYS)
    assert cells(page, "Acme") == [
        "Acme",
        "3",
        "1,300.00",
        "10.00",
        "650.00",
        "65.00 %",
        "100.00",  # the plan's campaigns of Acme
        "300.00",  # every Acme campaign
        "116.67 %",
    ]
    assert cells(page, "Zed") == ["Zed", "0", "—", "—", "—", "—", "40.00", "—", "—"]
    assert cells(page, "(none)")[:3] == ["(none)", "1", "700.00"]
    order = re.findall(r'data-row="([^"]+)"', page)
    assert order == ["Acme", "Zed", "(none)"]  # by name, the sales without a brand last
    assert 'data-chart="brand-revenue"' in page and "2027-03-01 – 2027-03-31" in page


def test_partner_section_puts_sell_in_next_to_sell_out() -> None:
    total = {
        "currency": "EUR",
        "rows": [
            sales_row("P1", 3, "1400.00", share="0.7"),
            sales_row("P2", 2, "600.00", discounts="40", share="0.3"),
        ],
    }
    sell_in = {"rows": [sales_row("P2", 2, "600.00")]}
    sell_out = {"rows": [sales_row("P1", 2, "1300.00")]}  # one of P1's sales has no kind
    page = report_trade.partner_section(total=total, sell_in=sell_in, sell_out=sell_out, days=DAYS)
    assert cells(page, "P1") == ["P1", "0", "0.00", "2", "1,300.00", "1,400.00", "0.00", "70.00 %"]
    assert cells(page, "P2") == ["P2", "2", "600.00", "0", "0.00", "600.00", "40.00", "30.00 %"]
    assert "in EUR" in page


def test_segment_section_lists_every_segment_with_its_share() -> None:
    overview = {
        "currency": "USD",
        "customers": 3,
        "unconverted_customers": 1,
        "segments": {"champions": 0, "promising": 1, "hibernating": 2},
    }
    page = report_trade.segment_section(overview=overview, days=DAYS)
    assert cells(page, "champions") == ["champions", "0", "0.00 %"]
    assert cells(page, "promising") == ["promising", "1", "33.33 %"]
    assert cells(page, "hibernating") == ["hibernating", "2", "66.67 %"]
    assert "1 left unscored" in page
    empty = report_trade.segment_section(
        overview={"customers": 0, "segments": {"champions": 0}}, days=DAYS
    )
    assert cells(empty, "champions") == ["champions", "0", "—"]


def test_names_are_escaped_and_render_html_places_the_sections() -> None:
    brands = {"currency": "USD", "rows": [sales_row("<b>&", 1, "5.00")]}
    page = report_trade.brand_section(brands=brands, plan_spend={}, days=DAYS)
    assert "<b>&" not in page and "&lt;b&gt;&amp;" in page
    html = report_html.render_html(
        plan={"plan_id": "P", "campaigns": []},
        daily_spend=[],
        generated_at=dt.datetime(2027, 4, 1, tzinfo=dt.UTC),
        trade=report_trade.no_period_section(),
    )
    assert html.index('id="brands"') < html.index("Every KPI")
    assert 'id="brands"' not in report_html.render_html(
        plan={"plan_id": "P", "campaigns": []},
        daily_spend=[],
        generated_at=dt.datetime(2027, 4, 1, tzinfo=dt.UTC),
    )


def _target_group(
    segment: str | None, campaigns: int, **figures: str | int | None
) -> dict[str, Any]:
    return {
        "target_segment": segment,
        "campaigns": [{"campaign_id": f"c{i}"} for i in range(campaigns)],
        **{k: (D(v) if isinstance(v, str) else v) for k, v in figures.items()},
    }


def test_target_segment_section_compares_the_plans_segments() -> None:
    effectiveness = {
        "currency": "USD",
        "segments": [
            _target_group(
                "rfm:champions",
                2,
                spend="1200.00",
                leads=40,
                new_customers=4,
                revenue="3000.00",
                cpl="30.00",
                cac="300.00",
                romi="0.5",
                lead_to_customer="0.1",
            ),
            _target_group(
                None,
                1,
                spend="0.00",
                leads=0,
                new_customers=0,
                revenue="0.00",
                cpl=None,
                cac=None,
                romi=None,
                lead_to_customer=None,
            ),
        ],
    }
    page = report_trade.target_segment_section(effectiveness=effectiveness, days=DAYS)
    assert 'id="target-segments"' in page and "Spend (USD)" in page
    assert cells(page, "rfm:champions") == [
        "rfm:champions", "2", "1,200.00", "40", "4", "3,000.00", "30.00", "300.00",
        "50.00 %", "10.00 %",
    ]  # fmt: skip
    assert cells(page, "(no target)") == [
        "(no target)", "1", "0.00", "0", "0", "0.00", "—", "—", "—", "—",
    ]  # fmt: skip
    empty = report_trade.target_segment_section(effectiveness=None, days=DAYS)
    assert "No campaigns in these days." in empty and "<table>" not in empty
