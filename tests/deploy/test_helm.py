"""The Helm chart (deploy/helm/mrm), rendered by the real ``helm`` and checked against the code.

``helm lint --strict`` and ``helm template`` run on the chart (scripts/ensure-helm installs the
pinned helm binary into the venv; without it these tests skip, saying why). Every rendered
manifest is validated against the Kubernetes API schemas (kubernetes-validate, for the oldest
Kubernetes the chart supports and the newest the package knows); the Prometheus Operator's
ServiceMonitor, a CRD without a bundled schema, is checked structurally. Then the manifests are
checked against the code they deploy: the compose file's commands, the services' ports and
settings, probes on /health and /ready, budgets that select their Deployment's pods, Secrets
that hold every key a pod references, and the migration hook.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from test_compose import (
    APP_SERVICES,
    RELATIONAL_SERVICES,
    default_port,
    known_settings,
    settings_classes,
    settings_modules,
)

from services.measurement.settings import MeasurementSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mrm"
RELEASE = "rel"
FULLNAME = f"{RELEASE}-mrm"
# Chart.yaml's kubeVersion floor and the newest schemas kubernetes-validate ships
KUBERNETES_VERSIONS = ("1.25.0", kubernetes_validate.utils.latest_version())
CRD_KINDS = frozenset({"ServiceMonitor"})


def _find_helm() -> str | None:
    venv_helm = Path(sys.executable).parent / "helm"
    if venv_helm.is_file():
        return str(venv_helm)
    return shutil.which("helm")


@pytest.fixture(scope="module")
def helm() -> str:
    """The helm binary, installed into this venv by scripts/ensure-helm when missing."""
    found = _find_helm()
    if found is None:
        venv = str(Path(sys.executable).parent.parent)
        script = str(ROOT / "scripts" / "ensure-helm")
        subprocess.run([script], cwd=ROOT, env={**os.environ, "VENV": venv}, check=True)
        found = _find_helm()
    if found is None:
        pytest.skip("helm is not installed and scripts/ensure-helm could not install it")
    return found


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def render(helm: str, *sets: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart (hooks included) with ``--set`` overrides, parsed."""
    args = ["template", RELEASE, str(CHART)]
    for value in sets:
        args += ["--set", value]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Documents of one kind by their app.kubernetes.io/component (or name)."""
    found: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["kind"] == kind:
            labels = doc["metadata"].get("labels", {})
            found[labels.get("app.kubernetes.io/component", doc["metadata"]["name"])] = doc
    return found


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.fixture(scope="module")
def docs(helm: str) -> list[dict[str, Any]]:
    """The chart rendered with its default values."""
    return render(helm)


# --------------------------------------------------------------------------------------------
# helm itself, and the Kubernetes schemas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("metrics.serviceMonitor.enabled=true",),
        ("secrets.create=false", "secrets.existingSecret=mrm-from-vault"),
        ("migrations.enabled=false", "metrics.podAnnotations=false"),
    ],
)
def test_helm_lint_strict(helm: str, sets: tuple[str, ...]) -> None:
    """`helm lint --strict` passes for the defaults and the optional switches."""
    args = ["lint", "--strict", str(CHART)]
    for value in sets:
        args += ["--set", value]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_rendered_manifests_validate_against_the_kubernetes_schemas(helm: str) -> None:
    """Every built-in kind validates strictly (unknown fields rejected) on both versions."""
    rendered = render(helm, "metrics.serviceMonitor.enabled=true")
    kinds = {doc["kind"] for doc in rendered}
    assert kinds == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Job",
        "ServiceMonitor",
    }
    for doc in rendered:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field(docs: list[dict[str, Any]]) -> None:
    """The validator is strict: a typo in a probe would not slip through (guards the guard)."""
    deployment = json.loads(json.dumps(by_kind(docs, "Deployment")["planning"]))
    container(deployment)["readinessProbe"]["httpGett"] = {"path": "/ready", "port": "http"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# --------------------------------------------------------------------------------------------
# Deployments, Services, budgets
# --------------------------------------------------------------------------------------------


def test_a_deployment_per_service_runs_what_compose_runs(docs: list[dict[str, Any]]) -> None:
    """Same image for all four, `python -m services.<svc>` as docker-compose.yml runs them."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == set(APP_SERVICES)
    images = {container(deployment)["image"] for deployment in deployments.values()}
    assert images == {"mrm-platform:0.1.0"}, "the chart's appVersion tags the image"
    for svc, deployment in deployments.items():
        assert container(deployment)["command"] == compose[svc]["command"], svc
        assert deployment["spec"]["replicas"] == 2, svc


def test_replicas_and_image_come_from_values(helm: str) -> None:
    digest = "sha256:" + "ab" * 32
    rendered = render(
        helm,
        "services.planning.replicas=5",
        "services.notifier.replicas=1",
        "image.repository=registry.example/mrm",
        f"image.digest={digest}",
    )
    deployments = by_kind(rendered, "Deployment")
    replicas = {svc: d["spec"]["replicas"] for svc, d in deployments.items()}
    assert replicas == {"planning": 5, "execution": 2, "measurement": 2, "notifier": 1}
    assert container(deployments["execution"])["image"] == f"registry.example/mrm@{digest}"
    job = by_kind(rendered, "Job")["migrate"]
    assert container(job)["image"] == f"registry.example/mrm@{digest}"


def test_probes_ports_and_resources(docs: list[dict[str, Any]]) -> None:
    """Liveness on /health, readiness on /ready, on the port the service listens on;
    requests and limits for CPU and memory."""
    for svc, deployment in by_kind(docs, "Deployment").items():
        main = container(deployment)
        ports = {port["name"]: port["containerPort"] for port in main["ports"]}
        assert ports == {"http": default_port(svc)}, svc
        env = {item["name"]: item.get("value") for item in main["env"]}
        assert env[f"MRM_{svc.upper()}_PORT"] == str(default_port(svc))
        assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}, svc
        assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}, svc
        for bound in ("requests", "limits"):
            assert set(main["resources"][bound]) == {"cpu", "memory"}, (svc, bound)


def test_selectors_pick_exactly_their_own_service(docs: list[dict[str, Any]]) -> None:
    """Each Deployment, Service, budget and spread constraint selects its service's pods and
    no other's."""
    deployments = by_kind(docs, "Deployment")
    pod_labels = {
        svc: deployment["spec"]["template"]["metadata"]["labels"]
        for svc, deployment in deployments.items()
    }
    services = by_kind(docs, "Service")
    budgets = by_kind(docs, "PodDisruptionBudget")
    assert set(services) == set(budgets) == set(APP_SERVICES)
    for svc in APP_SERVICES:
        selectors = {
            "deployment": deployments[svc]["spec"]["selector"]["matchLabels"],
            "service": services[svc]["spec"]["selector"],
            "budget": budgets[svc]["spec"]["selector"]["matchLabels"],
        }
        for what, selector in selectors.items():
            selected = {other for other, labels in pod_labels.items() if matches(selector, labels)}
            assert selected == {svc}, f"{svc} {what} selects {selected}"
        [spread] = deployments[svc]["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        selected = {
            other
            for other, labels in pod_labels.items()
            if matches(spread["labelSelector"]["matchLabels"], labels)
        }
        assert selected == {svc}, f"{svc} spreads {selected}"
        assert budgets[svc]["spec"]["minAvailable"] < deployments[svc]["spec"]["replicas"], (
            f"{svc}: the budget would block every voluntary eviction"
        )
        assert services[svc]["spec"]["ports"] == [
            {"name": "http", "port": default_port(svc), "targetPort": "http", "protocol": "TCP"}
        ]


# --------------------------------------------------------------------------------------------
# configuration and secrets
# --------------------------------------------------------------------------------------------


def pod_environment(docs: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, str]:
    """What a pod's container sees: its ConfigMap, then its env (Secret keys resolved)."""
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    main = container(workload)
    env: dict[str, str] = {}
    for source in main.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for item in main.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secrets, f"{item['name']}: Secret {ref['name']} is not rendered"
            assert ref["key"] in secrets[ref["name"]], f"{item['name']}: no key {ref['key']}"
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def test_every_mrm_variable_is_a_known_setting(docs: list[dict[str, Any]]) -> None:
    known = known_settings()
    workloads = [*by_kind(docs, "Deployment").values(), by_kind(docs, "Job")["migrate"]]
    for workload in workloads:
        unknown = {var for var in pod_environment(docs, workload) if var.startswith("MRM_")} - known
        assert not unknown, f"{workload['metadata']['name']}: {sorted(unknown)}"


def test_settings_accept_each_pods_environment(
    docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's settings read their store URL and tokens from the chart's Secret."""
    modules = settings_modules()
    secret = by_kind(docs, "Secret")[f"{FULLNAME}-secrets"]["stringData"]
    for svc, deployment in by_kind(docs, "Deployment").items():
        env = pod_environment(docs, deployment)
        with monkeypatch.context() as patch:
            for var in [var for var in os.environ if var.startswith("MRM_")]:
                patch.delenv(var)
            for var, value in env.items():
                patch.setenv(var, value)
            for cls in settings_classes(modules[svc]):
                settings = cls(_env_file=None)  # type: ignore[call-arg]
                assert settings.host == "0.0.0.0"
                assert settings.port == default_port(svc)
                assert settings.kafka_bootstrap == "kafka:9092"
                assert json.loads(secret["MRM_TOKENS"]) == {
                    token: grant.model_dump(mode="json") for token, grant in settings.tokens.items()
                }
                if svc in RELATIONAL_SERVICES:
                    expected = secret[f"MRM_{svc.upper()}_DATABASE_URL"]
                    assert settings.database_url == expected
                if svc == "measurement":
                    assert settings.clickhouse_url == secret["MRM_CLICKHOUSE_URL"]
        # a pod gets its own store's credentials only
        stores = {var for var in env if var.endswith(("_DATABASE_URL", "_CLICKHOUSE_URL"))}
        assert len(stores) == 1, f"{svc}: {sorted(stores)}"


@pytest.mark.parametrize("cluster", ["", "mrm_cluster"])
def test_the_clickhouse_cluster_reaches_measurement_and_the_migration(
    helm: str, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``config.MRM_CLICKHOUSE_CLUSTER`` (empty by default: one node) is what measurement's pods
    and the migration Job read as their ClickHouse cluster."""
    rendered = render(helm, f"config.MRM_CLICKHOUSE_CLUSTER={cluster}") if cluster else render(helm)
    measurement = pod_environment(rendered, by_kind(rendered, "Deployment")["measurement"])
    migration = pod_environment(rendered, by_kind(rendered, "Job")["migrate"])
    assert measurement["MRM_CLICKHOUSE_CLUSTER"] == migration["MRM_CLICKHOUSE_CLUSTER"] == cluster
    with monkeypatch.context() as patch:
        for var in [var for var in os.environ if var.startswith("MRM_")]:
            patch.delenv(var)
        for var, value in measurement.items():
            patch.setenv(var, value)
        assert MeasurementSettings(_env_file=None).clickhouse_cluster == cluster  # type: ignore[call-arg]


def test_an_existing_secret_replaces_the_charts(helm: str) -> None:
    """secrets.create=false: no Secret rendered, every reference names the given one."""
    rendered = render(helm, "secrets.create=false", "secrets.existingSecret=mrm-from-vault")
    assert not by_kind(rendered, "Secret")
    workloads = [*by_kind(rendered, "Deployment").values(), *by_kind(rendered, "Job").values()]
    names = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for workload in workloads
        for item in container(workload)["env"]
        if "valueFrom" in item
    }
    assert names == {"mrm-from-vault"}
    result = run_helm(helm, "template", RELEASE, str(CHART), "--set", "secrets.create=false")
    assert result.returncode != 0
    assert "secrets.existingSecret is required" in result.stderr


def test_a_config_change_rolls_the_pods(helm: str, docs: list[dict[str, Any]]) -> None:
    before = by_kind(docs, "Deployment")["planning"]["spec"]["template"]["metadata"]
    changed = render(helm, "config.MRM_LOG_LEVEL=DEBUG")
    after = by_kind(changed, "Deployment")["planning"]["spec"]["template"]["metadata"]
    assert after["annotations"]["checksum/config"] != before["annotations"]["checksum/config"]
    assert after["annotations"]["checksum/secret"] == before["annotations"]["checksum/secret"]


# --------------------------------------------------------------------------------------------
# migrations and metrics
# --------------------------------------------------------------------------------------------


def test_the_migration_job_runs_mrm_migrate_before_install_and_upgrade(
    docs: list[dict[str, Any]],
) -> None:
    """A pre-install/pre-upgrade hook running `mrm migrate` with every store's URL, after the
    Secret it reads (a hook too, with a lower weight)."""
    job = by_kind(docs, "Job")["migrate"]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert container(job)["command"] == ["mrm", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = pod_environment(docs, job)
    secret = by_kind(docs, "Secret")[f"{FULLNAME}-secrets"]
    for svc in RELATIONAL_SERVICES:
        assert env[f"MRM_{svc.upper()}_DATABASE_URL"].endswith(f"/{svc}")
    assert env["MRM_CLICKHOUSE_URL"] == secret["stringData"]["MRM_CLICKHOUSE_URL"]
    secret_annotations = secret["metadata"]["annotations"]
    assert secret_annotations["helm.sh/hook"] == annotations["helm.sh/hook"]
    assert int(secret_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])


def test_the_migrate_command_exists() -> None:
    """The Job's command is a subcommand of the `mrm` CLI."""
    from mrm.cli import build_parser

    parser = build_parser()
    subcommands = next(
        action.choices
        for action in parser._actions
        if isinstance(getattr(action, "choices", None), dict)
    )
    assert "migrate" in subcommands
    args = parser.parse_args(["migrate"])
    assert (args.command, args.service) == ("migrate", "all")


def test_scrape_annotations_and_service_monitors(helm: str, docs: list[dict[str, Any]]) -> None:
    """Pods carry prometheus.io/* for their port; ServiceMonitors only when enabled."""
    assert not by_kind(docs, "ServiceMonitor")
    for svc, deployment in by_kind(docs, "Deployment").items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(default_port(svc))
        assert annotations["prometheus.io/path"] == "/metrics"
    rendered = render(helm, "metrics.serviceMonitor.enabled=true", "metrics.podAnnotations=false")
    monitors = by_kind(rendered, "ServiceMonitor")
    services = by_kind(rendered, "Service")
    assert set(monitors) == set(APP_SERVICES)
    for svc, monitor in monitors.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selected = {
            name
            for name, service in services.items()
            if matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        }
        assert selected == {svc}
        assert monitor["spec"]["endpoints"] == [
            {"port": "http", "path": "/metrics", "interval": "15s"}
        ]
    for deployment in by_kind(rendered, "Deployment").values():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert "prometheus.io/scrape" not in annotations
