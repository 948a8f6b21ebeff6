"""``mrm demo``: plays the other internal systems against a running platform.

It creates a sample annual plan over the planning API (campaigns across channels, budgets,
stages with near deadlines, KPI targets), approves it, then publishes realistic spend, ad
metrics, lead-funnel and sales streams to Kafka while a live table shows each campaign's KPIs.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mrm import demo_history, demo_segments
from mrm.demo_targets import TargetCascade
from mrm.runtime import Runtime
from shared.events.customers import CustomerProfileUpdated
from shared.events.ingest import AdMetricsReported, LeadStageChanged, SaleCompleted, SpendRecorded
from shared.publisher import EventPublisher

FUNNEL_RATES = {
    "lead": 0.25,
    "mql": 0.5,
    "sql": 0.45,
    "sal": 0.8,
    "opportunity": 0.55,
    "customer": 0.35,
}
PEOPLE = {"cmo": "Carla (CMO)", "manager": "Max (campaign manager)", "executor": "Eve (executor)"}


@dataclass(frozen=True)
class CampaignSpec:
    """A sample campaign and how its traffic behaves."""

    name: str
    channel: str
    brand: str
    budget: Decimal
    daily_spend: Decimal
    ctr: float
    click_to_visit: float
    average_order: Decimal
    targets: dict[str, str]
    line: str
    segment: str | None = None
    """The customer segment it targets (``rfm:<name>`` or a rule-based segment's id; None =
    everyone)."""


SAMPLE = (
    CampaignSpec(
        "Spring search",
        "search",
        "Acme",
        Decimal("24000"),
        Decimal("520"),
        0.045,
        0.8,
        Decimal("2900"),
        {"cpl": "60", "romi": "0.5", "ctr": "0.04"},
        "Acme",
    ),
    CampaignSpec(
        "Social launch",
        "social",
        "Acme Go",
        Decimal("18000"),
        Decimal("650"),
        0.012,
        0.7,
        Decimal("900"),
        {"cpl": "80", "romi": "0.3", "ctr": "0.015"},
        "Acme Go",
        segment="rfm:promising",
    ),
    CampaignSpec(
        "Email nurture",
        "email",
        "Acme",
        Decimal("6000"),
        Decimal("90"),
        0.09,
        0.9,
        Decimal("1100"),
        {"cpl": "10", "romi": "2.0"},
        "Acme",
        segment="rfm:at_risk",
    ),
    CampaignSpec(
        "Partner webinars",
        "events",
        "Acme Pro",
        Decimal("12000"),
        Decimal("300"),
        0.03,
        0.6,
        Decimal("6000"),
        {"cac": "1500", "romi": "0.8"},
        "Acme Pro at PartnerNet",
        segment="large-software",  # a rule-based segment (demo_segments)
    ),
)


PLAN_BUDGET = Decimal("80000")
BUDGET_LINES: tuple[tuple[str, str | None, dict[str, str], str], ...] = (
    ("Acme", None, {"brand": "Acme"}, "32000"),
    ("Acme Go", None, {"brand": "Acme Go"}, "20000"),
    ("Acme Pro", None, {"brand": "Acme Pro"}, "16000"),
    ("Acme Pro at PartnerNet", "Acme Pro", {"partner": "PartnerNet", "region": "EMEA"}, "12000"),
)
"""The sample plan's budget lines (name, parent, attributes, amount) under its cap."""
PLAN_DISCOUNT_LIMIT = {"max_discount_rate": "0.12"}
"""At most 12 % off any sale of the plan: the deep discounts below are exceptions."""
PARTNER_PROMO_FUND = {"promo_fund": "900"}
"""The partner line's promo fund, crossed at 80 % and 100 % during the demo."""
DEEP_DISCOUNT = Decimal("0.20")
PARTNER_UPLIFT = Decimal("30000")
"""The sales the partner campaign plans to add at PartnerNet."""
REALLOCATION_RULE = {
    "kpi": "ckpi",
    "comparison": "lt",
    "threshold": "90",
    "min_spend_share": "0.1",
    "hysteresis": "5",
    "action": "line",
    "share": "0.25",
    "min_amount": "100.00",
    "mode": "apply",
}
"""A rule applied at once: a campaign of the Acme Go line scoring a CKPI under 90 gives a
quarter of its unspent budget back to the Acme line (its own line has no better campaign)."""
REGIONS = ("EMEA", "Americas", "APAC")
INDUSTRIES = ("retail", "manufacturing", "software", "healthcare")


def sale_units(
    spec: CampaignSpec, *, order: int, amount: Decimal, discount: Decimal
) -> dict[str, Any]:
    """The optional sales-unit and pricing fields of the ``order``-th sale of a campaign: the
    partner and region of its budget line (a region in turn when the line has none), a product
    of its brand, and the list price and discount reason on every other sale."""
    line = next(attributes for name, _, attributes, _ in BUDGET_LINES if name == spec.line)
    partner = line.get("partner")
    priced = order % 2 == 0
    return {
        "partner_id": partner,
        "region": line.get("region") or REGIONS[order % len(REGIONS)],
        "product_id": f"{spec.brand.lower().replace(' ', '-')}-{order % 3 + 1}",
        "brand": spec.brand,
        "list_price": amount + discount if priced else None,
        "discount_reason": "spring promo" if priced else None,
        "sale_kind": "sell_out" if partner else None,
        "outlet": f"{partner} store {order % 4 + 1}" if partner else None,
    }


@dataclass
class LiveCampaign:
    """A campaign created by the demo, with the leads it has in flight."""

    campaign_id: str
    spec: CampaignSpec
    leads: dict[str, str] = field(default_factory=dict)
    customers: list[str] = field(default_factory=list)
    orders: int = 0


class Demo:
    """One demo run against the platform described by ``runtime``."""

    def __init__(self, runtime: Runtime, *, console: Console | None = None, seed: int = 7) -> None:
        self.runtime = runtime
        self.console = console or Console()
        self.random = random.Random(seed)
        token = runtime.token_for("admin") or runtime.token_for("cmo")
        if token is None:
            raise SystemExit("no admin or cmo token known: set MRM_DEMO_TOKEN")
        self.http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=15)
        self.plan_id = ""
        self.lines: dict[str, str] = {}
        self.campaigns: list[LiveCampaign] = []

    def url(self, service: str, path: str) -> str:
        """The URL of ``path`` on ``service``."""
        return f"{self.runtime.urls[service]}{path}"

    def register_people(self) -> None:
        """Give the plan's people an e-mail address so their notifications are delivered."""
        for person, name in PEOPLE.items():
            response = self.http.put(
                self.url("notifier", f"/api/v1/recipients/{person}"),
                json={"name": name, "email": f"{person}@example.com", "channels": ["email"]},
            )
            if response.status_code >= 400:
                raise SystemExit(f"registering {person} failed: {response.text}")

    def create_plan(self) -> None:
        """Create and approve the sample plan through the planning API."""
        today = dt.date.today()
        plan = self._post(
            "planning",
            "/api/v1/plans",
            {
                "name": f"Marketing plan {today.year}/{today.year + 1}",
                "period_start": str(today - dt.timedelta(days=90)),
                "period_end": str(today + dt.timedelta(days=275)),
                "owner": "cmo",
                "budget": str(PLAN_BUDGET),
            },
        )
        self.plan_id = plan["plan_id"]
        lines = self.lines
        for name, parent, attributes, amount in BUDGET_LINES:
            line = self._post(
                "planning",
                f"/api/v1/plans/{self.plan_id}/budget-lines",
                {
                    "name": name,
                    "parent_id": lines.get(parent or ""),
                    "amount": amount,
                    **attributes,
                },
            )
            lines[name] = line["line_id"]
        for path, limit in (
            (f"/api/v1/plans/{self.plan_id}/discount-limit", PLAN_DISCOUNT_LIMIT),
            (
                f"/api/v1/budget-lines/{lines['Acme Pro at PartnerNet']}/discount-limit",
                PARTNER_PROMO_FUND,
            ),
        ):
            self._send("PUT", "planning", path, limit)
        for spec in SAMPLE:
            campaign = self._post(
                "planning",
                f"/api/v1/plans/{self.plan_id}/campaigns",
                {
                    "name": spec.name,
                    "channel": spec.channel,
                    "brand": spec.brand,
                    "owner": "manager",
                    "budget": str(spec.budget),
                    "start_date": str(today - dt.timedelta(days=20)),
                    "end_date": str(today + dt.timedelta(days=40)),
                    "gross_margin": "0.6",
                    "line_id": lines[spec.line],
                    "target_segment": spec.segment,
                },
            )
            live = LiveCampaign(campaign_id=campaign["campaign_id"], spec=spec)
            self.campaigns.append(live)
            now = dt.datetime.now(dt.UTC)
            for name, deadline, assignee in (
                ("Brief approved", now - dt.timedelta(hours=3), "manager"),
                ("Creatives delivered", now + dt.timedelta(hours=20), "executor"),
                ("Mid-campaign review", now + dt.timedelta(days=20), "manager"),
            ):
                self._post(
                    "planning",
                    f"/api/v1/campaigns/{live.campaign_id}/stages",
                    {"name": name, "deadline": deadline.isoformat(), "assignee": assignee},
                )
            for kpi, target in spec.targets.items():
                self._post(
                    "planning",
                    f"/api/v1/campaigns/{live.campaign_id}/kpi-targets",
                    {"kpi": kpi, "target": target},
                )
        rule = self._post(
            "planning",
            f"/api/v1/plans/{self.plan_id}/reallocation-rules",
            {**REALLOCATION_RULE, "target_id": lines["Acme"], "scope_line_id": lines["Acme Go"]},
        )
        self.console.print(
            f"reallocation rule {rule['rule_id']}: an Acme Go campaign with a CKPI under 90 gives"
            " 25 % of its unspent budget to the Acme line, applied at once (and the plan's"
            " default rule, by proposal)"
        )
        self._post("planning", f"/api/v1/plans/{self.plan_id}/approve", None)
        self.console.print(
            f"created and approved plan [bold]{self.plan_id}[/] with "
            f"{len(self.campaigns)} campaigns"
        )

    def plan_uplift(self, unit_id: str) -> None:
        """The partner campaign plans the sales it adds at PartnerNet: the unit's sales plan
        becomes its baseline plus this uplift (a sales plan built from the promotion plan)."""
        webinars = next(c for c in self.campaigns if c.spec.line == "Acme Pro at PartnerNet")
        self._send(
            "PATCH",
            "planning",
            f"/api/v1/campaigns/{webinars.campaign_id}",
            {"sales_unit_id": unit_id, "planned_uplift": str(PARTNER_UPLIFT)},
        )
        self.console.print(
            f'campaign "{webinars.spec.name}" plans {PARTNER_UPLIFT:,.0f} of extra sales at'
            " PartnerNet: see the unit's sales plan with `mrm targets`"
        )

    def play_history(self) -> None:
        """Last year's campaigns (``demo_history``): created through planning, their days of
        spend, ads, leads and sales published with last year's dates, then waited for until
        measurement has them, so this year's campaigns are modelled from them."""
        today = dt.date.today()
        _, runs = demo_history.create_past_plan(self._post, SAMPLE, today=today)
        sent = 0
        with EventPublisher(self.runtime.broker(), source="demo") as publisher:
            for campaign_id, spec, start in runs:
                live = LiveCampaign(campaign_id=campaign_id, spec=spec)
                for offset in range(demo_history.DAYS):
                    day = dt.datetime.combine(
                        start + dt.timedelta(days=offset), dt.time(12), tzinfo=dt.UTC
                    )
                    sent += self._spend_and_ads(publisher, live, day=day)
                    sent += self._funnel(publisher, live, day=day)
                publisher.flush()
        last = runs[-1][0]
        settled, previous, deadline = 0, None, time.monotonic() + 120
        while settled < 2 and time.monotonic() < deadline:
            kpis = self._get("measurement", f"/api/v1/kpis/campaigns/{last}")
            current = (kpis.get("spend"), kpis.get("leads")) if isinstance(kpis, dict) else None
            settled = settled + 1 if current and current == previous and current[1] else 0
            previous = current
            time.sleep(1)
        self.console.print(
            f"last year: {len(runs)} campaigns ({sent} events) at half, once and twice the"
            " budgets, for the campaign model to learn from"
        )

    def _post(self, service: str, path: str, body: object) -> dict:  # type: ignore[type-arg]
        return self._send("POST", service, path, body)

    def _send(self, method: str, service: str, path: str, body: object) -> dict:  # type: ignore[type-arg]
        response = self.http.request(method, self.url(service, path), json=body)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path} failed ({response.status_code}): {response.text}")
        return response.json()  # type: ignore[no-any-return]

    def publish_round(self, publisher: EventPublisher, *, day: dt.datetime) -> int:
        """Publish one simulated day of events for every campaign; returns how many."""
        sent = 0
        for live in self.campaigns:
            sent += self._spend_and_ads(publisher, live, day=day)
            sent += self._funnel(publisher, live, day=day)
        publisher.flush()
        return sent

    def _spend_and_ads(
        self, publisher: EventPublisher, live: LiveCampaign, *, day: dt.datetime
    ) -> int:
        spec = live.spec
        amount = (spec.daily_spend * Decimal(self.random.uniform(0.7, 1.3))).quantize(
            Decimal("0.01")
        )
        impressions = int(float(amount) * self.random.uniform(40, 60))
        clicks = int(impressions * spec.ctr * self.random.uniform(0.8, 1.2))
        publisher.publish(
            SpendRecorded(
                campaign_id=live.campaign_id, channel=spec.channel, amount=amount, currency="USD"
            ),
            occurred_at=day,
        )
        publisher.publish(
            AdMetricsReported(
                campaign_id=live.campaign_id,
                channel=spec.channel,
                impressions=impressions,
                clicks=clicks,
            ),
            occurred_at=day,
        )
        visitors = [
            f"lead-{uuid.uuid4().hex[:10]}" for _ in range(int(clicks * spec.click_to_visit / 10))
        ]
        for lead_id in visitors:
            live.leads[lead_id] = "visitor"
            publisher.publish(
                LeadStageChanged(
                    lead_id=lead_id,
                    campaign_id=live.campaign_id,
                    channel=spec.channel,
                    stage="visitor",
                ),
                occurred_at=day,
            )
        return 2 + len(visitors)

    def _funnel(self, publisher: EventPublisher, live: LiveCampaign, *, day: dt.datetime) -> int:
        sent = 0
        order = list(FUNNEL_RATES)
        for lead_id, stage in list(live.leads.items()):
            position = -1 if stage == "visitor" else order.index(stage)
            if position + 1 >= len(order):
                continue
            following = order[position + 1]
            if self.random.random() > FUNNEL_RATES[following]:
                # a lead gets one chance per stage: it stalls there, or is marked lost
                del live.leads[lead_id]
                if self.random.random() < 0.3:
                    publisher.publish(
                        LeadStageChanged(
                            lead_id=lead_id,
                            campaign_id=live.campaign_id,
                            channel=live.spec.channel,
                            stage="lost",
                        ),
                        occurred_at=day,
                    )
                    sent += 1
                continue
            customer_id = f"cust-{lead_id[5:]}" if following == "customer" else None
            live.leads[lead_id] = following
            publisher.publish(
                LeadStageChanged(
                    lead_id=lead_id,
                    campaign_id=live.campaign_id,
                    channel=live.spec.channel,
                    stage=following,
                    customer_id=customer_id,
                ),
                occurred_at=day,
            )
            sent += 1
            if customer_id:
                live.customers.append(customer_id)
                sent += self._profile(publisher, customer_id, day=day)
                sent += self._sale(publisher, live, customer_id, day=day)
        for customer_id in live.customers:
            if self.random.random() < 0.05:
                sent += self._sale(publisher, live, customer_id, day=day)
        return sent

    def _profile(self, publisher: EventPublisher, customer_id: str, *, day: dt.datetime) -> int:
        """The CRM's profile of a new customer (for the RFM segments' export)."""
        publisher.publish(
            CustomerProfileUpdated(
                customer_id=customer_id,
                version=1,
                industry=self.random.choice(INDUSTRIES),
                size=self.random.choice(("small", "medium", "large", "enterprise")),
                region=self.random.choice(REGIONS),
            ),
            occurred_at=day,
        )
        return 1

    def _sale(
        self, publisher: EventPublisher, live: LiveCampaign, customer_id: str, *, day: dt.datetime
    ) -> int:
        amount = (live.spec.average_order * Decimal(self.random.uniform(0.6, 1.5))).quantize(
            Decimal("0.01")
        )
        live.orders += 1
        # every seventh order is discounted deeper than the plan allows (an exception)
        share = DEEP_DISCOUNT if live.orders % 7 == 0 else Decimal("0.05")
        discount = (amount * share).quantize(Decimal("0.01"))
        units = sale_units(live.spec, order=live.orders, amount=amount, discount=discount)
        publisher.publish(
            SaleCompleted(
                order_id=f"ord-{uuid.uuid4().hex[:10]}",
                customer_id=customer_id,
                campaign_id=live.campaign_id,
                channel=live.spec.channel,
                amount=amount,
                discount_amount=discount,
                currency="USD",
                **units,
            ),
            occurred_at=day,
        )
        return 1

    def kpi_table(self) -> Table:
        """The live table of every campaign's KPIs, read from the measurement API."""
        table = Table(
            title=f"Plan {self.plan_id[:8]}: KPIs while the campaigns run",
            expand=False,
            pad_edge=False,
        )
        for column in (
            "campaign",
            "spend",
            "budget",
            "CTR",
            "leads",
            "CPL",
            "cust.",
            "CAC",
            "revenue",
            "ROMI",
        ):
            table.add_column(
                column, justify="left" if column == "campaign" else "right", no_wrap=True
            )
        for live in self.campaigns:
            kpis = self._get("measurement", f"/api/v1/kpis/campaigns/{live.campaign_id}")
            kpis = kpis if isinstance(kpis, dict) else {}
            table.add_row(
                live.spec.name,
                _fmt(kpis.get("spend"), 0),
                f"{live.spec.budget:,.0f}",
                _pct(kpis.get("ctr")),
                _fmt(kpis.get("leads"), 0),
                _fmt(kpis.get("cpl")),
                _fmt(kpis.get("new_customers"), 0),
                _fmt(kpis.get("cac"), 0),
                _fmt(kpis.get("revenue"), 0),
                _fmt(kpis.get("romi"), 2),
            )
        notifications = self._get("notifier", "/api/v1/notifications?limit=500")
        items = notifications.get("items", []) if isinstance(notifications, dict) else []
        delivered = sum(1 for item in items if item.get("status") == "delivered")
        table.caption = (
            f"{len(items)} notifications ({delivered} delivered by e-mail) — "
            "reminders, overdue stages, budget thresholds, KPI alerts"
        )
        return table

    def _get(self, service: str, path: str) -> dict | list:  # type: ignore[type-arg]
        try:
            response = self.http.get(self.url(service, path))
        except httpx.HTTPError:
            return {}
        return response.json() if response.status_code == 200 else {}  # type: ignore[no-any-return]

    def run(self, *, days: int = 30, pause_s: float = 1.0) -> None:
        """Create the plan, stream ``days`` simulated days of events, show KPIs live."""
        self.register_people()
        self.play_history()
        self.create_plan()
        cascade = TargetCascade(self.runtime, url=self.url)
        for line in cascade.run():
            self.console.print(line)
        self.plan_uplift(cascade.units["PartnerNet"])
        for line in demo_segments.define(get=self._get, send=self._send):
            self.console.print(line)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        total = 0
        with (
            EventPublisher(self.runtime.broker(), source="demo") as publisher,
            Live(self.kpi_table(), console=self.console, refresh_per_second=2) as live,
        ):
            for index in range(days):
                total += self.publish_round(publisher, day=start + dt.timedelta(days=index))
                time.sleep(pause_s)
                live.update(self.kpi_table())
            time.sleep(2)
            live.update(self.kpi_table())
        measurement = self.runtime.urls["measurement"]
        execution = self.runtime.urls["execution"]
        notifier = self.runtime.urls["notifier"]
        self.console.print(f"\npublished {total} events over {days} simulated days")
        self.console.print("Where to look next:")
        self.console.print(f"  plan KPIs      {measurement}/api/v1/kpis/plans/{self.plan_id}")
        planning = self.runtime.urls["planning"]
        self.console.print(f"  plan budget    {planning}/api/v1/plans/{self.plan_id}/budget")
        self.console.print(
            f"  budget moves   {planning}/api/v1/plans/{self.plan_id}/reallocations"
            f" (proposals: …/reallocation-proposals)"
        )
        self.console.print(f"  sales targets  {planning}/api/v1/sales-targets?period=<YYYY-Qn>")
        self.console.print(
            f"  target progress {measurement}/api/v1/sales-targets/progress?period=<YYYY-Qn>"
        )
        self.console.print(
            f"  target forecast {measurement}/api/v1/sales-targets/forecast?period=<YYYY-Qn>"
        )
        partner_line = self.lines["Acme Pro at PartnerNet"]
        self.console.print(
            f"  discounts      {measurement}/api/v1/discounts/exceptions?line_id={partner_line}"
        )
        self.console.print(
            f"  plan report    {measurement}/api/v1/reports/plans/{self.plan_id}?format=html"
        )
        self.console.print(
            f"  forecast       {planning}/api/v1/campaigns/{self.campaigns[0].campaign_id}"
            "/forecast (POST; the model kept at approval)"
        )
        self.console.print(f"  model backtest {measurement}/api/v1/models/backtest")
        self.console.print(
            f"  segment effect {measurement}/api/v1/segments/effectiveness"
            " (campaigns by target segment, side by side)"
        )
        self.console.print(
            f"  RFM segments   {measurement}/api/v1/segments/rfm"
            " (members: …/segments/rfm/customers?segment=champions&format=csv)"
        )
        self.console.print("  customer segments (…/segments, …/kpis/segments/{id}):")
        for line in demo_segments.summary(get=self._get, measurement_url=measurement):
            self.console.print(line)
        first = self.campaigns[0].campaign_id
        self.console.print(f"  progress       {execution}/api/v1/campaigns/{first}/progress")
        self.console.print(f"  notifications  {notifier}/api/v1/notifications?recipient=manager")
        self.console.print(
            "  (every URL needs the header Authorization: Bearer <token>; "
            "tokens are in runtime.json)"
        )


def _fmt(value: object, places: int = 2) -> str:
    if value is None or value == "":
        return "–"
    try:
        return f"{Decimal(str(value)):,.{places}f}"
    except ArithmeticError:
        return str(value)


def _pct(value: object) -> str:
    if value is None or value == "":
        return "–"
    return f"{Decimal(str(value)) * 100:.2f}%"
