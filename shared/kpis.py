"""The KPI catalogue (SPEC §4): names every service uses for targets, snapshots and the API."""

from __future__ import annotations

from typing import Literal

Direction = Literal["higher_is_better", "lower_is_better"]

LOWER_IS_BETTER: frozenset[str] = frozenset({"cpl", "cac", "cpc", "marketing_pct_of_sales"})

KPI_NAMES: tuple[str, ...] = (
    "spend",
    "impressions",
    "clicks",
    "ctr",
    "cpc",
    "leads",
    "cpl",
    "new_customers",
    "cac",
    "revenue",
    "gross_profit",
    "romi",
    "roi",
    "ltv",
    "ltv_cac",
    "average_check",
    "repeat_purchase_rate",
    "marketing_pct_of_sales",
    "budget_utilisation",
    "visitor_to_lead",
    "lead_to_mql",
    "mql_to_sql",
    "sql_to_sal",
    "sal_to_opportunity",
    "opportunity_to_customer",
)


def direction_of(kpi: str) -> Direction:
    """Whether a higher or a lower value of ``kpi`` is better."""
    return "lower_is_better" if kpi in LOWER_IS_BETTER else "higher_is_better"
