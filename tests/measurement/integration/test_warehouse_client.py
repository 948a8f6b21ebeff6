"""The warehouse client's session settings: the cluster defaults, and
``MRM_CLICKHOUSE_SETTINGS`` over them (e.g. read-after-write on replicated shards)."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import warehouse
from services.measurement.settings import MeasurementSettings

pytestmark = pytest.mark.integration


def setting(client: Client, name: str) -> str:
    return str(client.command("SELECT toString(getSetting({n:String}))", parameters={"n": name}))


def test_sessions_carry_the_cluster_defaults_and_the_configured_settings(
    warehouse_client: Client, chdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRM_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv("MRM_CLICKHOUSE_CLUSTER", "mrm")
    monkeypatch.setenv(
        "MRM_CLICKHOUSE_SETTINGS",
        '{"select_sequential_consistency": 1, "distributed_foreground_insert": 0}',
    )
    settings = MeasurementSettings()
    client = warehouse.connect(settings.clickhouse_url, **settings.clickhouse_options())
    try:
        assert setting(client, "distributed_product_mode") == "global"  # a cluster default
        assert setting(client, "select_sequential_consistency") == "1"  # configured
        assert setting(client, "distributed_foreground_insert") == "false"  # over the default
    finally:
        client.close()
    # one node, nothing configured: the server's defaults
    assert setting(warehouse_client, "distributed_product_mode") == "deny"
    assert setting(warehouse_client, "select_sequential_consistency") == "0"


def test_a_setting_name_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MeasurementSettings().clickhouse_settings == {}
    monkeypatch.setenv("MRM_CLICKHOUSE_SETTINGS", '{"max_threads; DROP": 1}')
    with pytest.raises(ValueError, match="clickhouse_settings"):
        MeasurementSettings()
    monkeypatch.setenv("MRM_CLICKHOUSE_SETTINGS", "[1, 2]")
    with pytest.raises(ValueError, match="clickhouse_settings"):
        MeasurementSettings()
