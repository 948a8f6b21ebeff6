"""Settings of the measurement service."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AliasChoices, Field, StringConstraints, model_validator

from services.measurement.progress import AtRiskRule
from shared.settings import ReallocationSettings

SETTING_NAME = r"^[a-z_][a-z0-9_]*$"
"""A ClickHouse setting's name."""


class MeasurementSettings(ReallocationSettings):
    """Port: ``MRM_MEASUREMENT_PORT`` or ``MRM_PORT``; ClickHouse: ``MRM_CLICKHOUSE_URL``
    (``http://user:password@host:8123`` or ``chdb:///path``; default: chDB in the data dir)."""

    port: int = Field(
        default=8003, validation_alias=AliasChoices("MRM_MEASUREMENT_PORT", "MRM_PORT")
    )
    clickhouse_url: str = Field(default="", description="ClickHouse server or chDB path.")
    clickhouse_database: str = Field(default="mrm", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_cluster: str = Field(
        default="",
        pattern=r"^([A-Za-z_][A-Za-z0-9_-]*)?$",
        description=(
            "ClickHouse cluster (remote_servers) to create the schema on: replicated local "
            "tables, Distributed tables under the usual names, DDL ON CLUSTER. Empty: one node."
        ),
    )
    clickhouse_settings: dict[Annotated[str, StringConstraints(pattern=SETTING_NAME)], Any] = Field(
        default_factory=dict,
        description=(
            "ClickHouse settings for every session of the service, as a JSON object: e.g. "
            '{"insert_quorum": 2, "select_sequential_consistency": 1} for read-after-write '
            "on a cluster with two replicas per shard. Applied over the cluster defaults."
        ),
    )
    batch_max_records: int = Field(
        default=20000,
        ge=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_BATCH_MAX_RECORDS"),
        # an insert has a fixed cost in ClickHouse (a part per insert, merged later): catching
        # up on a backlog in big batches costs far less CPU; live traffic is cut by the timeout
        description="Largest ingest batch.",
    )
    batch_timeout_ms: int = Field(
        default=50,
        ge=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_BATCH_TIMEOUT_MS"),
        description="Longest wait for a batch to fill (latency against batch size).",
    )
    readers: int = Field(
        default=2,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_READERS"),
        description="ClickHouse clients for reads (KPI requests, monitor); 0 = share the writer.",
    )
    evaluate_max_campaigns: int = Field(
        default=50,
        ge=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_EVALUATE_MAX_CAMPAIGNS"),
        description="Most campaigns the target monitor evaluates per round.",
    )
    evaluate_interval_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_EVALUATE_INTERVAL_S"),
        description="How often campaigns with new data are checked against their KPI targets.",
    )
    model_interval_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_MODEL_INTERVAL_S"),
        description="How often newly approved campaigns are modelled (campaign.modelled).",
    )
    consumer_group: str = Field(
        default="mrm-measurement",
        min_length=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_CONSUMER_GROUP"),
        description="Consumer group of the service's subscribers (shared by its replicas).",
    )
    monitor_group: str = Field(
        default="mrm-measurement-monitor",
        min_length=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_MONITOR_GROUP"),
        description=(
            "Consumer group electing the replica that runs the target monitor (one alert per "
            "cause however many replicas run)."
        ),
    )
    snapshot_interval_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_SNAPSHOT_INTERVAL_S"),
        description="How often kpi.snapshot is published per campaign with new data.",
    )

    alert_min_spend_share: Decimal = Field(
        default=Decimal("0.01"),
        ge=0,
        le=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_ALERT_MIN_SPEND_SHARE"),
        description=(
            "A campaign's targets are judged (breach / recovery) once it has spent this share "
            "of its budget (any spend when it has none); 0 judges from the first event."
        ),
    )
    reallocation_interval_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_INTERVAL_S"),
        description="How often plans with new data are checked by the reallocation rule.",
    )
    sales_at_risk_share: Decimal = Field(
        default=Decimal("0.9"),
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_SALES_AT_RISK_SHARE"),
        description="A sales target is at risk when its run-rate forecast is below this share.",
    )
    sales_at_risk_min_elapsed: Decimal = Field(
        default=Decimal("0.2"),
        ge=0,
        le=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_SALES_AT_RISK_MIN_ELAPSED"),
        description="Sales targets are judged once this share of their period has passed.",
    )
    sales_target_interval_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_SALES_TARGET_INTERVAL_S"),
        description="How often the running sales targets are checked for risk.",
    )

    def clickhouse_options(self) -> dict[str, Any]:
        """``warehouse.connect``'s keyword arguments (besides the URL)."""
        return {
            "database": self.clickhouse_database,
            "cluster": self.clickhouse_cluster,
            "settings": self.clickhouse_settings,
        }

    def sales_at_risk_rule(self) -> AtRiskRule:
        """When a sales target is at risk (forecast share and elapsed share of its period)."""
        return AtRiskRule(
            share=self.sales_at_risk_share, min_elapsed=self.sales_at_risk_min_elapsed
        )

    @model_validator(mode="after")
    def _default_clickhouse(self) -> MeasurementSettings:
        if not self.clickhouse_url:
            self.clickhouse_url = f"chdb://{(self.data_dir / 'clickhouse').resolve()}"
        return self
