"""Measurement service: KPIs from event streams in ClickHouse, target alerts (SPEC §2, §4)."""
