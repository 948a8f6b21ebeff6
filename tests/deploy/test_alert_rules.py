"""The Prometheus alert rules: `promtool test rules` over deploy/prometheus/alerts_test.yml,
the config that loads them, and their metric names against what the services export.

promtool comes from Debian's `prometheus` package (scripts/ensure-promtool fetches it with
apt into .cache/tools); where that cannot be done, the promtool tests skip and say so."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from services.notifier.metrics import NotifierMetrics
from shared.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_NAMES = {
    "MrmConsumerLagHigh",
    "MrmConsumerStalled",
    "MrmDeadLettersGrowing",
    "MrmOutboxBacklog",
    "MrmNotificationsFailing",
}
_METRIC = re.compile(r"\bmrm_[a-z0-9_]+")
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = subprocess.run(
        [str(ROOT / "scripts" / "ensure-promtool")], capture_output=True, text=True, check=False
    )
    path = found.stdout.strip()
    if not path:
        pytest.skip(f"promtool unavailable (apt-get download prometheus failed): {found.stderr}")
    return path


def exported_names() -> set[str]:
    """Every series name a service's ServiceMetrics and the notifier's metrics can expose."""
    metrics = ServiceMetrics("notifier")
    NotifierMetrics(metrics, channels=("email",))
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in _SUFFIXES[family.type]
    }


def rules() -> list[dict[str, object]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def test_alert_rules_pass_their_promtool_tests(promtool: str) -> None:
    """Each alert fires on the series its test feeds it, and stays quiet on the others."""
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_promtool_test() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert {rule["alert"] for rule in rules()} == ALERT_NAMES == tested


def test_prometheus_config_loads_the_alert_rules(promtool: str, tmp_path: Path) -> None:
    """prometheus.yml names the rules file where compose mounts it, and promtool accepts both."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    # the same config, its rules file where this checkout has it
    config["rule_files"] = [str(ALERTS)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rules found" in result.stdout


def test_alert_expressions_use_exported_metrics() -> None:
    exported = exported_names()
    for rule in rules():
        names = set(_METRIC.findall(str(rule["expr"])))
        assert names, rule["alert"]
        assert names <= exported, f"{rule['alert']}: unknown metrics {names - exported}"


def test_exported_metric_names_carry_no_service() -> None:
    """One name across services: the service is a label, never part of the name."""
    for name in exported_names():
        assert not any(f"mrm_{svc}_" in name for svc in ("notifier", "planning")), name


def test_labelled_counters_start_at_zero_for_known_labels() -> None:
    metrics = ServiceMetrics("planning")
    metrics.consuming(["mrm.execution.v1"])
    labels = {"service": "planning", "topic": "mrm.execution.v1"}
    for name in ("mrm_messages_in_total", "mrm_dead_letters_total", "mrm_messages_failed_total"):
        assert metrics.registry.get_sample_value(name, labels) == 0.0, name
    for kind in ("data", "outage", "unknown"):
        failures = {**labels, "kind": kind}
        assert metrics.registry.get_sample_value("mrm_consumer_failures_total", failures) == 0.0
    NotifierMetrics(metrics, channels=("email", "webhook"))
    failed = {"service": "planning", "channel": "webhook", "outcome": "failed"}
    assert metrics.registry.get_sample_value("mrm_notification_attempts_total", failed) == 0.0
    assert (
        metrics.registry.get_sample_value("mrm_messages_in_total", {**labels, "topic": "x"}) is None
    )
    metrics.publishing(["mrm.planning.v1"])
    out = {"service": "planning", "topic": "mrm.planning.v1"}
    assert metrics.registry.get_sample_value("mrm_messages_out_total", out) == 0.0
    metrics.serving([("POST", "/api/v1/plans")])
    for status in ("2xx", "4xx", "5xx"):
        route = {"service": "planning", "method": "POST", "route": "/api/v1/plans"}
        requests = {**route, "status": status}
        assert metrics.registry.get_sample_value("mrm_http_requests_total", requests) == 0.0
