"""Kafka topic names of the MRM platform (SPEC §2-3) and their dead-letter companions."""

from __future__ import annotations

SPEND = "mrm.spend.v1"
AD_METRICS = "mrm.ad-metrics.v1"
LEADS = "mrm.leads.v1"
SALES = "mrm.sales.v1"
TASKS = "mrm.tasks.v1"
CUSTOMERS = "mrm.customers.v1"

PLANNING = "mrm.planning.v1"
EXECUTION = "mrm.execution.v1"
KPI = "mrm.kpi.v1"
NOTIFICATIONS = "mrm.notifications.v1"

INGEST_TOPICS: tuple[str, ...] = (SPEND, AD_METRICS, LEADS, SALES, TASKS, CUSTOMERS)
PLATFORM_TOPICS: tuple[str, ...] = (PLANNING, EXECUTION, KPI, NOTIFICATIONS)
ALL_TOPICS: tuple[str, ...] = INGEST_TOPICS + PLATFORM_TOPICS

DLQ_SUFFIX = ".dlq"


def dlq(topic: str) -> str:
    """Return the dead-letter topic of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


def all_topics_with_dlq() -> list[str]:
    """Every topic the platform uses, each followed by its dead-letter topic."""
    return [name for topic in ALL_TOPICS for name in (topic, dlq(topic))]
