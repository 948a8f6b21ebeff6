"""The Marketing KPIs Grafana dashboard: each ClickHouse query expanded like Grafana, run on chDB.

deploy/grafana/dashboards/marketing-kpis.json is loaded, and every ClickHouse panel target and
every query variable is expanded the way Grafana with the grafana-clickhouse-datasource plugin
(v4) does it, in the same order:

1. frontend (``CHDatasource.applyTemplateVariables``): ``$__conditionalAll(condition, $var)``
   becomes ``1=1`` when ``$var`` is All, then Grafana's template service replaces ``$var``,
   ``${var}`` and ``${var:format}`` — without a format the plugin's own formatter quotes a
   multi-value list (``'a','b'``) and leaves a single value bare;
2. backend (``pkg/macros``, found and replaced by the plugin SDK's ``sqlutil.Interpolate``):
   ``$__timeFilter(col)`` → ``col >= toDateTime(from_s) AND col <= toDateTime(to_s)``,
   ``$__timeInterval(col)`` → ``toStartOfInterval(toDateTime(col), INTERVAL n second)``,
   ``$__fromTime`` / ``$__toTime`` → ``toDateTime(s)``, and the ``_ms`` variants.

The expanded SQL runs on the session's chDB engine (root conftest ``warehouse_client``) with the
measurement schema migrated and a small hand-made event set inserted through
``warehouse.insert_events``, redeliveries included and merges stopped, so a query that forgot
FINAL would double count. Key panels are compared with values computed by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent
from shared.events import EventData, new_envelope
from shared.events.ingest import AdMetricsReported, LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import BudgetAllocated, CampaignPlanned, PlanCreated

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "dashboards" / "marketing-kpis.json"
DATASOURCES_FILE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
CLICKHOUSE_UID = "clickhouse"

# What Grafana sends for the absolute range "March 2027" (the end is inclusive, to the ms).
MARCH_FROM = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
MARCH_TO = dt.datetime(2027, 3, 31, 23, 59, 59, 999_000, tzinfo=dt.UTC)
DAY_S = 86_400

RAW_TABLES = ("spend", "ad_metrics", "lead_events", "sales")


# --------------------------------------------------------------------------------------------
# Grafana + grafana-clickhouse-datasource expansion
# --------------------------------------------------------------------------------------------


class UnexpandedSqlError(AssertionError):
    """Expanded SQL still holds a ``$`` variable or macro that Grafana would not resolve."""


@dataclass(frozen=True)
class Variable:
    """A dashboard variable's state: ``value`` as Grafana holds it (``["$__all"]`` = All)."""

    name: str
    value: str | list[str]
    options: Sequence[str] = ()
    all_value: str | None = None

    def is_all(self) -> bool:
        """True when the variable's current selection is All."""
        return self.value in ("$__all", ["$__all"])

    def resolved(self) -> str | list[str]:
        """What the template service substitutes: All → custom all value or every option."""
        if self.is_all():
            return self.all_value if self.all_value is not None else list(self.options)
        return self.value


@dataclass(frozen=True)
class TimeRange:
    """The dashboard time range and the panel's interval, as the plugin backend receives them."""

    start: dt.datetime
    end: dt.datetime
    interval_s: float = DAY_S


def _conditional_all_args(sql: str, open_paren: int) -> list[str]:
    """The plugin's ``getMacroArgs``: top-level comma-separated arguments after ``(``."""
    args, depth, last = [], 0, open_paren + 1
    for match in re.finditer(r"[(),]", sql[open_paren:]):
        index = open_paren + match.start()
        if match.group() == "(":
            depth += 1
        elif match.group() == ")":
            depth -= 1
        if match.group() == "," and depth == 1:
            args.append(sql[last:index])
            last = index + 1
        if depth == 0:
            args.append(sql[last:index])
            return args
    return []


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    """``$__conditionalAll(condition, $var)`` → ``1=1`` if ``$var`` is All (or empty)."""
    macro = "$__conditionalAll("
    index = sql.rfind(macro)
    while index != -1:
        params = _conditional_all_args(sql, index + len(macro) - 1)
        if len(params) != 2:
            return sql
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", params[1].strip())
        phrase = params[0]
        variable = variables.get(name.group()) if name else None
        if variable is not None and (variable.is_all() or variable.value in ("", [])):
            phrase = "1=1"
        sql = sql.replace(f"{macro}{params[0]},{params[1]})", phrase)
        index = sql.rfind(macro)
    return sql


def _plugin_format(value: str | list[str]) -> str:
    """The plugin's default formatter: a list becomes ``'a','b'``, a single value stays bare."""
    return "'" + "','".join(value) + "'" if isinstance(value, list) else value


def _singlequote(value: str | list[str]) -> str:
    """Grafana's ``singlequote`` format: each value quoted, ``'`` escaped as ``\\'``."""
    values = value if isinstance(value, list) else [value]
    return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)


def _sqlstring(value: str | list[str]) -> str:
    """Grafana's ``sqlstring`` format: each value quoted, ``'`` doubled."""
    values = value if isinstance(value, list) else [value]
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def _csv(value: str | list[str]) -> str:
    return ",".join(value) if isinstance(value, list) else value


_FORMATS: dict[str | None, Callable[[str | list[str]], str]] = {
    None: _plugin_format,
    "singlequote": _singlequote,
    "sqlstring": _sqlstring,
    "csv": _csv,
    "raw": _csv,
}

# Grafana's template variable syntax: $var, [[var]], [[var:fmt]], ${var}, ${var.path:fmt}.
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)


def replace_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Grafana's ``templateSrv.replace`` with the plugin's formatter; unknown names stay."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        variable = variables.get(name)
        if variable is None:
            return match.group()  # not a dashboard variable: e.g. a backend $__macro
        if fmt not in _FORMATS:
            raise UnexpandedSqlError(f"${{{name}:{fmt}}}: format not modelled by this test")
        return _FORMATS[fmt](variable.resolved())

    return _VARIABLE.sub(substitute, sql)


def _to_datetime(t: dt.datetime) -> str:
    return f"toDateTime({math.floor(t.timestamp())})"


def _to_datetime64(t: dt.datetime) -> str:
    return f"fromUnixTimestamp64Milli({math.floor(t.timestamp() * 1000)})"


def _one_arg(name: str, args: list[str]) -> str:
    if len(args) != 1:
        raise UnexpandedSqlError(f"$__{name}: expected 1 argument, received {len(args)}")
    return args[0]


def _range_filter(column: str, low: str, high: str) -> str:
    return f"{column} >= {low} AND {column} <= {high}"


MACROS: dict[str, Callable[[TimeRange, list[str]], str]] = {
    "fromTime": lambda r, a: _to_datetime(r.start),
    "toTime": lambda r, a: _to_datetime(r.end),
    "fromTime_ms": lambda r, a: _to_datetime64(r.start),
    "toTime_ms": lambda r, a: _to_datetime64(r.end),
    "timeFilter": lambda r, a: _range_filter(
        _one_arg("timeFilter", a), _to_datetime(r.start), _to_datetime(r.end)
    ),
    "timeFilter_ms": lambda r, a: _range_filter(
        _one_arg("timeFilter_ms", a), _to_datetime64(r.start), _to_datetime64(r.end)
    ),
    "dateFilter": lambda r, a: _range_filter(
        _one_arg("dateFilter", a),
        f"toDate('{r.start:%Y-%m-%d}')",
        f"toDate('{r.end:%Y-%m-%d}')",
    ),
    "timeInterval": lambda r, a: (
        f"toStartOfInterval(toDateTime({_one_arg('timeInterval', a)}), "
        f"INTERVAL {int(max(r.interval_s, 1))} second)"
    ),
    "timeInterval_ms": lambda r, a: (
        f"toStartOfInterval(toDateTime64({_one_arg('timeInterval_ms', a)}, 3), "
        f"INTERVAL {int(max(r.interval_s * 1000, 1))} millisecond)"
    ),
    "interval_s": lambda r, a: str(int(max(r.interval_s, 1))),
}
"""The plugin's backend macros (pkg/macros/macros.go), with the same output text."""


def macro_matches(sql: str, name: str) -> list[tuple[str, str]]:
    """sqlutil ``getMacroMatches``: (macro text, argument text) of each ``$__name``.

    After the name, the text is scanned for the first parenthesis *anywhere* further on: a
    ``)`` first means no arguments, a ``(`` opens the argument list up to its matching ``)``
    (so ``$__fromTime AND x IN (1)`` swallows ``AND x IN (1)`` — macros without arguments need
    a closing parenthesis or the end of the query before any opening one).
    """
    found = []
    for match in re.finditer(rf"\$__{name}\b", sql):
        rest = sql[match.start() :]
        depth = arg_start = end = 0
        for index, char in enumerate(rest):
            if depth == 0 and end > 0:
                break
            if char == "(":
                depth += 1
                arg_start = arg_start or index + 1
            elif char == ")":
                if depth == 0:
                    end = 0
                    break
                depth -= 1
                end = index + 1
        end = end or match.end() - match.start()
        found.append((rest[:end], rest[arg_start : end - 1] if arg_start else ""))
    return found


def apply_macros(sql: str, time_range: TimeRange) -> str:
    """sqlutil ``Interpolate``: per macro, every match replaced (ReplaceAll) by its expansion."""
    for name, macro in MACROS.items():
        for text, arguments in macro_matches(sql, name):
            args = [a.strip() for a in arguments.split(",")]
            sql = sql.replace(text, macro(time_range, args))
    return sql


def grafana_sql(sql: str, variables: Mapping[str, Variable], time_range: TimeRange) -> str:
    """A dashboard query as ClickHouse receives it from Grafana; fails if anything is left."""
    expanded = apply_macros(
        replace_variables(apply_conditional_all(sql, variables), variables), time_range
    )
    leftover = re.search(r"\$\{?\w+|\[\[\w+", expanded)
    if leftover:
        raise UnexpandedSqlError(f"unexpanded {leftover.group()!r} in:\n{expanded}")
    return expanded


# --------------------------------------------------------------------------------------------
# the dashboard
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One ClickHouse query of the dashboard: a panel target or a query variable."""

    where: str
    sql: str


def load_dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    document = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(document, dict)
    return document


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels") or [])


def _is_clickhouse(datasource: Any) -> bool:
    return isinstance(datasource, dict) and datasource.get("type") == CLICKHOUSE_TYPE


def clickhouse_queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every ClickHouse panel target and query variable of the dashboard."""
    queries = [
        Query(f"variable {var['name']}", _variable_sql(var))
        for var in dashboard["templating"]["list"]
        if var["type"] == "query" and _is_clickhouse(var.get("datasource"))
    ]
    for panel in walk_panels(dashboard["panels"]):
        for target in panel.get("targets") or []:
            if _is_clickhouse(target.get("datasource") or panel.get("datasource")):
                where = f"panel {panel['title']!r} target {target['refId']}"
                queries.append(Query(where, target["rawSql"]))
    return queries


def _variable_sql(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return query if isinstance(query, str) else query["rawSql"]


def panel_sql(dashboard: dict[str, Any], title: str) -> str:
    """The SQL of the one ClickHouse target of the panel titled ``title``."""
    (panel,) = [p for p in walk_panels(dashboard["panels"]) if p.get("title") == title]
    (target,) = panel["targets"]
    return str(target["rawSql"])


def variable_sql(dashboard: dict[str, Any], name: str) -> str:
    """The SQL of the query variable ``name``."""
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    return _variable_sql(variable)


# --------------------------------------------------------------------------------------------
# the event set
# --------------------------------------------------------------------------------------------


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    """A UTC timestamp in 2027."""
    return dt.datetime(2027, month, day, hour, tzinfo=dt.UTC)


@dataclass
class Events:
    """Stored events with deterministic ids, so inserting one again is a true redelivery."""

    uid: str
    offset: int = 0
    built: dict[str, StoredEvent] = field(default_factory=dict)

    def __call__(self, name: str, data: EventData, occurred_at: dt.datetime) -> StoredEvent:
        """The stored event ``name`` (same name → same event_id)."""
        self.offset += 1
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"grafana/{self.uid}/{name}")
        envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=occurred_at)
        event = StoredEvent(
            envelope=envelope, data=data, topic=data.topic, partition=0, offset=self.offset
        )
        self.built[name] = event
        return event


@dataclass(frozen=True)
class Scenario:
    """Ids of the hand-made data set (unique per run; the chDB engine is session-wide)."""

    uid: str
    plan: str
    other_plan: str
    a: str
    b: str
    a_name: str
    b_name: str


def build_events(s: Scenario) -> tuple[list[StoredEvent], list[StoredEvent]]:
    """(events, redeliveries). Plan P: campaign A (search, margin 0.40, budget 1000 then 1500)
    and B (social, margin 0.50, budget 2000); plan Q: campaign X, which must never show."""
    e = Events(s.uid)
    x = f"X-{s.uid}"

    def plan(name: str, plan_id: str) -> StoredEvent:
        data = PlanCreated(
            plan_id=plan_id,
            name=f"Plan {plan_id}",
            period_start=dt.date(2027, 1, 1),
            period_end=dt.date(2027, 12, 31),
            currency="EUR",
            owner="cmo",
        )
        return e(name, data, at(1, 1))

    def campaign(cid: str, plan_id: str, title: str, channel: str, budget: str, margin: str):
        data = CampaignPlanned(
            campaign_id=cid,
            plan_id=plan_id,
            name=title,
            channel=channel,
            owner="ann",
            budget=D(budget),
            currency="EUR",
            start_date=dt.date(2027, 3, 1),
            end_date=dt.date(2027, 4, 30),
            gross_margin=D(margin),
            status="active",
        )
        return e(f"campaign-{cid}", data, at(2, 1))

    def spend(name: str, cid: str, channel: str, amount: str, when: dt.datetime) -> StoredEvent:
        data = SpendRecorded(campaign_id=cid, channel=channel, amount=D(amount), currency="EUR")
        return e(name, data, when)

    def ads(name: str, cid: str, channel: str, imps: int, clicks: int, when: dt.datetime):
        data = AdMetricsReported(campaign_id=cid, channel=channel, impressions=imps, clicks=clicks)
        return e(name, data, when)

    def lead(lead_id: str, cid: str, stage: str, when: dt.datetime, customer: str | None = None):
        channel = "search" if cid == s.a else "social"
        data = LeadStageChanged(
            lead_id=f"{lead_id}-{s.uid}",
            campaign_id=cid,
            channel=channel,
            stage=stage,
            customer_id=customer and f"{customer}-{s.uid}",
        )
        return e(f"{lead_id}-{stage}", data, when)

    def sale(name: str, customer: str, cid: str | None, amount: str, when: dt.datetime):
        channel = {s.a: "search", s.b: "social"}.get(cid or "")
        data = SaleCompleted(
            order_id=f"o-{name}-{s.uid}",
            customer_id=f"{customer}-{s.uid}",
            campaign_id=cid,
            channel=channel,
            amount=D(amount),
            currency="EUR",
        )
        return e(name, data, when)

    events = [
        plan("plan-p", s.plan),
        plan("plan-q", s.other_plan),
        campaign(s.a, s.plan, s.a_name, "search", "1000", "0.40"),
        campaign(s.b, s.plan, s.b_name, "social", "2000", "0.50"),
        campaign(x, s.other_plan, f"Other {s.uid}", "search", "5000", "1.0"),
        e(
            "a-budget",
            BudgetAllocated(campaign_id=s.a, plan_id=s.plan, amount=D("1500"), currency="EUR"),
            at(2, 2),
        ),
        # spend: A 100.00 (search) + 250.50 (social) in March, 40.00 in February; B 300.00
        spend("sp-a1", s.a, "search", "100.00", at(3, 2)),
        spend("sp-a2", s.a, "social", "250.50", at(3, 9)),
        spend("sp-a-feb", s.a, "search", "40.00", at(2, 20)),
        spend("sp-b1", s.b, "social", "300.00", at(3, 3)),
        spend("sp-x", x, "search", "999.00", at(3, 3)),
        # ad metrics: A 10000/300 (search) + 5000/200 (social); B 4000/100
        ads("ad-a1", s.a, "search", 10_000, 300, at(3, 2)),
        ads("ad-a2", s.a, "social", 5_000, 200, at(3, 10)),
        ads("ad-b1", s.b, "social", 4_000, 100, at(3, 4)),
        ads("ad-x", x, "search", 1_000, 1_000, at(3, 4)),
        # leads of A (search); highest stage in March in the comment
        lead("L1", s.a, "visitor", at(3, 1)),
        lead("L1", s.a, "lead", at(3, 2)),
        lead("L1", s.a, "mql", at(3, 3)),  # L1: mql
        lead("L2", s.a, "visitor", at(3, 1)),
        lead("L2", s.a, "sql", at(3, 4)),  # L2: sql (skipped lead and mql)
        lead("L3", s.a, "lead", at(3, 2)),
        lead("L3", s.a, "lost", at(3, 6)),  # L3: lead (lost ranks nowhere)
        lead("L4", s.a, "visitor", at(3, 3)),  # L4: visitor
        lead("L5", s.a, "lead", at(3, 2)),
        lead("L5", s.a, "sql", at(3, 7)),
        lead("L5", s.a, "sal", at(3, 8)),
        lead("L5", s.a, "opportunity", at(3, 9)),
        lead("L5", s.a, "customer", at(3, 20), customer="C1"),  # L5: customer
        lead("L6", s.a, "lead", at(2, 25)),  # L6: nothing in March
        lead("L6", s.a, "mql", at(4, 2)),
        # leads of B (social)
        lead("L9", s.b, "lead", at(3, 2)),
        lead("L9", s.b, "mql", at(3, 3)),  # L9: mql
        lead("L10", s.b, "lead", at(3, 5)),  # L10: lead
        lead("LX", x, "customer", at(3, 5), customer="CX"),
        # sales
        sale("s1", "C1", s.a, "1000.00", at(3, 5)),  # C1: first sale ever, to A, in March
        sale("s2", "C1", s.a, "500.00", at(3, 20)),
        sale("s3", "C2", s.b, "300.00", at(1, 15)),  # C2: first sale ever in January, to B
        sale("s4", "C2", s.a, "400.00", at(3, 10)),
        sale("s5", "C4", s.b, "600.00", at(3, 25)),  # C4: new customer of B
        sale("s6", "C5", None, "80.00", at(3, 2)),  # unattributed
        sale("sx", "CX", x, "7000.00", at(3, 6)),
    ]
    redelivered = [e.built[name] for name in ("sp-a1", "ad-a1", "s1", "L5-customer", "L1-mql")]
    return events, redelivered


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The Marketing KPIs dashboard, parsed."""
    return load_dashboard()


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Iterator[Scenario]:
    """The event set inserted twice over (redeliveries as separate parts), merges stopped."""
    uid = uuid.uuid4().hex[:12]
    s = Scenario(
        uid=uid,
        plan=f"P-{uid}",
        other_plan=f"Q-{uid}",
        a=f"A-{uid}",
        b=f"B-{uid}",
        a_name=f"Search {uid}",
        b_name=f"Social {uid}",
    )
    events, redelivered = build_events(s)
    for table in RAW_TABLES:
        warehouse_client.command(f"SYSTEM STOP MERGES mrm.{table}")
    try:
        warehouse.insert_events(warehouse_client, events=events)
        warehouse.insert_events(warehouse_client, events=redelivered)
        yield s
    finally:
        for table in RAW_TABLES:
            warehouse_client.command(f"SYSTEM START MERGES mrm.{table}")


def run(client: Client, sql: str) -> list[dict[str, Any]]:
    """Rows of a query as dicts (column name → value)."""
    return list(client.query(sql).named_results())


def selection(
    client: Client,
    dashboard: dict[str, Any],
    s: Scenario,
    *,
    campaigns: list[str] | None = None,
    channels: list[str] | None = None,
) -> dict[str, Variable]:
    """Variables as Grafana resolves them: plan = P; options come from the variable queries;
    ``None`` selects All."""
    march = TimeRange(MARCH_FROM, MARCH_TO)
    plan = Variable("plan", s.plan)
    scope = {"plan": plan}
    campaign_rows = client.query(
        grafana_sql(variable_sql(dashboard, "campaign"), scope, march)
    ).result_rows
    channel_rows = client.query(
        grafana_sql(variable_sql(dashboard, "channel"), scope, march)
    ).result_rows
    currency_rows = client.query(
        grafana_sql(variable_sql(dashboard, "currency"), scope, march)
    ).result_rows
    return {
        "currency": Variable("currency", str(currency_rows[0][0])),
        "plan": plan,
        "campaign": Variable(
            "campaign", campaigns or ["$__all"], options=[str(row[0]) for row in campaign_rows]
        ),
        "channel": Variable(
            "channel", channels or ["$__all"], options=[str(row[0]) for row in channel_rows]
        ),
    }


def panel_rows(
    client: Client,
    dashboard: dict[str, Any],
    title: str,
    variables: Mapping[str, Variable],
    time_range: TimeRange | None = None,
) -> list[dict[str, Any]]:
    """The rows ClickHouse returns for a panel under the given selection (March by default)."""
    sql = grafana_sql(
        panel_sql(dashboard, title), variables, time_range or TimeRange(MARCH_FROM, MARCH_TO)
    )
    return run(client, sql)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


# --------------------------------------------------------------------------------------------
# the expansion itself, against the plugin's documented output
# --------------------------------------------------------------------------------------------

MARCH = TimeRange(MARCH_FROM, MARCH_TO, interval_s=3600)


def test_time_macros_expand_like_the_plugin() -> None:
    sql = (
        "SELECT $__timeInterval(occurred_at) AS t FROM x WHERE $__timeFilter(occurred_at) "
        "AND $__timeFilter_ms(c) AND toDate(d) > '2027-01-01' GROUP BY t"
    )
    assert grafana_sql(sql, {}, MARCH) == (
        "SELECT toStartOfInterval(toDateTime(occurred_at), INTERVAL 3600 second) AS t FROM x "
        "WHERE occurred_at >= toDateTime(1803859200) AND occurred_at <= toDateTime(1806537599) "
        "AND c >= fromUnixTimestamp64Milli(1803859200000) "
        "AND c <= fromUnixTimestamp64Milli(1806537599999) AND toDate(d) > '2027-01-01' GROUP BY t"
    )
    assert grafana_sql("WHERE (a >= $__fromTime AND a <= $__toTime) AND 1", {}, MARCH) == (
        "WHERE (a >= toDateTime(1803859200) AND a <= toDateTime(1806537599)) AND 1"
    )
    assert grafana_sql("WHERE (b > $__fromTime_ms) AND $__interval_s > 0", {}, MARCH) == (
        "WHERE (b > fromUnixTimestamp64Milli(1803859200000)) AND 3600 > 0"
    )
    assert grafana_sql("SELECT $__timeInterval_ms(t)", {}, MARCH) == (
        "SELECT toStartOfInterval(toDateTime64(t, 3), INTERVAL 3600000 millisecond)"
    )


def test_a_macro_without_arguments_swallows_the_next_parenthesis() -> None:
    """The plugin SDK's scan, modelled faithfully: the reason the dashboard never uses one."""
    assert grafana_sql("WHERE a >= $__fromTime AND b IN (1)", {}, MARCH) == (
        "WHERE a >= toDateTime(1803859200)"
    )


def test_template_variables_expand_like_grafana_and_the_plugin() -> None:
    variables = {
        "plan": Variable("plan", "P-1"),
        "campaign": Variable("campaign", ["a", "o'b"]),
        "channel": Variable("channel", ["$__all"], options=["search", "social"]),
        "one": Variable("one", ["x"]),
    }
    sql = (
        "$plan ${plan} ${plan:singlequote} ${campaign} ${campaign:singlequote} "
        "${campaign:sqlstring} $channel ${one:singlequote} [[plan]] $__timeFilter(t)"
    )
    assert replace_variables(sql, variables) == (
        "P-1 P-1 'P-1' 'a','o'b' 'a','o\\'b' 'a','o''b' 'search','social' 'x' P-1 $__timeFilter(t)"
    )


def test_conditional_all_drops_the_condition_only_when_all_is_selected() -> None:
    sql = "WHERE $__conditionalAll(channel IN (${channel:singlequote}), $channel) AND 1"
    every = {"channel": Variable("channel", ["$__all"], options=["search", "social"])}
    some = {"channel": Variable("channel", ["search"], options=["search", "social"])}
    assert grafana_sql(sql, every, MARCH) == "WHERE 1=1 AND 1"
    assert grafana_sql(sql, some, MARCH) == "WHERE channel IN ('search') AND 1"


def test_leftovers_are_reported() -> None:
    with pytest.raises(UnexpandedSqlError):
        grafana_sql("SELECT ${nope}", {}, MARCH)
    with pytest.raises(UnexpandedSqlError):
        grafana_sql("SELECT $__timeGroup(t, '1h')", {}, MARCH)


# --------------------------------------------------------------------------------------------
# the dashboard's shape
# --------------------------------------------------------------------------------------------


def test_every_clickhouse_target_is_raw_sql_on_the_provisioned_data_source(
    dashboard: dict[str, Any],
) -> None:
    provisioned = DATASOURCES_FILE.read_text()
    assert f"uid: {CLICKHOUSE_UID}" in provisioned and f"type: {CLICKHOUSE_TYPE}" in provisioned
    panels = list(walk_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    clickhouse_panels = 0
    for panel in panels:
        if not _is_clickhouse(panel.get("datasource")):
            continue
        clickhouse_panels += 1
        targets = panel["targets"]
        assert targets, panel["title"]
        for target in targets:
            assert target["datasource"] == {"type": CLICKHOUSE_TYPE, "uid": CLICKHOUSE_UID}
            assert target["editorType"] == "sql", panel["title"]
            assert target["rawSql"].strip(), panel["title"]
            expected = (0, "timeseries") if panel["type"] == "timeseries" else (1, "table")
            assert (target["format"], target["queryType"]) == expected, panel["title"]
    assert clickhouse_panels >= 7


def test_variables_plan_campaign_channel_currency(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["plan", "campaign", "channel", "currency"]
    for name, variable in variables.items():
        assert variable["type"] == "query", name
        assert variable["datasource"] == {"type": CLICKHOUSE_TYPE, "uid": CLICKHOUSE_UID}
    assert not variables["plan"]["multi"]
    assert "plans_current" in variables["plan"]["query"]
    for name in ("campaign", "channel"):
        assert variables[name]["multi"] and variables[name]["includeAll"], name
        assert "${plan" in variables[name]["query"], f"{name} depends on the plan"
    assert "campaigns_current" in variables["campaign"]["query"]
    # one currency at a time for the company-wide rows; the plan's first
    assert not variables["currency"]["multi"] and not variables["currency"]["includeAll"]
    assert "${plan" in variables["currency"]["query"]


COMPANY_WIDE = (
    "Sales by brand over time",
    "Sales by brand",
    "Sales by partner over time",
    "Sales by partner",
    "Brands and channels side by side",
    "RFM segment sizes",
)
"""Panels over all sales in the selected currency, whatever the plan selection (sell-in rarely
names a campaign)."""
WHOLE_HISTORY = ("Modelled vs actual per campaign",)
"""Panels comparing a model with everything a campaign has given so far: no time range."""


def test_only_macros_with_arguments_are_used(dashboard: dict[str, Any]) -> None:
    """``$__fromTime``-style macros misparse before a parenthesis (see above); and a macro whose
    name prefixes another (``fromTime`` / ``fromTime_ms``) is replaced in Go map order."""
    for query in clickhouse_queries(dashboard):
        used = re.findall(r"\$__(\w+)(.?)", query.sql)
        assert {name for name, _ in used} <= {"timeFilter", "timeInterval", "conditionalAll"}
        assert all(after == "(" for _, after in used), query.where


def test_every_panel_query_uses_the_variables_and_the_time_range(
    dashboard: dict[str, Any],
) -> None:
    titles = set()
    for query in clickhouse_queries(dashboard):
        if query.where.startswith("variable"):
            continue
        title = query.where.split("'")[1]
        titles.add(title)
        if title in COMPANY_WIDE:
            assert "${currency:singlequote}" in query.sql, query.where
            assert "${campaign" not in query.sql and "$channel" not in query.sql, query.where
        else:
            assert "${campaign:singlequote}" in query.sql, query.where
            assert "$__conditionalAll(" in query.sql and "$channel)" in query.sql, query.where
        assert ("$__timeFilter(" in query.sql) is (title not in WHOLE_HISTORY), query.where
    assert titles >= {*COMPANY_WIDE, *WHOLE_HISTORY}


# --------------------------------------------------------------------------------------------
# every query runs on chDB
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("campaigns", "channels"),
    [(None, None), ("A", None), (None, ["search"]), ("B", ["social", "search"]), (None, ["tv"])],
    ids=["all", "campaign-a", "channel-search", "b-two-channels", "channel-without-data"],
)
def test_every_clickhouse_query_runs(
    warehouse_client: Client,
    dashboard: dict[str, Any],
    scenario: Scenario,
    campaigns: str | None,
    channels: list[str] | None,
) -> None:
    ids = {"A": [scenario.a], "B": [scenario.b], None: None}[campaigns]
    variables = selection(warehouse_client, dashboard, scenario, campaigns=ids, channels=channels)
    queries = clickhouse_queries(dashboard)
    assert len(queries) >= 10
    for interval in (60, 3600, DAY_S):
        for query in queries:
            sql = grafana_sql(query.sql, variables, TimeRange(MARCH_FROM, MARCH_TO, interval))
            try:
                warehouse_client.query(sql)
            except ClickHouseError as error:
                raise AssertionError(f"{query.where} failed: {error}\n{sql}") from error


@pytest.mark.integration
def test_variable_queries(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    march = TimeRange(MARCH_FROM, MARCH_TO)
    plans = warehouse_client.query(grafana_sql(variable_sql(dashboard, "plan"), {}, march))
    assert (scenario.plan, f"Plan {scenario.plan}") in plans.result_rows  # value, text
    variables = selection(warehouse_client, dashboard, scenario)
    assert variables["campaign"].options == [scenario.a, scenario.b]  # ordered by name
    assert variables["channel"].options == ["search", "social"]
    assert variables["currency"].value == "EUR"  # the plan's currency comes first


# --------------------------------------------------------------------------------------------
# key panels by hand
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_redeliveries_really_are_duplicate_rows(
    warehouse_client: Client, scenario: Scenario
) -> None:
    raw = warehouse_client.query(
        "SELECT count() FROM mrm.spend WHERE campaign_id = {a:String}",
        parameters={"a": scenario.a},
    ).result_rows[0][0]
    assert raw == 4  # 3 events + sp-a1 again, in a part of its own (merges are stopped)


@pytest.mark.integration
def test_selection_totals_by_hand(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    variables = selection(warehouse_client, dashboard, scenario)
    (row,) = panel_rows(warehouse_client, dashboard, "Selection totals", variables)
    assert row["total_spend"] == D("650.50")  # 100 + 250.50 + 300; February and plan Q out
    assert row["total_budget"] == D("3500.00")  # A 1500 (allocated after planning) + B 2000
    assert row["budget_utilisation"] == pytest.approx(650.50 / 3500)
    assert row["total_leads"] == 6  # L1 L2 L3 L5 L9 L10 — one scope, not a sum of campaigns
    assert row["cpl"] == pytest.approx(650.50 / 6)
    assert row["total_new_customers"] == 2  # C1 (A), C4 (B); C2's first sale was in January
    assert row["cac"] == pytest.approx(325.25)
    assert row["total_gross_profit"] == D("1060")  # 1900 * 0.40 + 600 * 0.50
    assert row["romi"] == pytest.approx((1060 - 650.50) / 650.50)

    only_b = selection(warehouse_client, dashboard, scenario, campaigns=[scenario.b])
    (row,) = panel_rows(warehouse_client, dashboard, "Selection totals", only_b)
    assert (row["total_spend"], row["total_leads"], row["total_new_customers"]) == (
        D("300.00"),
        2,
        1,
    )
    assert row["romi"] == pytest.approx(0.0)  # (300 - 300) / 300

    nothing = selection(warehouse_client, dashboard, scenario, channels=["tv"])
    (row,) = panel_rows(warehouse_client, dashboard, "Selection totals", nothing)
    assert (row["total_spend"], row["budget_utilisation"], row["total_leads"]) == (D(0), 0.0, 0)
    assert (row["cpl"], row["cac"], row["romi"]) == (None, None, None)  # division by zero


@pytest.mark.integration
def test_spend_vs_budget_by_hand(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    variables = selection(warehouse_client, dashboard, scenario)
    rows = panel_rows(warehouse_client, dashboard, "Spend vs budget per campaign", variables)
    assert [(r["campaign"], r["budget"], r["spend"]) for r in rows] == [
        (scenario.a_name, D("1500.00"), D("350.50")),  # sp-a1 counted once
        (scenario.b_name, D("2000.00"), D("300.00")),
    ]
    assert [r["utilisation"] for r in rows] == pytest.approx([350.50 / 1500, 300 / 2000])

    search = selection(warehouse_client, dashboard, scenario, channels=["search"])
    rows = panel_rows(warehouse_client, dashboard, "Spend vs budget per campaign", search)
    assert [(r["campaign"], r["spend"], r["utilisation"]) for r in rows] == [
        (scenario.a_name, D("100.00"), pytest.approx(100 / 1500)),
        (scenario.b_name, D(0), 0.0),  # no search spend: zero, and still listed
    ]


@pytest.mark.integration
def test_romi_cpl_cac_per_campaign_by_hand(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    variables = selection(warehouse_client, dashboard, scenario)
    a, b = panel_rows(warehouse_client, dashboard, "ROMI, CPL and CAC per campaign", variables)
    assert a["campaign"] == scenario.a_name
    assert (a["spend"], a["leads"], a["new_customers"]) == (D("350.50"), 4, 1)
    assert a["cpl"] == pytest.approx(350.50 / 4)  # L1 L2 L3 L5
    assert a["cac"] == pytest.approx(350.50)  # C1 only
    assert (a["revenue"], a["gross_profit"]) == (D("1900.00"), D("760"))  # s1 once, s2, s4
    assert a["romi"] == pytest.approx((760 - 350.50) / 350.50)
    assert b["campaign"] == scenario.b_name
    assert (b["spend"], b["leads"], b["new_customers"], b["revenue"]) == (
        D("300.00"),
        2,
        1,
        D("600.00"),
    )
    assert (b["cpl"], b["cac"], b["romi"]) == (pytest.approx(150.0), pytest.approx(300.0), 0.0)

    search = selection(warehouse_client, dashboard, scenario, channels=["search"])
    a, b = panel_rows(warehouse_client, dashboard, "ROMI, CPL and CAC per campaign", search)
    assert (a["spend"], a["leads"], a["cpl"], a["cac"]) == (D("100.00"), 4, 25.0, 100.0)
    assert a["romi"] == pytest.approx((760 - 100) / 100)
    assert (b["spend"], b["leads"], b["new_customers"]) == (D(0), 0, 0)
    assert (b["cpl"], b["cac"], b["romi"]) == (None, None, None)  # division by zero → NULL


@pytest.mark.integration
def test_ctr_cpc_per_campaign_by_hand(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    variables = selection(warehouse_client, dashboard, scenario)
    rows = panel_rows(warehouse_client, dashboard, "CTR and CPC per campaign", variables)
    assert [(r["campaign"], r["impressions"], r["clicks"]) for r in rows] == [
        (scenario.a_name, 15_000, 500),  # ad-a1 counted once
        (scenario.b_name, 4_000, 100),
    ]
    assert [r["ctr"] for r in rows] == pytest.approx([500 / 15_000, 100 / 4_000])
    assert [r["cpc"] for r in rows] == pytest.approx([350.50 / 500, 3.0])

    search = selection(warehouse_client, dashboard, scenario, channels=["search"])
    a, b = panel_rows(warehouse_client, dashboard, "CTR and CPC per campaign", search)
    assert (a["ctr"], a["cpc"]) == (pytest.approx(0.03), pytest.approx(100 / 300))
    assert (b["impressions"], b["ctr"], b["cpc"]) == (0, None, None)


@pytest.mark.integration
def test_funnel_by_hand(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    variables = selection(warehouse_client, dashboard, scenario)
    rows = panel_rows(warehouse_client, dashboard, "Lead funnel", variables)
    # highest stage in March: L1 mql, L2 sql, L3 lead, L4 visitor, L5 customer, L9 mql, L10 lead
    assert [(r["stage"], r["leads"]) for r in rows] == [
        ("visitor", 7),
        ("lead", 6),
        ("mql", 4),
        ("sql", 2),
        ("sal", 1),
        ("opportunity", 1),
        ("customer", 1),  # L5's customer event was delivered twice
    ]
    only_a = selection(warehouse_client, dashboard, scenario, campaigns=[scenario.a])
    rows = panel_rows(warehouse_client, dashboard, "Lead funnel", only_a)
    assert [r["leads"] for r in rows] == [5, 4, 3, 2, 1, 1, 1]
    nothing = selection(warehouse_client, dashboard, scenario, channels=["tv"])
    rows = panel_rows(warehouse_client, dashboard, "Lead funnel", nothing)
    assert [r["leads"] for r in rows] == [0] * 7  # every stage still listed


@pytest.mark.integration
def test_spend_over_time_by_hand(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    variables = selection(warehouse_client, dashboard, scenario)
    rows = panel_rows(warehouse_client, dashboard, "Spend over time", variables)
    assert [(_naive_utc(r["time"]), r["campaign"], r["spend"]) for r in rows] == [
        (dt.datetime(2027, 3, 2), scenario.a_name, D("100.00")),
        (dt.datetime(2027, 3, 3), scenario.b_name, D("300.00")),
        (dt.datetime(2027, 3, 9), scenario.a_name, D("250.50")),
    ]
    week = TimeRange(at(3, 1, 0), at(3, 7, 23), interval_s=3600)
    rows = panel_rows(warehouse_client, dashboard, "Spend over time", variables, week)
    assert [(_naive_utc(r["time"]), r["spend"]) for r in rows] == [
        (dt.datetime(2027, 3, 2, 10), D("100.00")),
        (dt.datetime(2027, 3, 3, 10), D("300.00")),
    ]


@pytest.mark.integration
def test_leads_over_time_by_hand(
    warehouse_client: Client, dashboard: dict[str, Any], scenario: Scenario
) -> None:
    variables = selection(warehouse_client, dashboard, scenario)
    rows = panel_rows(warehouse_client, dashboard, "Leads over time", variables)
    # first reach of 'lead' or later: L1 L3 L5 on Mar 2, L2 on Mar 4 (sql); L9 Mar 2, L10 Mar 5
    assert [(_naive_utc(r["time"]), r["campaign"], r["leads"]) for r in rows] == [
        (dt.datetime(2027, 3, 2), scenario.a_name, 3),
        (dt.datetime(2027, 3, 2), scenario.b_name, 1),
        (dt.datetime(2027, 3, 4), scenario.a_name, 1),
        (dt.datetime(2027, 3, 5), scenario.b_name, 1),
    ]
