"""The plan report's budget tree and sales-target progress on the real service (Tansu + chDB):
planning's events published, ingested, and the HTML's rows checked against figures by hand.

Everything happens in 2018, which no other test writes, so the company unit's "all sales" are
this module's; ids carry a fresh ``uid``.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
import uuid
from decimal import Decimal as D

import httpx
import pytest

from shared.events.ingest import SaleCompleted, SpendRecorded
from shared.events.planning import (
    BudgetLineRemoved,
    BudgetLineSet,
    CampaignPlanned,
    CampaignStatusChanged,
    PlanCreated,
    PlanUpdated,
    SalesTargetSet,
    SalesUnitSet,
)
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration
TOKEN = "t-report-sections-viewer"
PERIOD = (dt.date(2018, 1, 1), dt.date(2018, 3, 31))
FEBRUARY = {"from": "2018-02-01T00:00:00Z", "to": "2018-03-01T00:00:00Z"}


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2018, month, day, 10, tzinfo=dt.UTC)


def _plan_events(uid: str) -> list[tuple[object, dt.datetime | None]]:
    """Plan P (cap 1000, raised to 1200), lines Brand A (600, then 700 as version 2) → A at
    RetailCo (300), Brand B (90), Temp (50, removed); campaigns c1 approved then active (200
    from RetailCo, Jan), c2 draft (100 from Brand A, Feb), c3 approved (150 from the plan, Mar),
    c4 approved then cancelled (80 from Brand B); spend c1 50 (Jan) + 20 (Feb), c2 10 (Feb),
    c3 5 (Mar), c4 8 (Jan)."""
    plan_id = f"P-{uid}"
    plan = {
        "plan_id": plan_id,
        "name": "Plan <2018>",
        "period_start": PERIOD[0],
        "period_end": PERIOD[1],
        "currency": "USD",
        "owner": "cmo",
    }

    def line(key: str, name: str, amount: str, **extra: object) -> BudgetLineSet:
        parent = extra.pop("parent", None)
        return BudgetLineSet(
            line_id=f"{key}-{uid}",
            plan_id=plan_id,
            parent_id=f"{parent}-{uid}" if parent else None,
            name=name,
            amount=D(amount),
            currency="USD",
            **extra,  # type: ignore[arg-type]
        )

    def campaign(key: str, line_key: str | None, budget: str, months: tuple[int, int]) -> object:
        end = dt.date(2018, months[1], 28 if months[1] == 2 else 31)
        return CampaignPlanned(
            campaign_id=f"{key}-{uid}",
            plan_id=plan_id,
            name=f"Campaign {key}",
            channel="search",
            owner="ann",
            budget=D(budget),
            currency="USD",
            start_date=dt.date(2018, months[0], 1),
            end_date=end,
            status="draft" if key == "c2" else "approved",
            line_id=f"{line_key}-{uid}" if line_key else None,
        )

    def moved(key: str, status: str) -> CampaignStatusChanged:
        return CampaignStatusChanged(
            campaign_id=f"{key}-{uid}",
            plan_id=plan_id,
            status=status,  # type: ignore[arg-type]
            previous_status="approved",
            version=2,
        )

    def spend(key: str, amount: str, when: dt.datetime) -> tuple[object, dt.datetime]:
        data = SpendRecorded(
            campaign_id=f"{key}-{uid}", channel="search", amount=D(amount), currency="USD"
        )
        return data, when

    phased = {"2018-01": D("100.00"), "2018-02": D("200.00"), "2018-03": D("300.00")}
    return [
        (PlanCreated(**plan, budget=D("1000.00")), at(1, 1)),  # type: ignore[arg-type]
        (PlanUpdated(**plan, budget=D("1200.00")), at(1, 2)),  # type: ignore[arg-type]
        (line("la", "Brand A <retail>", "600.00", brand="A", months=phased), None),
        (line("lr", "A at RetailCo", "300.00", parent="la", partner="RetailCo"), None),
        (line("lb", "Brand B", "90.00", brand="B"), None),
        (line("lx", "Temp", "50.00"), None),
        (BudgetLineRemoved(line_id=f"lx-{uid}", plan_id=plan_id), None),
        (
            line(
                "la",
                "Brand A <retail>",
                "700.00",
                brand="A",
                months={**phased, "2018-02": D("300.00")},
                version=2,
            ),
            None,
        ),
        (campaign("c1", "lr", "200.00", (1, 1)), None),
        (campaign("c2", "la", "100.00", (2, 2)), None),
        (campaign("c3", None, "150.00", (3, 3)), None),
        (campaign("c4", "lb", "80.00", (1, 3)), None),
        (moved("c1", "active"), None),
        (moved("c4", "cancelled"), None),
        spend("c1", "50.00", at(1, 10)),
        spend("c1", "20.00", at(2, 10)),
        spend("c2", "10.00", at(2, 11)),
        spend("c3", "5.00", at(3, 10)),
        spend("c4", "8.00", at(1, 11)),
    ]


def _sales_events(uid: str) -> list[tuple[object, dt.datetime | None]]:
    """Company → region R → rep A; targets: February company 1000 and region 400, Q1 company
    3000, April company 500 (outside the plan); sales 300 by rep A in R (Feb), 200 by no unit
    (Feb), 100 in R (Jan)."""
    units = [("co", "company", None, None), ("r", "region", "co", "R"), ("a", "rep", "r", "A")]
    events: list[tuple[object, dt.datetime | None]] = [
        (
            SalesUnitSet(
                unit_id=f"{key}-{uid}",
                parent_id=f"{parent}-{uid}" if parent else None,
                kind=kind,  # type: ignore[arg-type]
                name=f"Unit {key}",
                owner="cmo",
                code=f"{code}-{uid}" if code else None,
            ),
            None,
        )
        for key, kind, parent, code in units
    ]
    targets = [
        ("co", "2018-02", dt.date(2018, 2, 1), dt.date(2018, 2, 28), "1000.00"),
        ("r", "2018-02", dt.date(2018, 2, 1), dt.date(2018, 2, 28), "400.00"),
        ("co", "2018-Q1", dt.date(2018, 1, 1), dt.date(2018, 3, 31), "3000.00"),
        ("co", "2018-04", dt.date(2018, 4, 1), dt.date(2018, 4, 30), "500.00"),
    ]
    events += [
        (
            SalesTargetSet(
                target_id=f"t-{key}-{period}-{uid}",
                unit_id=f"{key}-{uid}",
                period=period,
                period_start=start,
                period_end=end,
                amount=D(amount),
                currency="USD",
                set_by="cmo",
            ),
            None,
        )
        for key, period, start, end, amount in targets
    ]
    sales = [
        ("300.00", {"rep_id": f"A-{uid}", "region": f"R-{uid}"}, at(2, 10)),
        ("200.00", {}, at(2, 12)),
        ("100.00", {"region": f"R-{uid}"}, at(1, 5)),
    ]
    events += [
        (
            SaleCompleted(
                order_id=f"o{n}-{uid}",
                customer_id=f"k{n}-{uid}",
                campaign_id=None,
                amount=D(amount),
                currency="USD",
                **units_of,  # type: ignore[arg-type]
            ),
            when,
        )
        for n, (amount, units_of, when) in enumerate(sales)
    ]
    return events


@pytest.fixture(scope="module")
def uid(kafka_bootstrap: str) -> str:
    """The module's plan, lines, campaigns, spend, sales units, targets and sales, published
    once."""
    uid = uuid.uuid4().hex[:10]
    with EventPublisher(kafka_bootstrap, source="test") as events:
        for data, when in [*_plan_events(uid), *_sales_events(uid)]:
            events.publish(data, occurred_at=when)  # type: ignore[arg-type]
    return uid


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    """The measurement service on the session's broker and chDB engine, with a viewer token."""
    return measurement_api(bearer=TOKEN, currency="USD")


_ROW = re.compile(r'<tr [^>]*data-(?:node|unit)="([^"]*)"[^>]*>(.*?)</tr>', re.S)
_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)


def rows(page: str, table: str) -> dict[str, list[str]]:
    """The cells of the table with this class, by row id (``data-node`` or, with the period,
    ``data-unit``: ``unit@period``)."""
    tables = re.findall(rf'<table class="{table}">(.*?)</table>', page, re.S)
    out = {}
    for body in tables:
        for match in _ROW.finditer(body):
            period = re.search(r'data-period="([^"]*)"', match.group(0))
            key = match.group(1) + (f"@{period.group(1)}" if period else "")
            out[key] = [html.unescape(c) for c in _CELL.findall(match.group(2))]
    return out


def report_when_ingested(client: httpx.Client, uid: str, **params: str) -> str:
    """The HTML report once the plan's and the sales' events are all queryable."""
    deadline, page = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/reports/plans/P-{uid}", params=params)
        if response.status_code == 200:
            page = response.text
            tree, sales = rows(page, "budget-tree"), rows(page, "sales-progress")
            plan, la = tree.get("plan", []), tree.get(f"la-{uid}", [])
            company = sales.get(f"co-{uid}@2018-Q1", [])
            if (
                plan[:1] == ["Plan <2018>"]  # the plan's KPIs (read first) know the plan too
                and plan[6:] == ["1,200.00", "350.00", "93.00", "1,107.00"]
                and la[6:7] == ["700.00"]
                and f"lx-{uid}" not in tree
                and company[4:5] == ["600.00"]
                and sales.get(f"co-{uid}@2018-02", [])[4:5] == ["500.00"]
            ):
                return page
        time.sleep(0.25)
    raise AssertionError(f"the report never showed every event; last page:\n{page}")


def test_report_shows_the_budget_tree_and_the_sales_progress(
    measurement: httpx.Client, uid: str
) -> None:
    page = report_when_ingested(measurement, uid)
    tree = rows(page, "budget-tree")
    assert list(tree) == [
        "plan",
        f"c3-{uid}",
        f"la-{uid}",
        f"c2-{uid}",
        f"lr-{uid}",
        f"c1-{uid}",
        f"lb-{uid}",
        f"c4-{uid}",
    ]  # the removed line is gone; campaigns under the node they draw from
    # name, kind, brand, channel, region, partner | planned, committed, actual, remaining
    assert tree["plan"][:2] == ["Plan <2018>", "plan"]
    assert tree[f"la-{uid}"][:6] == ["Brand A <retail>", "line", "A", "", "", ""]
    # c1 commits 200 through RetailCo, the draft c2 nothing; spend 70 + 10
    assert tree[f"la-{uid}"][6:] == ["700.00", "200.00", "80.00", "620.00"]
    assert tree[f"lr-{uid}"][5:] == ["RetailCo", "300.00", "200.00", "70.00", "230.00"]
    assert tree[f"lb-{uid}"][6:] == ["90.00", "0.00", "8.00", "82.00"]  # c4 was cancelled
    assert tree[f"c1-{uid}"][1] == "campaign · active"
    assert tree[f"c4-{uid}"][1:2] + tree[f"c4-{uid}"][6:] == [
        "campaign · cancelled",
        "—",
        "0.00",
        "8.00",
        "—",
    ]
    assert tree[f"c3-{uid}"][6:] == ["—", "150.00", "5.00", "—"]
    months = rows(page, "budget-months")
    # the cap evenly: 400 a month; Jan: c1 committed 200, spend 50 + 8; Mar: c3 150, spend 5
    assert months["plan"][1:] == [
        *("400.00", "200.00", "58.00", "342.00"),
        *("400.00", "0.00", "30.00", "370.00"),
        *("400.00", "150.00", "5.00", "395.00"),
    ]
    assert months[f"la-{uid}"][5:9] == ["300.00", "0.00", "30.00", "270.00"]  # version 2's Feb
    sales = rows(page, "sales-progress")
    # the periods are over: forecast = sales; at risk below 90 %
    assert sales[f"co-{uid}@2018-Q1"][2:] == [
        "USD",
        "3,000.00",
        "600.00",
        "20.00 %",
        "600.00",
        "20.00 %",
        "at risk",
    ]
    assert sales[f"co-{uid}@2018-02"][3:] == [
        "1,000.00",
        "500.00",
        "50.00 %",
        "500.00",
        "50.00 %",
        "at risk",
    ]
    assert sales[f"r-{uid}@2018-02"][:1] + sales[f"r-{uid}@2018-02"][3:6] == [
        "Unit r",
        "400.00",
        "300.00",
        "75.00 %",
    ]
    assert sales[f"a-{uid}@2018-02"][3:5] == ["—", "300.00"]
    assert sales[f"r-{uid}@2018-Q1"][3:5] == ["—", "400.00"]
    assert f"co-{uid}@2018-04" not in sales  # April lies outside the plan's period


def test_report_of_a_month_shows_that_month(measurement: httpx.Client, uid: str) -> None:
    report_when_ingested(measurement, uid)
    page = measurement.get(f"/api/v1/reports/plans/P-{uid}", params=FEBRUARY).text
    months = rows(page, "budget-months")
    assert months["plan"][1:] == ["400.00", "0.00", "30.00", "370.00"]
    assert rows(page, "budget-tree")["plan"][6:] == ["1,200.00", "350.00", "93.00", "1,107.00"]
    sales = rows(page, "sales-progress")
    assert {key.split("@")[1] for key in sales if uid in key} == {"2018-02", "2018-Q1"}


def test_a_plan_without_lines_or_targets_says_so(
    measurement: httpx.Client, kafka_bootstrap: str
) -> None:
    plan_id = f"P-bare-{uuid.uuid4().hex[:10]}"
    with EventPublisher(kafka_bootstrap, source="test") as events:
        events.publish(
            PlanCreated(
                plan_id=plan_id,
                name="Bare",
                period_start=dt.date(2017, 5, 1),
                period_end=dt.date(2017, 5, 31),
                currency="USD",
                owner="cmo",
            )
        )
    deadline, response = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        response = measurement.get(f"/api/v1/reports/plans/{plan_id}")
        if response.status_code == 200 and "budget-tree" in response.text:
            break
        time.sleep(0.25)
    assert response is not None and response.status_code == 200, response
    assert "The plan has no budget lines" in response.text
    assert rows(response.text, "budget-tree")["plan"][6:] == ["—", "0.00", "0.00", "—"]
    assert "No sales targets for a period overlapping 2017-05-01 – 2017-05-31." in response.text
