"""Settings of the measurement service."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AliasChoices, Field, model_validator

from services.measurement.domain import ReallocationRule
from services.measurement.progress import AtRiskRule
from shared.reallocation import (
    DEFAULT_ENABLED,
    DEFAULT_HYSTERESIS,
    DEFAULT_MIN_AMOUNT,
    DEFAULT_MIN_SPEND_SHARE,
    DEFAULT_OVER_CKPI,
    DEFAULT_SHARE,
    DEFAULT_UNDER_CKPI,
)
from shared.settings import CommonSettings


class MeasurementSettings(CommonSettings):
    """Port: ``MRM_MEASUREMENT_PORT`` or ``MRM_PORT``; ClickHouse: ``MRM_CLICKHOUSE_URL``
    (``http://user:password@host:8123`` or ``chdb:///path``; default: chDB in the data dir)."""

    port: int = Field(
        default=8003, validation_alias=AliasChoices("MRM_MEASUREMENT_PORT", "MRM_PORT")
    )
    clickhouse_url: str = Field(default="", description="ClickHouse server or chDB path.")
    clickhouse_database: str = Field(default="mrm", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
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
    reallocation_enabled: bool = Field(
        default=DEFAULT_ENABLED,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_ENABLED"),
        description="Propose budget reallocations between campaigns of a plan.",
    )
    reallocation_interval_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_INTERVAL_S"),
        description="How often plans with new data are checked by the reallocation rule.",
    )
    reallocation_under_ckpi: Decimal = Field(
        default=DEFAULT_UNDER_CKPI,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_UNDER_CKPI"),
        description="A campaign with a CKPI below this under-performs (gives budget).",
    )
    reallocation_over_ckpi: Decimal = Field(
        default=DEFAULT_OVER_CKPI,
        ge=0,
        le=150,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_OVER_CKPI"),
        description="A campaign with a CKPI at least this over-performs (receives budget).",
    )
    reallocation_hysteresis: Decimal = Field(
        default=DEFAULT_HYSTERESIS,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_HYSTERESIS"),
        description="CKPI points a proposed pair must move past its threshold to dissolve.",
    )
    reallocation_share: Decimal = Field(
        default=DEFAULT_SHARE,
        gt=0,
        le=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_SHARE"),
        description="Share of the donor's remaining budget (budget − spend) proposed.",
    )
    reallocation_min_amount: Decimal = Field(
        default=DEFAULT_MIN_AMOUNT,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_MIN_AMOUNT"),
        description="Smaller moves are not proposed.",
    )
    reallocation_min_spend_share: Decimal = Field(
        default=DEFAULT_MIN_SPEND_SHARE,
        ge=0,
        le=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_MIN_SPEND_SHARE"),
        description="A campaign is judged by the rule once it has spent this share of its budget.",
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

    def sales_at_risk_rule(self) -> AtRiskRule:
        """When a sales target is at risk (forecast share and elapsed share of its period)."""
        return AtRiskRule(
            share=self.sales_at_risk_share, min_elapsed=self.sales_at_risk_min_elapsed
        )

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> MeasurementSettings:
        if self.reallocation_under_ckpi >= self.reallocation_over_ckpi:
            raise ValueError(
                "reallocation_under_ckpi must be below reallocation_over_ckpi"
                f" ({self.reallocation_under_ckpi} ≥ {self.reallocation_over_ckpi})"
            )
        return self

    def reallocation_rule(self) -> ReallocationRule | None:
        """The configured reallocation rule, or ``None`` when proposals are off."""
        if not self.reallocation_enabled:
            return None
        return ReallocationRule(
            under_ckpi=self.reallocation_under_ckpi,
            over_ckpi=self.reallocation_over_ckpi,
            hysteresis=self.reallocation_hysteresis,
            share=self.reallocation_share,
            min_amount=self.reallocation_min_amount,
            min_spend_share=self.reallocation_min_spend_share,
        )

    @model_validator(mode="after")
    def _default_clickhouse(self) -> MeasurementSettings:
        if not self.clickhouse_url:
            self.clickhouse_url = f"chdb://{(self.data_dir / 'clickhouse').resolve()}"
        return self
