"""The kafka-cluster compose profile (three KRaft brokers) and deploy/kafka-cluster.env, checked
structurally: the nodes form one quorum, the services reach every broker, and the topics they
create are replicated three times with two in-sync replicas required."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_compose import APP_SERVICES, COMPOSE_FILE, interpolate, settings_classes, settings_modules

from shared.topics import PLANNING, SPEND, dlq

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_ENV = ROOT / "deploy" / "kafka-cluster.env"
NODES = ("kafka-1", "kafka-2", "kafka-3")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def env_file(path: Path) -> dict[str, str]:
    """A compose ``--env-file``: NAME=value lines, # comments."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs if not name.startswith("#")}


def environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    return {key: interpolate(str(value), env) for key, value in service["environment"].items()}


def test_three_nodes_in_the_profile_only(services: dict[str, Any]) -> None:
    in_profile = {name for name, s in services.items() if "kafka-cluster" in s.get("profiles", [])}
    assert in_profile == set(NODES)
    for node in NODES:
        assert services[node]["image"] == services["kafka"]["image"]
        assert services[node]["healthcheck"]["test"][0] == "CMD-SHELL"


def test_nodes_form_one_kraft_quorum(services: dict[str, Any]) -> None:
    envs = {node: environment(services[node], {}) for node in NODES}
    assert {env["CLUSTER_ID"] for env in envs.values()} != {
        environment(services["kafka"], {})["CLUSTER_ID"]
    }
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    ids = {node: env["KAFKA_NODE_ID"] for node, env in envs.items()}
    assert sorted(ids.values()) == ["1", "2", "3"]
    voters = {f"{ids[node]}@{node}:9093" for node in NODES}
    volumes = set()
    for node, env in envs.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"].split(",")
        assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"].split(",")
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{node}:9092"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        volumes.update(services[node]["volumes"])
    assert len(volumes) == 3  # a log directory each


def test_nodes_replicate_internal_topics(services: dict[str, Any]) -> None:
    for node in NODES:
        env = environment(services[node], {})
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"


def test_services_wait_for_the_nodes_when_the_profile_runs(services: dict[str, Any]) -> None:
    for svc in APP_SERVICES:
        depends_on = services[svc]["depends_on"]
        for node in NODES:
            assert depends_on[node] == {"condition": "service_healthy", "required": False}


def _settings(
    services: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    modules = settings_modules()
    found = []
    for svc in APP_SERVICES:
        with monkeypatch.context() as patch:
            for var in [var for var in os.environ if var.startswith("MRM_")]:
                patch.delenv(var)
            for var, value in environment(services[svc], env).items():
                patch.setenv(var, value)
            found += [cls(_env_file=None) for cls in settings_classes(modules[svc])]  # type: ignore[call-arg]
    assert found
    return found


def test_the_env_file_points_the_services_at_the_cluster(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for settings in _settings(services, env_file(CLUSTER_ENV), monkeypatch):
        assert settings.kafka_bootstrap.split(",") == [f"{node}:9092" for node in NODES]
        options = settings.kafka_options()
        assert options.idempotence is True
        for topic in (PLANNING, SPEND, dlq(SPEND)):
            spec = options.topics.spec(topic)
            assert spec.replication_factor == 3
            assert spec.configs["min.insync.replicas"] == "2"
        assert options.topics.spec(PLANNING).configs["retention.ms"] == "-1"


def test_without_the_env_file_the_single_broker_serves(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for settings in _settings(services, {}, monkeypatch):
        assert settings.kafka_bootstrap == "kafka:9092"
        spec = settings.kafka_options().topics.spec(SPEND)
        assert (spec.replication_factor, spec.configs["min.insync.replicas"]) == (1, "1")
