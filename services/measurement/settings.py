"""Settings of the measurement service."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

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
        default=5000,
        ge=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_BATCH_MAX_RECORDS"),
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
    snapshot_interval_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_SNAPSHOT_INTERVAL_S"),
        description="How often kpi.snapshot is published per campaign with new data.",
    )

    @model_validator(mode="after")
    def _default_clickhouse(self) -> MeasurementSettings:
        if not self.clickhouse_url:
            self.clickhouse_url = f"chdb://{(self.data_dir / 'clickhouse').resolve()}"
        return self
