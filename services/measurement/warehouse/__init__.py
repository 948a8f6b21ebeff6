"""Measurement's ClickHouse adapter (the warehouse), one module per job.

* ``client`` — ``connect`` (a ClickHouse server or the in-process chDB), ``ping``, and
  ``Warehouse``, the pool that runs these functions from async code;
* ``schema`` — tables and views, ``migrate``;
* ``writes`` — events as table rows, ``insert_events`` / ``insert_batch``;
* ``columns`` — a batch of Kafka records as Arrow insert columns (the ingest hot path);
* ``kpis`` — KPIs of a campaign, several campaigns, a plan; the funnel; targets and currencies;
* ``scopes`` — KPIs of a channel or of the whole company; a campaign against its past peers;
* ``target_segments`` — the campaigns of each target segment as one scope, side by side;
* ``currencies`` — a multi-campaign scope split by currency, converted to the reporting one;
* ``series`` — KPIs per day or week, a plan's daily spend, time between funnel stages;
* ``pipeline`` — a scope's open leads and measured funnel timing for the pipeline forecast;
* ``trade`` — sales by brand, partner, product, region, outlet or channel (sell-in, sell-out);
* ``trade_series`` — one brand's, partner's, product's or region's sales per day or week;
* ``uplift`` — the weekly sales around a campaign of the product/partner pairs it promoted;
* ``sales_targets`` — the sales-target cascade's units and targets, sales per attribution;
* ``budgets`` — a plan's budget as the report's budget tree needs it (lines, draws, spend);
* ``alerts`` — the target monitor's state: alert states, the campaign change log, its marks;
* ``segment_defs`` — rule-based segment definitions (versions, tombstones) and profile history;
* ``segment_members`` — profiles as of an instant; the sales and leads of a segment's members;
* ``_sql``, ``_dims``, ``_measures`` — what the query modules share: scopes and period bounds,
  one ``UNION ALL`` round trip per call, the campaigns' latest state, the measure streams.

The public functions are re-exported here, so call sites read ``warehouse.campaign_kpis(...)``.
"""

from services.measurement.warehouse._sql import BUCKETS
from services.measurement.warehouse.client import DEFAULT_DATABASE, Warehouse, connect, ping
from services.measurement.warehouse.kpis import (
    campaign_currencies,
    campaign_kpis,
    campaigns_kpis,
    funnel,
    kpi_targets,
    plan_kpis,
    targets_by_campaign,
)
from services.measurement.warehouse.schema import MIGRATIONS, migrate
from services.measurement.warehouse.scopes import channel_kpis, company_kpis, compare_campaign
from services.measurement.warehouse.series import (
    MAX_SERIES_BUCKETS,
    SERIES_KPIS,
    SERIES_SCOPES,
    kpi_series,
    plan_daily_spend,
    series_buckets,
    stage_durations,
)
from services.measurement.warehouse.target_segments import segment_effectiveness
from services.measurement.warehouse.trade import SALES_DIMENSIONS, sales_by
from services.measurement.warehouse.trade_series import TRADE_SCOPES, trade_series
from services.measurement.warehouse.writes import (
    COLUMNS,
    StoredEvent,
    insert_batch,
    insert_events,
    rows_by_table,
)

__all__ = [
    "BUCKETS",
    "COLUMNS",
    "DEFAULT_DATABASE",
    "MAX_SERIES_BUCKETS",
    "MIGRATIONS",
    "SALES_DIMENSIONS",
    "SERIES_KPIS",
    "SERIES_SCOPES",
    "TRADE_SCOPES",
    "StoredEvent",
    "Warehouse",
    "campaign_currencies",
    "campaign_kpis",
    "campaigns_kpis",
    "channel_kpis",
    "company_kpis",
    "compare_campaign",
    "connect",
    "funnel",
    "insert_batch",
    "insert_events",
    "kpi_series",
    "kpi_targets",
    "migrate",
    "ping",
    "plan_daily_spend",
    "plan_kpis",
    "rows_by_table",
    "sales_by",
    "segment_effectiveness",
    "series_buckets",
    "stage_durations",
    "targets_by_campaign",
    "trade_series",
]
