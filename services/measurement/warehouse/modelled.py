"""Each campaign's model at its approval (``campaign.modelled``) as table rows, so that SQL —
Grafana's "Modelled vs actual" panel — reads what was expected next to what was measured.

Measurement is the publisher of ``campaign.modelled`` (``campaign_models.ApprovalModels``): it
writes the event's figures here right after publishing it and before recording the campaign as
modelled, so a campaign recorded as modelled has its rows, and a round repeated after a crash
in between writes the same campaign's rows again. ``campaign_models`` holds one row per
(campaign, figure) — ReplacingMergeTree on that key, by ``modelled_at``: rows written again
collapse into the latest, and reads use FINAL, so a figure never counts twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from shared.events.kpi import CampaignModelled

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {db}.campaign_models (
        campaign_id String, plan_id String, figure LowCardinality(String),
        p10 Nullable(Decimal(38, 10)), p50 Nullable(Decimal(38, 10)),
        p90 Nullable(Decimal(38, 10)), currency LowCardinality(String),
        budget Decimal(18, 2), match LowCardinality(String), peers UInt32,
        as_of DateTime64(3, 'UTC'), modelled_at DateTime64(3, 'UTC'), event_id UUID
    ) ENGINE = ReplacingMergeTree(modelled_at) ORDER BY (campaign_id, figure)""",
)
"""DDL of the models table (migration 15 of ``schema.MIGRATIONS``)."""

_COLUMNS = (
    "campaign_id",
    "plan_id",
    "figure",
    "p10",
    "p50",
    "p90",
    "currency",
    "budget",
    "match",
    "peers",
    "as_of",
    "modelled_at",
    "event_id",
)
_TYPES = (
    "String",
    "String",
    "LowCardinality(String)",
    "Nullable(Decimal(38, 10))",
    "Nullable(Decimal(38, 10))",
    "Nullable(Decimal(38, 10))",
    "LowCardinality(String)",
    "Decimal(18, 2)",
    "LowCardinality(String)",
    "UInt32",
    "DateTime64(3, 'UTC')",
    "DateTime64(3, 'UTC')",
    "UUID",
)


def _band_value(value: Decimal | int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def save_model(
    client: Client, *, event: CampaignModelled, event_id: uuid.UUID, now: dt.datetime
) -> int:
    """Write a ``campaign.modelled``'s figures, one row per figure; return how many."""
    rows = [
        [
            event.campaign_id,
            event.plan_id or "",
            name,
            _band_value(band.p10),
            _band_value(band.p50),
            _band_value(band.p90),
            event.currency,
            event.budget,
            event.match,
            event.peers,
            event.as_of,
            now,
            event_id,
        ]
        for name, band in sorted(event.figures.items())
    ]
    if rows:
        client.insert(
            "campaign_models",
            rows,
            column_names=list(_COLUMNS),
            column_type_names=list(_TYPES),
        )
    return len(rows)


def saved_models(client: Client, *, campaign_id: str) -> dict[str, dict[str, Decimal | None]]:
    """Figure → its P10/P50/P90 as stored for a campaign (empty when never modelled)."""
    sql = """SELECT figure, p10, p50, p90 FROM campaign_models FINAL
        WHERE campaign_id = {cid:String} ORDER BY figure"""
    rows = client.query(sql, parameters={"cid": campaign_id}).result_rows
    return {str(f): {"p10": a, "p50": b, "p90": c} for f, a, b, c in rows}
