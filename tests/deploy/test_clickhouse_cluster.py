"""Structural checks of the compose profile `clickhouse-cluster` (no Docker engine needed): two
shards and a three-node Keeper whose config files agree with each other and with the compose
services, the query settings the Distributed tables need, measurement switched to the cluster by
its settings alone, and every ClickHouse image on the release line of the chDB engine the tests
run."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from clickhouse_connect.driver.client import Client

from services.measurement.settings import MeasurementSettings
from tests.deploy.test_compose import environment, resolve

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = ROOT / "deploy" / "clickhouse" / "cluster"
PROFILE = "clickhouse-cluster"
NODES = ("clickhouse-s1", "clickhouse-s2")
KEEPERS = ("clickhouse-keeper-1", "clickhouse-keeper-2", "clickhouse-keeper-3")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def mounted(service: dict[str, Any]) -> dict[str, Path]:
    """container path → host file of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes") or []:
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            out[container] = ROOT / host
    return out


def cluster_config() -> ET.Element:
    return ET.parse(CLUSTER_DIR / "config.d" / "mrm-cluster.xml").getroot()


def keeper_config() -> ET.Element:
    return ET.parse(CLUSTER_DIR / "keeper.xml").getroot()


def test_the_profile_holds_two_shards_and_three_keepers(services: dict[str, Any]) -> None:
    in_profile = {name for name, s in services.items() if PROFILE in (s.get("profiles") or [])}
    assert in_profile == set(NODES) | set(KEEPERS)
    for name in NODES:
        assert set(services[name]["depends_on"]) == set(KEEPERS)
        assert services[name]["healthcheck"]["test"][0] == "CMD-SHELL"
    # the single node stays in the default profile
    assert "profiles" not in services["clickhouse"]


def test_remote_servers_name_the_compose_nodes_one_per_shard(services: dict[str, Any]) -> None:
    root = cluster_config()
    shards = root.findall("./remote_servers/mrm/shard")
    assert len(shards) == 2
    hosts = [[r.findtext("host") for r in shard.findall("replica")] for shard in shards]
    assert hosts == [["clickhouse-s1"], ["clickhouse-s2"]]
    for shard in shards:
        assert shard.findtext("internal_replication") == "true"  # replicas copy, not the sender
        assert {r.findtext("port") for r in shard.findall("replica")} == {"9000"}
    assert root.find("./remote_servers/mrm/secret").get("from_env") == "CLICKHOUSE_CLUSTER_SECRET"
    # each node's macros: its shard's number in order, its own host name as replica
    macros = root.find("macros")
    assert {m.tag: m.get("from_env") for m in macros} == {
        "shard": "CLICKHOUSE_SHARD",
        "replica": "CLICKHOUSE_REPLICA",
    }
    for number, name in enumerate(NODES, start=1):
        env = environment(services[name])
        assert (env["CLICKHOUSE_SHARD"], env["CLICKHOUSE_REPLICA"]) == (f"{number:02d}", name)
        assert env["CLICKHOUSE_CLUSTER_SECRET"]
        files = mounted(services[name])
        assert files["/etc/clickhouse-server/config.d/mrm-cluster.xml"] == (
            CLUSTER_DIR / "config.d" / "mrm-cluster.xml"
        )
        assert "/etc/clickhouse-server/users.d/mrm-cluster-settings.xml" in files
        assert "/etc/clickhouse-server/users.d/mrm-default.xml" in files


def test_servers_and_keepers_agree_on_the_ensemble(services: dict[str, Any]) -> None:
    keeper = keeper_config().find("keeper_server")
    port = keeper.findtext("tcp_port")
    zookeeper = [(n.findtext("host"), n.findtext("port")) for n in cluster_config().iter("node")]
    assert zookeeper == [(name, port) for name in KEEPERS]
    raft = {s.findtext("id"): s.findtext("hostname") for s in keeper.iter("server")}
    assert raft == {"1": KEEPERS[0], "2": KEEPERS[1], "3": KEEPERS[2]}
    assert keeper.find("server_id").get("from_env") == "KEEPER_SERVER_ID"
    for name in KEEPERS:
        service = services[name]
        assert raft[environment(service)["KEEPER_SERVER_ID"]] == name
        config = service["command"][-1].split("=", 1)[1]
        assert mounted(service)[config] == CLUSTER_DIR / "keeper.xml"
        assert any(v.endswith(":/var/lib/clickhouse-keeper") for v in service["volumes"])


def test_the_profile_sets_what_distributed_tables_need() -> None:
    root = ET.parse(CLUSTER_DIR / "users.d" / "mrm-cluster-settings.xml").getroot()
    for profile in ("default", "grafana_readonly"):
        settings = root.find(f"./profiles/{profile}")
        assert settings is not None
        assert settings.findtext("distributed_product_mode") == "global"
    assert root.findtext("./profiles/default/distributed_foreground_insert") == "1"


def test_measurement_switches_to_the_cluster_by_its_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = services["measurement"]["environment"]
    # defaults: the single node, no cluster
    assert environment(services["measurement"])["MRM_CLICKHOUSE_CLUSTER"] == ""
    env = {"CLICKHOUSE_HOST": "clickhouse-s1", "MRM_CLICKHOUSE_CLUSTER": "mrm"}
    url = resolve(raw["MRM_CLICKHOUSE_URL"], env)
    assert url.endswith("@clickhouse-s1:8123")
    cluster = resolve(raw["MRM_CLICKHOUSE_CLUSTER"], env)
    assert cluster_config().find(f"./remote_servers/{cluster}") is not None
    monkeypatch.setenv("MRM_CLICKHOUSE_CLUSTER", cluster)
    assert MeasurementSettings().clickhouse_cluster == "mrm"


def test_every_clickhouse_image_is_on_the_line_of_chdb(
    services: dict[str, Any], warehouse_client: Client
) -> None:
    """The SQL the tests check on chDB is the SQL the deployed servers run."""
    version = str(warehouse_client.command("SELECT version()"))
    line = ".".join(version.split(".")[:2])
    images = {
        name: resolve(s["image"]) for name, s in services.items() if "clickhouse" in s["image"]
    }
    assert set(images) == {"clickhouse", *NODES, *KEEPERS}
    for name, image in images.items():
        repository, tag = image.rsplit(":", 1)
        assert repository == "clickhouse/clickhouse-server", name
        assert re.fullmatch(rf"{re.escape(line)}(\.\d+)*", tag), f"{name}: {tag} vs chDB {version}"
    # and the chDB the lockfile installs (what `make setup` and the dev image run)
    lock = (ROOT / "uv.lock").read_text()
    locked = re.search(r'name = "chdb-core"\nversion = "([^"]+)"', lock)
    assert locked is not None
    assert locked[1].startswith(f"{line}."), f"uv.lock chdb-core {locked[1]} vs {line}"


def test_cluster_config_files_are_well_formed() -> None:
    for path in CLUSTER_DIR.rglob("*.xml"):
        assert ET.parse(path).getroot().tag == "clickhouse", path.name
