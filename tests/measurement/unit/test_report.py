"""Plan report rendering (pure): CSV rows and cells, HTML structure, charts, escaping, buckets."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET
from decimal import Decimal as D
from typing import Any

import pytest

from services.measurement import domain, report, report_charts, report_html

SVG = "{http://www.w3.org/2000/svg}"
MARCH = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2027, 3, 20, 9, 30, tzinfo=dt.UTC)
EVIL = "<script>alert('x')</script> & \"Co\""


def campaign(cid: str, name: str, channel: str, **measures: Any) -> dict[str, Any]:
    """A breakdown row as warehouse.plan_kpis builds it."""
    kpis = domain.compute_kpis(domain.Measures(**measures), as_of=NOW)
    identity = {"campaign_id": cid, "name": name, "channel": channel, "brand": None}
    return {**identity, "status": "active", **kpis, "ckpi": D("87.5")}


def funnel(*counts: int) -> tuple[int, ...]:
    """``reached`` for the 7 funnel stages."""
    return counts + (0,) * (len(domain.FUNNEL) - len(counts))


def sample_plan(*, start: dt.datetime | None = MARCH, end: dt.datetime | None = APRIL) -> dict:
    """Three campaigns: a profitable one, a loss-making one (negative ROMI), one with no data."""
    a = campaign(
        "A",
        "Spring search",
        "search",
        spend=D("100.00"),
        impressions=10_000,
        clicks=300,
        reached=funnel(20, 10, 6, 4, 3, 2, 1),
        revenue=D("1000.00"),
        gross_profit=D("400.00"),
        orders=2,
        buyers=1,
        new_customers=1,
        ltv_customers=1,
        ltv_gross_profit=D("400.00"),
        budget=D("1500.00"),
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 3, 31),
    )
    b = campaign(
        "B",
        EVIL,
        "search",
        spend=D("300.00"),
        reached=funnel(40, 30),
        revenue=D("100.00"),
        gross_profit=D("50.00"),
        orders=1,
        buyers=1,
        budget=D("200.00"),
    )
    c = campaign("C", "Dormant", "social", budget=D("500.00"))
    total = domain.compute_kpis(
        domain.Measures(
            spend=D("400.00"),
            impressions=10_000,
            clicks=300,
            reached=funnel(60, 40, 6, 4, 3, 2, 1),
            revenue=D("1100.00"),
            gross_profit=D("450.00"),
            orders=3,
            buyers=2,
            new_customers=1,
            budget=D("2200.00"),
        ),
        as_of=NOW,
    )
    return {
        "plan_id": "P-1",
        "name": "Plan 2027",
        "status": "approved",
        "currency": "EUR",
        "start": start,
        "end": end,
        **total,
        "ckpi": D("91.25"),
        "campaigns": [a, b, c],
    }


DAILY = [
    {"day": dt.date(2027, 3, 2), "campaign_id": "A", "spend": D("60.00")},
    {"day": dt.date(2027, 3, 2), "campaign_id": "B", "spend": D("100.00")},
    {"day": dt.date(2027, 3, 9), "campaign_id": "A", "spend": D("40.00")},
    {"day": dt.date(2027, 3, 15), "campaign_id": "B", "spend": D("200.00")},
]


def parse_html(page: str) -> ET.Element:
    """The report is well-formed XML as well as HTML, so ElementTree can walk it."""
    return ET.fromstring(page.split("\n", 1)[1])  # drop <!DOCTYPE html>


def charts(root: ET.Element) -> dict[str, ET.Element]:
    """data-chart name → its <svg>."""
    return {svg.get("data-chart", ""): svg for svg in root.iter(f"{SVG}svg")}


def drawn_rects(svg: ET.Element) -> list[ET.Element]:
    """Rects with a positive width and height."""
    return [
        r
        for r in svg.iter(f"{SVG}rect")
        if float(r.get("width", 0)) > 0 and float(r.get("height", 0)) > 0
    ]


# ---------------------------------------------------------------------------------------------


def test_the_catalogue_covers_every_kpi_the_domain_computes() -> None:
    kpis = domain.compute_kpis(domain.Measures(), as_of=NOW)
    top_level = {c.path[0] for c in report.COLUMNS}
    assert set(kpis) | {"ckpi"} == top_level
    paths = {c.path for c in report.COLUMNS}
    assert {("funnel", s) for s in domain.FUNNEL} <= paths
    assert {("conversions", name) for name, _, _ in domain.CONVERSIONS} <= paths
    assert len({c.key for c in report.COLUMNS}) == len(report.COLUMNS)


def test_csv_has_a_header_a_row_per_campaign_and_a_plan_total() -> None:
    text = report.render_csv(plan=sample_plan())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.count("\r\n") == 5  # header + 3 campaigns + total
    assert [r["scope"] for r in rows] == ["campaign", "campaign", "campaign", "plan"]
    assert [r["campaign_id"] for r in rows] == ["A", "B", "C", ""]
    a, b, c, total = rows
    assert a["period_from"] == "2027-03-01T00:00:00Z" and a["period_to"] == "2027-04-01T00:00:00Z"
    assert a["spend"] == "100.00" and a["budget"] == "1500.00" and a["cpl"] == "10.00"
    assert a["ctr"] == "0.030000" and a["funnel_visitor"] == "20" and a["funnel_lead"] == "10"
    assert a["visitor_to_lead"] == "0.500000" and a["romi"] == "3.000000"
    assert b["romi"] == "-0.833333" and b["budget_utilisation"] == "1.500000"
    assert b["name"] == EVIL  # text is kept verbatim (quoted by csv where needed)
    # undefined (division by zero) is empty, never "None", "nan" or "inf"
    assert c["cpl"] == "" and c["romi"] == "" and c["spend"] == "0.00"
    assert total["name"] == "Plan 2027" and total["spend"] == "400.00"
    assert total["budget"] == "2200.00" and total["leads"] == "40" and total["ckpi"] == "91.25"
    assert total["channel"] == "" and total["currency"] == "EUR"
    assert "E-" not in text and "E+" not in text


def test_csv_cells_are_plain_and_formula_safe() -> None:
    plan = sample_plan(start=None, end=None)
    plan["campaigns"][0]["name"] = "=HYPERLINK(1)"
    plan["campaigns"][0]["ltv_cac"] = D("1E-7")
    rows = list(csv.DictReader(io.StringIO(report.render_csv(plan=plan))))
    assert rows[0]["name"] == "'=HYPERLINK(1)"
    assert rows[0]["ltv_cac"] == "0.0000001"
    assert rows[0]["period_from"] == "" and rows[0]["period_to"] == ""


def test_html_is_self_contained_escaped_and_titled_with_the_period() -> None:
    page = report_html.render_html(plan=sample_plan(), daily_spend=DAILY, generated_at=NOW)
    root = parse_html(page)  # well-formed
    period = "[2027-03-01 00:00 UTC, 2027-04-01 00:00 UTC)"
    title = root.find("head/title")
    assert title is not None and title.text == f"Plan report: Plan 2027 {period}"
    assert period in "".join(root.find("body/header").itertext())  # type: ignore[union-attr]
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert "://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;Co&quot;" in page
    csp = root.find("head/meta[@http-equiv='Content-Security-Policy']")
    assert csp is not None and "default-src 'none'" in csp.get("content", "")


def test_html_draws_every_chart_with_sized_bars() -> None:
    root = parse_html(
        report_html.render_html(plan=sample_plan(), daily_spend=DAILY, generated_at=NOW)
    )
    svgs = charts(root)
    assert set(svgs) == {
        "spend-vs-budget",
        "spend-over-time",
        "cumulative-spend",
        "funnel",
        "campaign-romi",
        "campaign-cpl",
        "campaign-cac",
        "channel-cpl",
        "channel-romi",
    }
    # budget bars for 3 campaigns, spend bars for the 2 that spent
    assert len(drawn_rects(svgs["spend-vs-budget"])) == 5
    over = [r for r in svgs["spend-vs-budget"].iter(f"{SVG}rect") if "over" in r.get("class", "")]
    assert len(over) == 1  # B spent 300 of 200
    assert len(drawn_rects(svgs["spend-over-time"])) == 4  # (day, campaign) pairs with spend
    assert len(drawn_rects(svgs["funnel"])) == 7
    romi = drawn_rects(svgs["campaign-romi"])
    assert len(romi) == 2 and sum("negative" in r.get("class", "") for r in romi) == 1
    assert "n/a" in "".join(svgs["campaign-romi"].itertext())  # C: no spend, ROMI undefined
    assert len(drawn_rects(svgs["campaign-cpl"])) == 2
    assert len(drawn_rects(svgs["campaign-cac"])) == 1
    assert len(drawn_rects(svgs["channel-cpl"])) == 1  # social has no leads
    paths = [p.get("d", "") for p in svgs["cumulative-spend"].iter(f"{SVG}path")]
    assert len(paths) == 4 and all(d.count("L") == 31 for d in paths)  # 3 campaigns + total


def test_every_kpi_table_lists_each_kpi_per_campaign_and_the_plan_total() -> None:
    root = parse_html(
        report_html.render_html(plan=sample_plan(), daily_spend=DAILY, generated_at=NOW)
    )
    table = next(t for t in root.iter("table") if t.get("class") == "kpis")
    header = ["".join(th.itertext()) for th in table.find("thead/tr")]  # type: ignore[union-attr]
    assert header == ["KPI", "Spring search", EVIL, "Dormant", "Plan total"]
    rows = {
        "".join(tr[0].itertext()): ["".join(td.itertext()) for td in tr[1:]]
        for tr in table.iter("tr")
        if tr.get("class") != "section" and tr.find("td") is not None
    }
    assert set(rows) == {c.label for c in report.COLUMNS}
    assert rows["Spend"] == ["100.00", "300.00", "0.00", "400.00"]
    assert rows["ROMI"] == ["300.00 %", "-83.33 %", "—", "12.50 %"]
    assert rows["Reached customer"] == ["1", "0", "0", "1"]


def test_channel_efficiency_divides_summed_numerators_by_summed_denominators() -> None:
    rows = [
        {"channel": "search", "spend": D("100"), "leads": 1, "gross_profit": D("50")},
        {"channel": "search", "spend": D("300"), "leads": 9, "gross_profit": D("600")},
        {"channel": "email", "spend": D("0"), "leads": 0, "gross_profit": D("0")},
    ]
    email, search = report.channel_efficiency(campaigns=rows)
    assert search["campaigns"] == 2 and search["spend"] == D("400") and search["leads"] == 10
    assert search["cpl"] == D("40.00")  # not the mean of 100 and 33.33
    assert search["romi"] == D("0.625000")
    assert email["cpl"] is None and email["romi"] is None


@pytest.mark.parametrize(
    ("start", "end", "unit", "buckets"),
    [
        (MARCH, APRIL, "day", 31),
        (None, None, "day", 14),  # the days with data: Mar 2 .. Mar 15
        (
            dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2027, 7, 1, tzinfo=dt.UTC),
            "week",
            27,
        ),
        (dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 6, 1, tzinfo=dt.UTC), "day", 14),
    ],
)
def test_spend_series_buckets(start, end, unit, buckets) -> None:  # type: ignore[no-untyped-def]
    series = report.spend_series(daily=DAILY, campaign_ids=["A", "B", "C"], start=start, end=end)
    assert series is not None and series.unit == unit and len(series.starts) == buckets
    assert sum(series.totals()) == D("400.00")
    assert sum(series.values["C"]) == 0


def test_spend_series_by_month_over_long_periods() -> None:
    daily = [
        {"day": dt.date(2025, 1, 31), "campaign_id": "A", "spend": D("1")},
        {"day": dt.date(2027, 2, 1), "campaign_id": "A", "spend": D("2")},
    ]
    series = report.spend_series(daily=daily, campaign_ids=["A"], start=None, end=None)
    assert series is not None and series.unit == "month"
    assert series.starts[0] == dt.date(2025, 1, 1) and series.starts[-1] == dt.date(2027, 2, 1)
    assert len(series.starts) == 26 and series.values["A"][0] == 1 and series.values["A"][-1] == 2


def test_a_plan_without_campaigns_or_spend_still_renders() -> None:
    plan = {
        "plan_id": "P-empty",
        "name": None,
        "status": None,
        "currency": None,
        "start": None,
        "end": None,
        **domain.compute_kpis(domain.Measures(), as_of=NOW),
        "ckpi": None,
        "campaigns": [],
    }
    root = parse_html(report_html.render_html(plan=plan, daily_spend=[], generated_at=NOW))
    text = "".join(root.itertext())
    assert "Plan report: P-empty [start of data, end of data)" in text
    assert "No campaigns" in text and "No spend in the period" in text
    assert "No leads in the period" in text
    rows = list(csv.reader(io.StringIO(report.render_csv(plan=plan))))
    assert len(rows) == 2 and rows[1][0] == "plan"


def test_display_formats() -> None:
    assert report.display(None, "money") == "—"
    assert report.display(D("1234567.5"), "money") == "1,234,567.50"
    assert report.display(D("0.012345"), "percent") == "1.23 %"
    assert report.display(12345, "count") == "12,345"
    assert report.display(D("3.5"), "multiple") == "3.50×"


def test_the_budget_label_stays_inside_the_cumulative_chart() -> None:
    series = report.SpendSeries(
        unit="day",
        starts=(dt.date(2027, 3, 1), dt.date(2027, 3, 2)),
        values={"c1": [D("10000"), D("5000")]},
    )
    for budget in (D("60000"), D("20000")):  # the top of the scale, and below it
        svg = ET.fromstring(
            report_charts.cumulative_spend_chart(
                series=series, budget=budget, names={}, colors={}, unit="day"
            )
        )
        [line] = [x for x in svg.iter(f"{SVG}line") if x.get("class") == "budget-line"]
        label = next(t for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("budget"))
        top = float(label.get("y", "0")) - 12  # a 12 px label's baseline and cap height
        assert top >= 0, (budget, label.get("y"))
        assert abs(float(label.get("y", "0")) - float(line.get("y1", "0"))) <= 16
