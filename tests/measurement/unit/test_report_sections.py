"""The plan report's budget tree and sales-target progress sections (pure): the tree's
arithmetic — nested lines, committed by campaign status, actual from spend, remaining, by month —
and the HTML tables, every figure computed by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from html.parser import HTMLParser

from services.measurement import progress, report_html, report_sections
from services.measurement.progress import AtRiskRule, SaleGroup, SalesTarget, Unit
from services.measurement.warehouse.budgets import PlanBudget
from shared.budget import Draw, LineFacts, NodeView, Period
from shared.money import FxRates

Q1 = Period(start=dt.date(2027, 1, 1), end=dt.date(2027, 3, 31), cap=D("1000.00"))
MONTHS = ["2027-01", "2027-02", "2027-03"]


def line(line_id: str, amount: str, parent: str | None = None, **extra: object) -> LineFacts:
    return LineFacts(
        line_id=line_id,
        plan_id="P",
        name=f"Line {line_id}",
        amount=D(amount),
        parent_id=parent,
        **extra,  # type: ignore[arg-type]
    )


def draw(cid: str, line_id: str | None, budget: str, status: str, days: tuple[int, ...]) -> Draw:
    """``days``: start month, start day, end month, end day (2027)."""
    m0, d0, m1, d1 = days
    return Draw(
        campaign_id=cid,
        line_id=line_id,
        budget=D(budget),
        start_date=dt.date(2027, m0, d0),
        end_date=dt.date(2027, m1, d1),
        status=status,
    )


def sample_budget(*, cap: D | None = D("1000.00")) -> PlanBudget:
    """Brand A (600, phased 100/200/300) → A at RetailCo (300, even); Brand B (90, even); a line
    under a parent measurement never heard of (10); six campaigns:

    c1 active, 200 from RetailCo in January, spent 50 (Jan) + 20 (Feb);
    c2 draft, 100 from Brand A in February, spent 10 (Feb) — not committed, still actual;
    c3 completed, 62 from Brand A over Feb 15 – Mar 16 (14 + 16 days), spent 40 (Mar);
    c4 approved, 150 straight from the plan in March, spent 5 (Mar);
    c5 cancelled, 80 from Brand B, spent 8 (Jan);
    c6 approved, 20 from a line measurement does not know, in January: under the plan.
    """
    return PlanBudget(
        plan_id="P",
        currency="USD",
        period=Period(start=Q1.start, end=Q1.end, cap=cap),
        lines=[
            line(
                "la",
                "600.00",
                brand="A",
                months={"2027-01": D("100.00"), "2027-02": D("200.00"), "2027-03": D("300.00")},
            ),
            line("lr", "300.00", "la", partner="RetailCo"),
            line("lb", "90.00", brand="B"),
            line("lo", "10.00", "missing"),
        ],
        draws=[
            draw("c1", "lr", "200.00", "active", (1, 1, 1, 31)),
            draw("c2", "la", "100.00", "draft", (2, 1, 2, 28)),
            draw("c3", "la", "62.00", "completed", (2, 15, 3, 16)),
            draw("c4", None, "150.00", "approved", (3, 1, 3, 31)),
            draw("c5", "lb", "80.00", "cancelled", (1, 1, 3, 31)),
            draw("c6", "gone", "20.00", "approved", (1, 1, 1, 31)),
        ],
        actual={
            "c1": {"2027-01": D("50.00"), "2027-02": D("20.00")},
            "c2": {"2027-02": D("10.00")},
            "c3": {"2027-03": D("40.00")},
            "c4": {"2027-03": D("5.00")},
            "c5": {"2027-01": D("8.00")},
        },
    )


def figures(node: NodeView) -> dict[str, tuple[D | None, ...]]:
    """Total and per month: (planned, committed, actual, remaining)."""
    out = {"total": (node.total.planned, node.total.committed, node.total.actual)}
    out["total"] += (node.total.remaining,)
    for month, f in node.months.items():
        out[month] = (f.planned, f.committed, f.actual, f.remaining)
    return out


def by_line(root: NodeView) -> dict[str, NodeView]:
    found, pending = {"plan": root}, list(root.children)
    while pending:
        node = pending.pop()
        assert node.line is not None
        found[node.line.line_id] = node
        pending.extend(node.children)
    return found


def test_budget_tree_rolls_up_nested_lines_by_status_and_spend() -> None:
    root, months = report_sections.budget_tree(sample_budget())
    assert months == MONTHS
    nodes = by_line(root)
    assert sorted(c.line.line_id for c in root.children if c.line) == ["la", "lb", "lo"]
    assert [c.line.line_id for c in nodes["la"].children if c.line] == ["lr"]
    assert sorted(root.campaign_ids) == ["c4", "c6"]  # c6's line is unknown: under the plan
    assert sorted(nodes["la"].campaign_ids) == ["c2", "c3"]
    assert figures(nodes["lr"]) == {
        "total": (D("300.00"), D("200.00"), D("70.00"), D("230.00")),
        "2027-01": (D("100.00"), D("200.00"), D("50.00"), D("50.00")),
        "2027-02": (D("100.00"), D("0.00"), D("20.00"), D("80.00")),
        "2027-03": (D("100.00"), D("0.00"), D("0.00"), D("100.00")),
    }
    # c3's 62 by its days: 14/30 → 28.93 + the left-over cent, 16/30 → 33.06; c2 is a draft
    assert figures(nodes["la"]) == {
        "total": (D("600.00"), D("262.00"), D("120.00"), D("480.00")),
        "2027-01": (D("100.00"), D("200.00"), D("50.00"), D("50.00")),
        "2027-02": (D("200.00"), D("28.94"), D("30.00"), D("170.00")),
        "2027-03": (D("300.00"), D("33.06"), D("40.00"), D("260.00")),
    }
    # cancelled c5 commits nothing, its spend is actual all the same
    assert figures(nodes["lb"])["total"] == (D("90.00"), D("0.00"), D("8.00"), D("82.00"))
    assert figures(nodes["lo"])["2027-01"] == (D("3.34"), D("0.00"), D("0.00"), D("3.34"))
    # the plan: its cap evenly (333.34 / 333.33 / 333.33); c4 and c6 plus every line beneath
    assert figures(root) == {
        "total": (D("1000.00"), D("432.00"), D("133.00"), D("867.00")),
        "2027-01": (D("333.34"), D("220.00"), D("58.00"), D("275.34")),
        "2027-02": (D("333.33"), D("28.94"), D("30.00"), D("303.33")),
        "2027-03": (D("333.33"), D("183.06"), D("45.00"), D("288.33")),
    }


def test_a_plan_without_a_cap_has_no_planned_or_remaining() -> None:
    root, _ = report_sections.budget_tree(sample_budget(cap=None))
    assert (root.total.planned, root.total.remaining) == (None, None)
    assert (root.total.committed, root.total.actual) == (D("432.00"), D("133.00"))
    assert root.months["2027-02"].planned is None


class Rows(HTMLParser):
    """The cells of every ``<tr>`` carrying ``data-node`` or ``data-unit``, by table class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
        self.table = ""
        self.row: tuple[dict[str, str], list[str]] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.table = a.get("class", "")
        elif tag == "tr" and ("data-node" in a or "data-unit" in a):
            self.row = (a, [])
            self.rows.setdefault(self.table, []).append(self.row)
        elif tag == "td" and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.row is not None and self.cell is not None:
            self.row[1].append("".join(self.cell))
            self.cell = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def parse(html: str) -> dict[str, list[tuple[dict[str, str], list[str]]]]:
    parser = Rows()
    parser.feed(html)
    return parser.rows


def test_budget_section_shows_the_tree_with_campaigns_under_their_node() -> None:
    html = report_sections.budget_section(
        plan=sample_budget(),
        plan_name="Plan <Q1>",
        months_of=(dt.date(2027, 2, 10), dt.date(2027, 3, 31)),
        campaign_names={"c1": "Retail push", "c4": "Spring & co"},
    )
    assert "Plan &lt;Q1&gt;" in html and "Spring &amp; co" in html
    rows = parse(html)
    tree = [(a["data-node"], a["data-depth"], cells) for a, cells in rows["budget-tree"]]
    # plan first; its campaigns, then its lines by name, each followed by its campaigns
    assert [(node, depth) for node, depth, _ in tree] == [
        ("plan", "0"),
        ("c4", "1"),
        ("c6", "1"),
        ("la", "1"),
        ("c2", "2"),
        ("c3", "2"),
        ("lr", "2"),
        ("c1", "3"),
        ("lb", "1"),
        ("c5", "2"),
        ("lo", "1"),
    ]
    cells = {node: c for node, _, c in tree}
    # name, kind, brand, channel, region, partner | planned, committed, actual, remaining
    assert cells["plan"][:6] == ["Plan <Q1>", "plan", "", "", "", ""]
    assert cells["plan"][6:] == ["1,000.00", "432.00", "133.00", "867.00"]
    assert cells["la"][:6] == ["Line la", "line", "A", "", "", ""]
    assert cells["la"][6:] == ["600.00", "262.00", "120.00", "480.00"]
    assert cells["lr"][5:] == ["RetailCo", "300.00", "200.00", "70.00", "230.00"]
    assert cells["c1"][:6] == ["Retail push", "campaign · active", "", "", "", ""]
    assert cells["c1"][6:] == ["—", "200.00", "70.00", "—"]
    assert cells["c2"][1:] == ["campaign · draft", "", "", "", "", "—", "0.00", "10.00", "—"]
    assert cells["c5"][6:] == ["—", "0.00", "8.00", "—"]
    # by month: only February and March (the report's days), four figures each
    months = {a["data-node"]: c for a, c in rows["budget-months"]}
    assert months["plan"][0] == "Plan <Q1>"
    assert months["plan"][1:5] == ["333.33", "28.94", "30.00", "303.33"]
    assert months["plan"][5:] == ["333.33", "183.06", "45.00", "288.33"]
    assert months["la"][1:5] == ["200.00", "28.94", "30.00", "170.00"]
    assert months["la"][5:] == ["300.00", "33.06", "40.00", "260.00"]
    assert "2027-01" not in html


def test_budget_section_empty_states() -> None:
    unknown = report_sections.budget_section(
        plan=None, plan_name="P", months_of=None, campaign_names={}
    )
    assert "not known to measurement yet" in unknown
    bare = PlanBudget(
        plan_id="P",
        currency="USD",
        period=Period(start=Q1.start, end=Q1.end),
        lines=[],
        draws=[draw("c1", None, "50.00", "approved", (1, 1, 1, 31))],
        actual={},
    )
    html = report_sections.budget_section(
        plan=bare, plan_name="P", months_of=None, campaign_names={}
    )
    assert "The plan has no budget lines" in html
    tree = {a["data-node"]: c for a, c in parse(html)["budget-tree"]}
    assert list(tree) == ["plan", "c1"]
    assert tree["plan"][6:] == ["—", "50.00", "0.00", "—"]  # no cap: nothing planned


def test_window_is_the_report_period_else_the_plans() -> None:
    plan = (dt.date(2027, 1, 1), dt.date(2027, 12, 31))
    march = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    april = dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
    assert report_sections.window(period=plan, start=None, end=None) == plan
    assert report_sections.window(period=plan, start=march, end=april) == (
        dt.date(2027, 3, 1),
        dt.date(2027, 3, 31),
    )
    assert report_sections.window(period=plan, start=march, end=None) == (
        dt.date(2027, 3, 1),
        dt.date(2027, 12, 31),
    )
    assert report_sections.window(period=None, start=march, end=None) is None
    assert report_sections.window(period=None, start=march, end=april) is not None


UNITS = [
    Unit(unit_id="co", kind="company", name="Company"),
    Unit(unit_id="r", kind="region", name="Region R", parent_id="co", code="R"),
    Unit(unit_id="a", kind="rep", name="Rep A", parent_id="r", code="A"),
]
RULE = AtRiskRule(share=D("0.9"), min_elapsed=D("0.2"))
NOW = dt.datetime(2027, 3, 11, tzinfo=dt.UTC)  # 10 of March's 31 days, 69 of Q1's 90


def target(unit_id: str, period: str, amount: str, brand: str | None = None) -> SalesTarget:
    start, end = (
        (dt.date(2027, 3, 1), dt.date(2027, 3, 31))
        if period == "2027-03"
        else (dt.date(2027, 1, 1), dt.date(2027, 3, 31))
    )
    return SalesTarget(
        target_id=f"t-{unit_id}-{period}-{brand}",
        unit_id=unit_id,
        period=period,
        period_start=start,
        period_end=end,
        amount=D(amount),
        currency="EUR",
        brand=brand,
    )


def sample_progress() -> list[progress.PeriodProgress]:
    return progress.periods_progress(
        units=UNITS,
        targets=[
            target("co", "2027-03", "1000.00"),
            target("r", "2027-03", "400.00"),
            target("r", "2027-03", "100.00", brand="X"),
            target("co", "2027-Q1", "3000.00"),
        ],
        groups={
            "2027-03": [
                SaleGroup(amount=D(300), currency="EUR", rep_id="A", region="R", brand="X"),
                SaleGroup(amount=D(200), currency="EUR", brand="Y"),
            ],
            "2027-Q1": [SaleGroup(amount=D(900), currency="EUR", region="R")],
        },
        now=NOW,
        fx=FxRates(base="EUR", rates={}),
        rule=RULE,
    )


def test_periods_progress_gives_a_tree_per_period_and_brand() -> None:
    periods = sample_progress()
    assert [(p.period, p.brand) for p in periods] == [
        ("2027-Q1", None),
        ("2027-03", None),
        ("2027-03", "X"),
    ]
    q1, march, x = ((p.units[0], p.units[0].children[0]) for p in periods)
    # Q1: 900 in 69 of 90 days → 900 × 90 / 69 = 1173.91, 39.13 % of 3000: at risk
    assert (q1[0].sales, q1[0].forecast, q1[0].forecast_share, q1[0].at_risk) == (
        D("900.00"),
        D("1173.91"),
        D("0.391304"),
        True,
    )
    # March, all brands: 500 for the company (1550 at the run rate), 300 for the region
    assert (march[0].sales, march[0].share, march[0].forecast) == (
        D("500.00"),
        D("0.500000"),
        D("1550.00"),
    )
    assert (march[1].sales, march[1].share, march[1].forecast_share, march[1].at_risk) == (
        D("300.00"),
        D("0.750000"),
        D("2.325000"),
        False,
    )
    # brand X: only X's sales; the company has no X target
    assert (x[0].target, x[0].sales, x[1].target.amount if x[1].target else None) == (
        None,
        D("300.00"),
        D("100.00"),
    )


def test_sales_section_tables_and_empty_states() -> None:
    html = report_sections.sales_section(
        periods=sample_progress(),
        days=(dt.date(2027, 3, 1), dt.date(2027, 3, 31)),
        rule=RULE,
        as_of=NOW,
    )
    rows = parse(html)["sales-progress"]
    found = {(a["data-period"], a["data-brand"], a["data-unit"]): c for a, c in rows}
    assert found[("2027-Q1", "", "co")] == [
        "Company",
        "company",
        "EUR",
        "3,000.00",
        "900.00",
        "30.00 %",
        "1,173.91",
        "39.13 %",
        "at risk",
    ]
    assert found[("2027-03", "", "r")] == [
        "Region R",
        "region",
        "EUR",
        "400.00",
        "300.00",
        "75.00 %",
        "930.00",
        "232.50 %",
        "",
    ]
    assert found[("2027-03", "X", "a")][3:5] == ["—", "300.00"]
    assert [a["data-depth"] for a, _ in rows[:3]] == ["0", "1", "2"]
    assert "2027-03 (2027-03-01 – 2027-03-31) · brand X" in html
    assert "No sales targets" not in html
    none = report_sections.sales_section(
        periods=[], days=(dt.date(2027, 3, 1), dt.date(2027, 3, 31)), rule=RULE, as_of=NOW
    )
    assert "No sales targets for a period overlapping 2027-03-01 – 2027-03-31." in none
    unknown = report_sections.sales_section(periods=[], days=None, rule=RULE, as_of=NOW)
    assert "no sales targets are shown" in unknown


def test_render_html_places_both_sections() -> None:
    plan = {"plan_id": "P", "name": "P", "currency": "USD", "campaigns": []}
    page = report_html.render_html(
        plan=plan,
        daily_spend=[],
        generated_at=NOW,
        budget_tree='<section id="budget-tree"></section>',
        sales_progress='<section id="sales-progress"></section>',
    )
    spend, tree = page.index("<h2>Spend vs budget"), page.index('id="budget-tree"')
    campaigns, sales = page.index("<h2>Campaigns"), page.index('id="sales-progress"')
    assert spend < tree < campaigns < sales < page.index("<h2>Every KPI")
