"""Plan reports on the real service (Tansu + chDB): CSV figures by hand, HTML in headless
Chromium, ``mrm report``, and the 4xx answers.

One plan is published once per module; every test starts its own service, which ingests it (or
finds it already ingested in the session's chDB engine).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from decimal import Decimal as D
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from mrm import cli
from shared.events.ingest import AdMetricsReported, LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned, PlanCreated
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration
TOKEN = "t-report-viewer"
MARCH = {"from": "2027-03-01T00:00:00Z", "to": "2027-04-01T00:00:00Z"}
CHROMIUM = Path("/usr/bin/chromium")
SVG = "{http://www.w3.org/2000/svg}"
ODD_NAME = 'Search <Spring> & "friends"'


def at(month: int, day: int) -> dt.datetime:
    """10:00 UTC on a day of 2027."""
    return dt.datetime(2027, month, day, 10, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def plan(kafka_bootstrap: str) -> dict[str, str]:
    """Plan P with campaigns A (search), B (social, over budget), C (search), published once.

    March: spend A 100 + 200, B 600, C 30 (and A 50 in February); leads A: lead, mql, visitor;
    B: lead; C: lead, lead; one sale of 1200 in A (margin 0.5).
    """
    uid = uuid.uuid4().hex[:10]
    ids = {"plan": f"P-{uid}", "A": f"A-{uid}", "B": f"B-{uid}", "C": f"C-{uid}"}
    campaigns = [
        ("A", ODD_NAME, "search", "1000", "0.5"),
        ("B", "Social", "social", "500", "1.0"),
        ("C", "Search two", "search", "300", "0.5"),
    ]
    with EventPublisher(kafka_bootstrap, source="test") as events:
        events.publish(
            PlanCreated(
                plan_id=ids["plan"],
                name="Plan <2027>",
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2027, 12, 31),
                currency="USD",
                owner="cmo",
            )
        )
        for key, name, channel, budget, margin in campaigns:
            events.publish(
                CampaignPlanned(
                    campaign_id=ids[key],
                    plan_id=ids["plan"],
                    name=name,
                    channel=channel,
                    owner="ann",
                    budget=D(budget),
                    currency="USD",
                    start_date=dt.date(2027, 3, 1),
                    end_date=dt.date(2027, 3, 31),
                    gross_margin=D(margin),
                )
            )
        for key, amount, when in [
            ("A", "50.00", at(2, 20)),
            ("A", "100.00", at(3, 2)),
            ("A", "200.00", at(3, 5)),
            ("B", "600.00", at(3, 3)),
            ("C", "30.00", at(3, 4)),
        ]:
            channel = "social" if key == "B" else "search"
            events.publish(
                SpendRecorded(
                    campaign_id=ids[key], channel=channel, amount=D(amount), currency="USD"
                ),
                occurred_at=when,
            )
        events.publish(
            AdMetricsReported(
                campaign_id=ids["A"], channel="search", impressions=10_000, clicks=200
            ),
            occurred_at=at(3, 2),
        )
        leads = [("A", "lead"), ("A", "mql"), ("A", "visitor"), ("B", "lead")]
        for n, (key, stage) in enumerate([*leads, ("C", "lead"), ("C", "lead")]):
            events.publish(
                LeadStageChanged(
                    lead_id=f"L{n}-{uid}", campaign_id=ids[key], channel="search", stage=stage
                ),
                occurred_at=at(3, 6),
            )
        events.publish(
            SaleCompleted(
                order_id=f"o-{uid}",
                customer_id=f"k-{uid}",
                campaign_id=ids["A"],
                amount=D("1200.00"),
                currency="USD",
            ),
            occurred_at=at(3, 10),
        )
    return ids


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    """The measurement service on the session's broker and chDB engine, with a viewer token."""
    return measurement_api(bearer=TOKEN)


def ingested(client: httpx.Client, plan: dict[str, str], timeout_s: float = 60.0) -> None:
    """Wait until every event of the plan is queryable."""
    deadline, body = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/kpis/plans/{plan['plan']}")
        if response.status_code == 200:
            body = response.json()
            if (
                body["spend"] == "980.00"
                and body["revenue"] == "1200.00"
                and body["leads"] == 5
                and body["impressions"] == 10_000
                and len(body["campaigns"]) == 3
                and body["name"] is not None
            ):
                return
        time.sleep(0.25)
    raise AssertionError(f"plan never fully ingested; last: {body}")


def report(client: httpx.Client, plan_id: str, **params: str) -> httpx.Response:
    """GET the plan's report."""
    return client.get(f"/api/v1/reports/plans/{plan_id}", params=params)


def test_csv_report_over_a_period(measurement: httpx.Client, plan: dict[str, str]) -> None:
    ingested(measurement, plan)
    response = report(measurement, plan["plan"], format="csv", **MARCH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert f"plan-{plan['plan']}-report.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_id = {r["campaign_id"]: r for r in rows}
    a, b, c, total = by_id[plan["A"]], by_id[plan["B"]], by_id[plan["C"]], by_id[""]
    assert [r["scope"] for r in rows] == ["campaign"] * 3 + ["plan"]
    assert a["name"] == ODD_NAME and a["channel"] == "search" and a["currency"] == "USD"
    assert a["period_from"] == "2027-03-01T00:00:00Z" and a["period_to"] == "2027-04-01T00:00:00Z"
    # A: spend 300 (February's 50 is outside), leads 2 (lead, mql), 1200 revenue at margin 0.5
    assert (a["spend"], a["leads"], a["cpl"]) == ("300.00", "2", "150.00")
    assert (a["revenue"], a["gross_profit"], a["romi"]) == ("1200.00", "600.00", "1.000000")
    assert (a["new_customers"], a["cac"], a["clicks"], a["ctr"]) == (
        "1",
        "300.00",
        "200",
        "0.020000",
    )
    assert (a["funnel_visitor"], a["funnel_lead"], a["funnel_mql"]) == ("3", "2", "1")
    assert (b["spend"], b["budget_utilisation"], b["romi"], b["cac"]) == (
        "600.00",
        "1.200000",
        "-1.000000",
        "",
    )
    assert (c["spend"], c["leads"], c["cpl"]) == ("30.00", "2", "15.00")
    assert total["name"] == "Plan <2027>" and total["budget"] == "1800.00"
    assert (total["spend"], total["leads"], total["cpl"]) == ("930.00", "5", "186.00")
    assert total["romi"] == "-0.354839"  # (600 − 930) / 930

    everything = report(measurement, plan["plan"], format="csv")
    totals = [r for r in csv.DictReader(io.StringIO(everything.text)) if r["scope"] == "plan"]
    assert totals[0]["spend"] == "980.00" and totals[0]["period_from"] == ""


class ChartCensus(HTMLParser):
    """Counts, per ``svg[data-chart]`` of a DOM dump, the rects and paths with a visible size."""

    def __init__(self) -> None:
        super().__init__()
        self.chart: str | None = None
        self.rects: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg" and "data-chart" in a:
            self.chart = a["data-chart"]
            self.rects[self.chart] += 0
        elif self.chart and tag == "rect":
            if float(a.get("width", 0)) > 0 and float(a.get("height", 0)) > 0:
                self.rects[self.chart] += 1
        elif self.chart and tag == "path" and " L" in a.get("d", ""):
            self.paths[self.chart] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None


PROBE = """<script>
const out = {};
for (const svg of document.querySelectorAll('svg[data-chart]')) {
  const visible = (sel) => [...svg.querySelectorAll(sel)].filter((e) => {
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  }).length;
  out[svg.dataset.chart] = {
    rects: visible('rect'), paths: visible('path'),
    width: Math.round(svg.getBoundingClientRect().width),
  };
}
const pre = document.createElement('pre');
pre.id = 'layout-probe';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def chromium(*args: str, tmp: Path) -> str:
    """Run headless Chromium (no network, throwaway profile); its stdout."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}",
        "--window-size=1280,2000",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


EXPECTED_RECTS = {
    "spend-vs-budget": 6,  # 3 budgets + 3 spends
    "spend-over-time": 4,  # A on Mar 2 and 5, B on Mar 3, C on Mar 4
    "funnel": 3,  # visitor 6, lead 5, mql 1, nothing later
    "campaign-romi": 3,  # 1.0, −1.0, −1.0
    "campaign-cpl": 3,
    "campaign-cac": 1,  # only A has a new customer
    "channel-cpl": 2,  # search, social
    "channel-romi": 2,
}


def test_html_report_renders_in_headless_chromium(
    measurement: httpx.Client, plan: dict[str, str], tmp_path: Path
) -> None:
    ingested(measurement, plan)
    response = report(measurement, plan["plan"], format="html", **MARCH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    root = ET.fromstring(page.split("\n", 1)[1])
    title = root.find("head/title")
    assert title is not None
    assert title.text == "Plan report: Plan <2027> [2027-03-01 00:00 UTC, 2027-04-01 00:00 UTC)"
    assert "Search &lt;Spring&gt; &amp; &quot;friends&quot;" in page
    assert "<script" not in page and "://" not in page.replace("http://www.w3.org/2000/svg", "")

    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is absent: install Debian's chromium (apt-get install chromium) "
            "to render the report; the project's setup installs no system packages"
        )
    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    screenshot = tmp_path / "report.png"
    chromium(f"--screenshot={screenshot}", html_file.as_uri(), tmp=tmp_path)
    assert screenshot.stat().st_size > 20_000  # a page with content, not a blank one

    census = ChartCensus()
    census.feed(chromium("--dump-dom", html_file.as_uri(), tmp=tmp_path))
    assert {k: census.rects[k] for k in EXPECTED_RECTS} == EXPECTED_RECTS
    assert census.paths["cumulative-spend"] == 4  # 3 campaigns + plan total

    # Layout as rendered: a copy with a probe script measures every mark's bounding box.
    probed = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    probe_file = tmp_path / "probe.html"
    probe_file.write_text(probed.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium("--dump-dom", probe_file.as_uri(), tmp=tmp_path)
    layout = json.loads(dom.split('<pre id="layout-probe">', 1)[1].split("</pre>", 1)[0])
    assert {k: layout[k]["rects"] for k in EXPECTED_RECTS} == EXPECTED_RECTS
    assert (
        layout["cumulative-spend"]["paths"] >= 1
    )  # the total line rises; flat lines have no height
    assert all(chart["width"] > 400 for chart in layout.values())


def test_mrm_report_writes_the_file(
    measurement: httpx.Client,
    plan: dict[str, str],
    tmp_path: Path,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ingested(measurement, plan)
    monkeypatch.setenv("MRM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MRM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("MRM_MEASUREMENT_URL", str(measurement.base_url))
    monkeypatch.setenv("MRM_TOKENS", json.dumps({TOKEN: {"subject": "vic", "role": "viewer"}}))
    out = tmp_path / "march.csv"
    argv = ["report", plan["plan"], "--format", "csv", "--from", "2027-03-01", "--to"]
    assert cli.main([*argv, "2027-04-01T00:00:00+00:00", "-o", str(out)]) == 0
    assert out.read_bytes() == report(measurement, plan["plan"], format="csv", **MARCH).content
    html_out = tmp_path / "all.html"
    assert cli.main(["report", plan["plan"], "-o", str(html_out)]) == 0
    assert html_out.read_text().startswith("<!DOCTYPE html>")

    capsys.readouterr()
    assert cli.main(["report", f"nope-{plan['plan']}"]) == 1
    assert f"plan 'nope-{plan['plan']}' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["report", plan["plan"], "--from", "March"])


def test_unknown_plan_bad_format_and_bad_period_are_4xx(
    measurement: httpx.Client, plan: dict[str, str]
) -> None:
    missing = report(measurement, "no-such-plan")
    assert missing.status_code == 404
    assert missing.json()["detail"][0]["msg"] == "plan 'no-such-plan' not found"
    pdf = report(measurement, plan["plan"], format="pdf")
    assert pdf.status_code == 422
    assert pdf.json()["detail"][0]["loc"] == ["query", "format"]
    assert pdf.json()["detail"][0]["field"] == "format"
    backwards = report(measurement, plan["plan"], **{"from": MARCH["to"], "to": MARCH["from"]})
    assert backwards.status_code == 422 and backwards.json()["detail"][0]["field"] == "to"
    naive = report(measurement, plan["plan"], **{"from": "2027-03-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["detail"][0]["field"] == "from"
    anonymous = measurement.get(
        f"/api/v1/reports/plans/{plan['plan']}", headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
