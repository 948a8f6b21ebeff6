"""The warehouse's tables and views, and ``migrate``, which creates them in order.

Tables:

* raw streams ``spend``, ``ad_metrics``, ``lead_events``, ``sales``, ``tasks`` —
  ReplacingMergeTree whose sorting key ends in ``event_id``, so a redelivered event collapses
  on merge; ``sales`` also keeps a sale's sales units and pricing (migration 5) and outlet (10);
* dimensions fed from ``mrm.planning.v1``: ``plans`` + ``plan_approvals``, ``campaigns`` (full
  state, by ``version``), ``campaign_status`` (by ``version``), ``campaign_budgets`` (by
  ``occurred_at``, since ``budget.reallocated`` carries no version), ``kpi_targets``; the views
  ``campaigns_current`` / ``plans_current`` join them into the latest state;
* ``sales_units``, ``sales_targets`` — the sales-target cascade (migration 6);
* ``alert_state``, ``campaign_changes``, ``monitor_marks`` — the target monitor's state
  (breach states for hysteresis across restarts, the change log, per-job marks), read and
  written by ``alerts``;
* ``budget_lines``, ``discount_limits`` and ``campaigns.line_id`` — what the discount checks
  need of planning (migration 7, see ``discounts``); the lines in full, ``budget_line_removals``
  and ``plans.budget`` (the cap) — what the plan report's budget tree needs (migration 8, see
  ``budgets``);
* ``reallocation_rules`` — the plans' reallocation rules (migration 9, see ``rules``);
* ``customer_profiles`` — each customer's latest profile from ``mrm.customers.v1`` by
  ``version`` (migration 11, see ``customers``);
* ``segment_definitions`` (every version of the rule-based segments, tombstones for removals)
  and ``customer_profile_versions`` (every version of every profile, fed by a materialized
  view) — migration 12, see ``segment_defs``;
* ``campaign_models`` — each campaign's model at its approval, one row per figure, as
  measurement published it in ``campaign.modelled`` (migration 15, see ``modelled``);
* ``campaigns.sales_unit_id`` — the sales unit a campaign plans against (migration 14);
* ``campaigns.target_segment`` — the customer segment a campaign aims at ('' = none; migration
  13, see ``target_segments``);
* ``lead_funnel`` — pre-aggregate of ``lead_events`` (materialized view): highest stage, lost,
  first and last event per (campaign, lead); see migration 3 for why only the funnel has one.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from services.measurement.warehouse import (
    alerts,
    budgets,
    customers,
    discounts,
    modelled,
    rules,
    segment_defs,
)
from services.measurement.warehouse._sql import ident
from services.measurement.warehouse.client import DEFAULT_DATABASE
from services.measurement.warehouse.cluster_migrate import migrate_claimed

_RAW_META = """
    source LowCardinality(String),
    _topic LowCardinality(String),
    _partition Int32,
    _offset Int64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
"""

_RAW_ENGINE = "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(occurred_at)"

_LEAD_FUNNEL_SELECT = """SELECT campaign_id, lead_id, max(stage_rank) AS rank,
    max(stage_rank = -1) AS lost, min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM {db}.lead_events GROUP BY campaign_id, lead_id"""

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "raw event streams",
        (
            f"""CREATE TABLE IF NOT EXISTS {{db}}.spend (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                campaign_id String, channel LowCardinality(String),
                amount Decimal(18, 2), currency LowCardinality(String), {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.ad_metrics (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                campaign_id String, channel LowCardinality(String),
                impressions UInt64, clicks UInt64, {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.lead_events (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                lead_id String, campaign_id String, channel LowCardinality(String),
                stage LowCardinality(String), stage_rank Int8, customer_id String,
                expected_value Nullable(Decimal(18, 2)), {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, lead_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.sales (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                order_id String, customer_id String, campaign_id String,
                channel LowCardinality(String), amount Decimal(18, 2),
                discount_amount Decimal(18, 2), currency LowCardinality(String), {_RAW_META},
                INDEX customer_idx customer_id TYPE bloom_filter GRANULARITY 4
            ) {_RAW_ENGINE} ORDER BY (campaign_id, customer_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.tasks (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                campaign_id String, stage_id String, status LowCardinality(String),
                assignee String, comment String, {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, event_id)""",
        ),
    ),
    (
        2,
        "planning dimensions and alert state",
        (
            """CREATE TABLE IF NOT EXISTS {db}.plans (
                plan_id String, name String, period_start Date, period_end Date,
                currency LowCardinality(String), owner String, status LowCardinality(String),
                updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY plan_id""",
            """CREATE TABLE IF NOT EXISTS {db}.plan_approvals (
                plan_id String, approved_by String, approved_at DateTime64(3, 'UTC'),
                event_id UUID
            ) ENGINE = ReplacingMergeTree(approved_at) ORDER BY plan_id""",
            """CREATE TABLE IF NOT EXISTS {db}.campaigns (
                campaign_id String, plan_id String, name String,
                channel LowCardinality(String), brand Nullable(String), owner String,
                budget Decimal(18, 2), currency LowCardinality(String),
                start_date Date, end_date Date, gross_margin Decimal(18, 6),
                status LowCardinality(String), version UInt64,
                updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(version) ORDER BY campaign_id""",
            """CREATE TABLE IF NOT EXISTS {db}.campaign_status (
                campaign_id String, plan_id String, status LowCardinality(String),
                version UInt64, updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(version) ORDER BY campaign_id""",
            """CREATE TABLE IF NOT EXISTS {db}.campaign_budgets (
                campaign_id String, plan_id String, budget Decimal(18, 2),
                currency LowCardinality(String), updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY campaign_id""",
            """CREATE TABLE IF NOT EXISTS {db}.kpi_targets (
                target_id String, campaign_id String, kpi LowCardinality(String),
                target Decimal(38, 10), direction LowCardinality(String),
                weight Decimal(18, 6), tolerance Decimal(18, 6),
                updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY target_id""",
            """CREATE TABLE IF NOT EXISTS {db}.alert_state (
                campaign_id String, target_id String, breached UInt8,
                changed_at DateTime64(3, 'UTC'), version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (campaign_id, target_id)""",
            """CREATE VIEW IF NOT EXISTS {db}.campaigns_current AS
            SELECT c.campaign_id AS campaign_id, c.plan_id AS plan_id, c.name AS name,
                   c.channel AS channel, c.brand AS brand, c.owner AS owner,
                   if(b.campaign_id = '', c.budget, b.budget) AS budget,
                   c.currency AS currency, c.start_date AS start_date, c.end_date AS end_date,
                   c.gross_margin AS gross_margin,
                   if(s.campaign_id = '' OR s.version < c.version, c.status, s.status) AS status,
                   greatest(c.version, s.version) AS version
            FROM (SELECT * FROM {db}.campaigns FINAL) AS c
            LEFT ANY JOIN (SELECT * FROM {db}.campaign_status FINAL) AS s
                ON s.campaign_id = c.campaign_id
            LEFT ANY JOIN (SELECT * FROM {db}.campaign_budgets FINAL) AS b
                ON b.campaign_id = c.campaign_id""",
            """CREATE VIEW IF NOT EXISTS {db}.plans_current AS
            SELECT p.plan_id AS plan_id, p.name AS name, p.period_start AS period_start,
                   p.period_end AS period_end, p.currency AS currency, p.owner AS owner,
                   if(a.plan_id = '', p.status, 'approved') AS status,
                   a.approved_by AS approved_by
            FROM (SELECT * FROM {db}.plans FINAL) AS p
            LEFT ANY JOIN (SELECT * FROM {db}.plan_approvals FINAL) AS a
                ON a.plan_id = p.plan_id""",
        ),
    ),
    (
        3,
        "lead funnel pre-aggregate",
        # The funnel's heavy part is the highest stage per lead. ``lead_funnel`` keeps, per
        # (campaign_id, lead_id), the highest stage rank, whether the lead was lost and the
        # first/last event time; every column is a max or a min, so a re-delivered event_id
        # (seen again by the view at insert) changes nothing, and the backfill below may
        # overlap rows the view already wrote. Read with FINAL, the table is exact before
        # merges. A period uses it for the leads whose events all lie inside it and the raw
        # events for the leads that straddle one of its ends, so any [from, to) stays exact.
        # Measured on the 10 M-event bench history (p50, 2 busy cores): one campaign's funnel
        # 58-66 ms from the raw events, 10 ms from merged lead_funnel, 48 ms with three small
        # unmerged parts on top; a plan's per-campaign funnel 660 / 30 / 125 ms. A plan's
        # distinct leads (a lead may have events in two of its campaigns) regroup by lead_id:
        # 550 ms raw, 245 ms from lead_funnel (no FINAL needed: max/min of the unmerged rows).
        # Sums get no such view. A view fed from inserts adds a re-delivered event's amount
        # again, so it would need a dedup step before it; and the raw FINAL read is cheap at
        # these volumes: a campaign's spend 4.7 ms raw vs 5.1 ms from a (campaign, day) sum
        # table, a plan's 11 ms vs 6 ms — not worth a second, harder-to-keep-exact copy.
        (
            """CREATE TABLE IF NOT EXISTS {db}.lead_funnel (
                campaign_id String, lead_id String,
                rank SimpleAggregateFunction(max, Int8),
                lost SimpleAggregateFunction(max, UInt8),
                first_at SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
                last_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
            ) ENGINE = AggregatingMergeTree ORDER BY (campaign_id, lead_id)""",
            f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.lead_funnel_mv
            TO {{db}}.lead_funnel AS {_LEAD_FUNNEL_SELECT}""",
            f"INSERT INTO {{db}}.lead_funnel {_LEAD_FUNNEL_SELECT}",
        ),
    ),
    (4, "target monitor change log and marks", alerts.MIGRATION),
    (
        5,
        "sales units and pricing of sales",
        # Optional fields of sale.completed. Absent ones are stored as '' (list_price: NULL),
        # as an absent campaign_id is, and rows written before this migration read the same.
        tuple(
            f"ALTER TABLE {{db}}.sales ADD COLUMN IF NOT EXISTS {column}"
            for column in (
                "partner_id LowCardinality(String) DEFAULT ''",
                "rep_id LowCardinality(String) DEFAULT ''",
                "region LowCardinality(String) DEFAULT ''",
                "product_id LowCardinality(String) DEFAULT ''",
                "brand LowCardinality(String) DEFAULT ''",
                "list_price Nullable(Decimal(18, 2)) DEFAULT NULL",
                "discount_reason String DEFAULT ''",
                "sale_kind LowCardinality(String) DEFAULT ''",
            )
        ),
    ),
    (
        6,
        "sales units and sales targets",
        # The sales-target cascade from mrm.planning.v1, for target progress (``progress``).
        # A unit has no version: the latest sales_unit.set wins (by occurred_at); a target
        # keeps its target_id across versions. brand '' = a target over all brands.
        (
            """CREATE TABLE IF NOT EXISTS {db}.sales_units (
                unit_id String, parent_id String, kind LowCardinality(String), name String,
                owner String, code String, updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY unit_id""",
            """CREATE TABLE IF NOT EXISTS {db}.sales_targets (
                target_id String, unit_id String, period String, period_start Date,
                period_end Date, brand String, amount Decimal(18, 2),
                currency LowCardinality(String), version UInt64,
                updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(version) ORDER BY target_id""",
        ),
    ),
    (7, "discount limits, budget lines and campaigns' lines", discounts.MIGRATION),
    (8, "budget lines in full, their removals and plans' caps", budgets.MIGRATION),
    (9, "reallocation rules", rules.MIGRATION),
    (
        10,
        "outlet of sales",
        # Optional, like the fields of migration 5: an absent outlet (and every row written
        # before this migration) reads ''.
        (
            "ALTER TABLE {db}.sales ADD COLUMN IF NOT EXISTS outlet LowCardinality(String) "
            "DEFAULT ''",
        ),
    ),
    (11, "customer profiles", customers.MIGRATION),
    (12, "segment definitions and customer profile history", segment_defs.MIGRATION),
    (
        13,
        "target segment of campaigns",
        # Optional in the campaign events: no target (and every row written before this
        # migration) reads ''.
        (
            "ALTER TABLE {db}.campaigns ADD COLUMN IF NOT EXISTS target_segment "
            "LowCardinality(String) DEFAULT ''",
        ),
    ),
    (
        14,
        "campaigns' sales units",
        # The unit a campaign plans its sales uplift against: its open leads forecast that
        # unit's sales (``target_forecast``). Rows written before read '' (none).
        ("ALTER TABLE {db}.campaigns ADD COLUMN IF NOT EXISTS sales_unit_id String DEFAULT ''",),
    ),
    (15, "campaign models at approval", modelled.MIGRATION),
)
"""(version, name, DDL statements) in order; each statement is idempotent on its own."""


def migrate(client: Client, *, database: str = DEFAULT_DATABASE, cluster: str = "") -> list[int]:
    """Apply the migrations not yet recorded in ``schema_migrations``; return the versions this
    process applied. Each is applied once, under a claim (``cluster_migrate``), however many
    replicas (or ``mrm migrate``) start at once.

    With ``cluster`` (``MRM_CLICKHOUSE_CLUSTER``) the same migrations are rendered for that
    cluster (replicated local tables, Distributed tables under the original names, DDL ``ON
    CLUSTER``)."""
    return migrate_claimed(client, MIGRATIONS, db=ident(database), cluster=cluster)
