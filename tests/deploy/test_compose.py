"""Structural checks of the production deployment (no Docker engine needed).

docker-compose.yml, the Dockerfile, Prometheus, Grafana, ClickHouse and PostgreSQL files are
checked against the code they deploy: every ``MRM_*`` variable a container gets must be a
setting some settings class actually reads (found by introspection, so a renamed setting breaks
this test), every Prometheus expression on a dashboard must name a metric that
``shared.metrics.ServiceMetrics`` exports, and the ports agree with the services' defaults.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

from shared.metrics import ServiceMetrics
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GATEWAY_FILE = ROOT / "deploy" / "gateway" / "nginx.conf"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
CLICKHOUSE_USERS_DIR = ROOT / "deploy" / "clickhouse" / "users.d"
POSTGRES_INIT_DIR = ROOT / "deploy" / "postgres" / "init"

APP_SERVICES = ("planning", "execution", "measurement", "notifier")
SPEC_PORTS = {"planning": 8001, "execution": 8002, "measurement": 8003, "notifier": 8004}
RELATIONAL_SERVICES = ("planning", "execution", "notifier")
INFRASTRUCTURE = ("kafka", "clickhouse", "postgres", "prometheus", "grafana", "mailpit", "gateway")

# Read by the `mrm demo` CLI (mrm/runtime.py: load), not by a settings class.
DEMO_CLI_VARIABLES = frozenset(
    {
        "MRM_PLANNING_URL",
        "MRM_EXECUTION_URL",
        "MRM_MEASUREMENT_URL",
        "MRM_NOTIFIER_URL",
        "MRM_DEMO_TOKEN",
    }
)

# One-shot jobs (compose profiles) exit when done, so a health check means nothing for them.
ONE_SHOT_SERVICES = frozenset({"demo", "migrate"})


# --------------------------------------------------------------------------------------------
# helpers: compose interpolation, settings introspection, metric names
# --------------------------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-default}`` (etc.) and ``$$`` like Docker Compose.

    Braces inside a default must balance (Compose >= 2.25 semantics), which a JSON default needs.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ValueError(f"unbalanced braces in {text!r}")
            out.append(_substitute(text[i + 2 : j - 1], env))
            i = j
            continue
        match = _NAME.match(text, i + 1)
        if not match:
            raise ValueError(f"invalid interpolation in {text!r}")
        out.append(env.get(match.group(), ""))
        i = match.end()
    return "".join(out)


def _substitute(expression: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(expression)
    if not match:
        raise ValueError(f"invalid variable in ${{{expression}}}")
    name, rest = match.group(), expression[match.end() :]
    value = env.get(name)
    if not rest:
        return value or ""
    for operator in (":-", "-", ":?", "?", ":+", "+"):
        if rest.startswith(operator):
            argument = interpolate(rest[len(operator) :], env)
            empty_counts = operator.startswith(":")
            missing = value is None or (empty_counts and value == "")
            if operator.endswith("-"):
                return argument if missing else value or ""
            if operator.endswith("?"):
                if missing:
                    raise ValueError(f"required variable {name}: {argument}")
                return value or ""
            return "" if missing else argument
    raise ValueError(f"unsupported interpolation ${{{expression}}}")


def resolve(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """``value`` with every string interpolated (defaults apply when ``env`` lacks a name)."""
    env = env or {}
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [resolve(item, env) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, env) for key, item in value.items()}
    return value


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict (either compose syntax), values interpolated."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {key: "" if value is None else str(resolve(value)) for key, value in raw.items()}


def settings_modules() -> dict[str, Any]:
    """Every ``services/<svc>/settings.py`` that exists right now, imported, by service."""
    return {
        path.parent.name: importlib.import_module(f"services.{path.parent.name}.settings")
        for path in sorted((ROOT / "services").glob("*/settings.py"))
    }


def settings_classes(module: Any) -> list[type[BaseSettings]]:
    """The BaseSettings subclasses a settings module defines itself."""
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseSettings)
        and obj.__module__ == module.__name__
    ]


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Environment variable names a settings class reads: env_prefix + field name, upper-cased,
    plus every string of a field's alias / validation_alias (AliasChoices, AliasPath heads)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        names.add((prefix + field_name).upper())
        for alias in (field.alias, field.validation_alias):
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            for choice in choices:
                if isinstance(choice, AliasPath):
                    choice = choice.path[0]
                if isinstance(choice, str):
                    names.add(choice.upper())
    return names


def known_settings() -> set[str]:
    """Names read by CommonSettings and by every service settings class that exists."""
    known = env_names(CommonSettings)
    for module in settings_modules().values():
        for cls in settings_classes(module):
            known |= env_names(cls)
    return known


def exported_metric_names() -> set[str]:
    """Every series name the four services' ServiceMetrics can expose."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
    }
    names: set[str] = set()
    for service in APP_SERVICES:
        for family in ServiceMetrics(service).registry.collect():
            names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def dashboards() -> list[Path]:
    """The dashboard JSON files Grafana provisions."""
    return sorted((GRAFANA_DIR / "dashboards").glob("*.json"))


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels") or [])


def published_ports(service: Mapping[str, Any]) -> set[int]:
    """Container ports a service publishes on the host."""
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(resolve(entry)).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def default_port(svc: str) -> int:
    """The port a service listens on by default: its settings class, else the SPEC default."""
    module = settings_modules().get(svc)
    if module is not None:
        for cls in settings_classes(module):
            if "port" in cls.model_fields:
                return int(cls.model_fields["port"].default)
    return SPEC_PORTS[svc]


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed (anchors and merge keys resolved by YAML)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose file's services by name."""
    return compose["services"]


# --------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------


def test_compose_parses_and_runs_the_whole_platform(services: dict[str, Any]) -> None:
    """Infrastructure, the four services and the optional demo are all there."""
    assert set(INFRASTRUCTURE) | set(APP_SERVICES) | {"demo"} <= set(services)
    assert services["demo"]["profiles"] == ["demo"]
    assert all("profiles" not in services[name] for name in (*INFRASTRUCTURE, *APP_SERVICES))


def test_every_image_is_pinned(services: dict[str, Any]) -> None:
    """A tag that is not `latest`, or a digest, on every image (defaults interpolated)."""
    for name, service in services.items():
        if "image" not in service:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        image = resolve(service["image"])
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_infrastructure_images(services: dict[str, Any]) -> None:
    """The products SPEC §6 names, from their official images."""
    expected = {
        "kafka": "apache/kafka:",
        "clickhouse": "clickhouse/clickhouse-server:",
        "postgres": "postgres:",
        "prometheus": "prom/prometheus:",
        "grafana": "grafana/grafana:",
        "mailpit": "axllent/mailpit:",
        "gateway": "nginx:",
    }
    for name, prefix in expected.items():
        assert services[name]["image"].startswith(prefix), name


def test_bind_mounted_paths_exist(services: dict[str, Any]) -> None:
    """Every host path mounted into a container, and every build context, is in the repo."""
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                if volume.get("type") != "bind":
                    continue
                source = str(volume["source"])
            else:
                source = str(volume).split(":", 1)[0]
                if not source.startswith((".", "/", "~")):
                    continue  # a named volume
            path = (ROOT / resolve(source)).resolve()
            assert path.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
            assert path.exists(), f"{name}: bind-mounted {source} does not exist"
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file(), name


def test_every_mrm_variable_is_a_known_setting(services: dict[str, Any]) -> None:
    """MRM_* variables in any container are read by a settings class (or the demo CLI)."""
    assert set(settings_modules()) >= set(APP_SERVICES), "every service has its settings"
    known = known_settings() | DEMO_CLI_VARIABLES
    unknown = {
        f"{name}: {var}"
        for name, service in services.items()
        for var in environment(service)
        if var.startswith("MRM_") and var not in known
    }
    assert not unknown, f"MRM_* variables no settings class reads: {sorted(unknown)}"


def test_introspection_sees_the_settings_it_should() -> None:
    """The introspection itself finds common and service-specific names (guards the guard)."""
    known = known_settings()
    assert {"MRM_KAFKA_BOOTSTRAP", "MRM_TOKENS", "MRM_HOST", "MRM_LOG_LEVEL"} <= known
    if "planning" in settings_modules():
        assert {"MRM_PLANNING_PORT", "MRM_PORT", "MRM_DATABASE_URL"} <= known
    assert "MRM_NO_SUCH_SETTING" not in known


def test_service_environments_validate_against_their_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's settings class accepts its compose environment with the dev defaults."""
    modules = settings_modules()
    for svc in APP_SERVICES:
        if svc not in modules:
            continue
        env = environment(services[svc])
        with monkeypatch.context() as patch:
            for var in [var for var in os.environ if var.startswith("MRM_")]:
                patch.delenv(var)
            for var, value in env.items():
                patch.setenv(var, value)
            for cls in settings_classes(modules[svc]):
                settings = cls(_env_file=None)  # type: ignore[call-arg]
                assert settings.kafka_bootstrap == "kafka:9092"
                assert settings.host == "0.0.0.0"
                assert any(grant.role == "admin" for grant in settings.tokens.values())
                if svc in RELATIONAL_SERVICES:
                    assert settings.database_url == env["MRM_DATABASE_URL"]
                if svc == "measurement":
                    assert settings.clickhouse_url == env["MRM_CLICKHOUSE_URL"]
                if svc == "notifier":
                    assert (settings.smtp_host, settings.smtp_port) == ("mailpit", 1025)


def test_app_services_are_built_from_the_one_dockerfile(services: dict[str, Any]) -> None:
    """Same build, `python -m services.<svc>`, Kafka, bind host, tokens with a dev default."""
    images = {resolve(services[svc]["image"]) for svc in APP_SERVICES}
    assert len(images) == 1
    for svc in APP_SERVICES:
        service = services[svc]
        assert service["build"]["context"] == "."
        assert service["command"] == ["python", "-m", f"services.{svc}"]
        raw_env = service["environment"]
        assert raw_env["MRM_KAFKA_BOOTSTRAP"] == "${MRM_KAFKA_BOOTSTRAP:-kafka:9092}"
        assert raw_env["MRM_HOST"] == "0.0.0.0"
        assert raw_env["MRM_TOKENS"].startswith("${MRM_TOKENS:-")
        tokens = json.loads(environment(service)["MRM_TOKENS"])
        assert tokens and all({"subject", "role"} <= set(grant) for grant in tokens.values())
        overridden = json.loads(resolve(raw_env["MRM_TOKENS"], {"MRM_TOKENS": '{"t": {}}'}))
        assert overridden == {"t": {}}, "an operator's MRM_TOKENS must replace the default"


def test_scalable_services_publish_no_host_port(services: dict[str, Any]) -> None:
    """`docker compose up --scale <svc>=N` needs services without fixed host ports or names."""
    for svc in APP_SERVICES:
        assert not published_ports(services[svc]), f"{svc} publishes a host port"
        assert "container_name" not in services[svc], svc


def _gateway_routes() -> dict[int, str]:
    """The gateway's nginx.conf: listened port -> the ``host:port`` its requests go to."""
    text = re.sub(r"#[^\n]*", "", GATEWAY_FILE.read_text())
    routes: dict[int, str] = {}
    for block in re.split(r"\bserver\s*\{", text)[1:]:
        listen = re.search(r"\blisten\s+(\d+)\s*;", block)
        upstream = re.search(r"\bset\s+\$upstream\s+([\w.-]+:\d+)\s*;", block)
        assert listen, block
        if upstream:
            assert re.search(r"proxy_pass\s+http://\$upstream\s*;", block), block
            routes[int(listen.group(1))] = upstream.group(1)
    return routes


def test_the_gateway_publishes_each_api_on_its_port(services: dict[str, Any]) -> None:
    """One published entry point: each service's port, proxied to the service's name (every
    replica, re-resolved through Docker's DNS), once all four are healthy."""
    gateway = services["gateway"]
    assert published_ports(gateway) == {default_port(svc) for svc in APP_SERVICES}
    assert _gateway_routes() == {
        default_port(svc): f"{svc}:{default_port(svc)}" for svc in APP_SERVICES
    }
    text = GATEWAY_FILE.read_text()
    assert re.search(r"^\s*resolver\s+127\.0\.0\.11\b", text, re.MULTILINE), (
        "names must be resolved per request by Docker's DNS, or new replicas are never used"
    )
    assert set(gateway["depends_on"]) == set(APP_SERVICES)
    health = gateway["healthcheck"]["test"]
    health_port = int(re.search(r"127\.0\.0\.1:(\d+)/", " ".join(health)).group(1))
    assert health_port not in published_ports(gateway)
    assert health_port not in _gateway_routes()
    mounts = dict(str(v).split(":")[:2] for v in gateway["volumes"])
    assert mounts["./deploy/gateway/nginx.conf"] == "/etc/nginx/nginx.conf"


def test_relational_services_use_their_own_postgres_database(services: dict[str, Any]) -> None:
    """planning, execution and notifier each get a database created by the init script."""
    created = {
        match.lower()
        for script in POSTGRES_INIT_DIR.glob("*.sql")
        for match in re.findall(r"CREATE\s+DATABASE\s+(\w+)", script.read_text(), re.IGNORECASE)
    }
    assert created == set(RELATIONAL_SERVICES)
    for svc in RELATIONAL_SERVICES:
        url = environment(services[svc])["MRM_DATABASE_URL"]
        assert re.fullmatch(rf"postgresql://[^@/]+@postgres:5432/{svc}", url), url
        assert services[svc]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert not any(var.endswith("DATABASE_URL") for var in environment(services["measurement"]))


def test_measurement_uses_clickhouse_with_the_default_user(services: dict[str, Any]) -> None:
    """measurement reaches ClickHouse over HTTP with the password the server is given."""
    url = environment(services["measurement"])["MRM_CLICKHOUSE_URL"]
    password = environment(services["clickhouse"])["CLICKHOUSE_DEFAULT_PASSWORD"]
    assert url == f"http://default:{password}@clickhouse:8123"
    database = environment(services["measurement"])["MRM_CLICKHOUSE_DATABASE"]
    grafana = _users()["grafana"]
    assert [q.text for q in grafana.iterfind("./grants/query")] == [f"GRANT SELECT ON {database}.*"]
    provisioning = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"
    sources = yaml.safe_load(provisioning.read_text())["datasources"]
    assert {ds["jsonData"].get("defaultDatabase") for ds in sources} >= {database}
    assert services["measurement"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_notifier_mails_through_mailpit(services: dict[str, Any]) -> None:
    """SMTP settings point at the Mailpit container, whose UI is published."""
    env = environment(services["notifier"])
    assert env["MRM_SMTP_HOST"] == "mailpit"
    assert env["MRM_SMTP_PORT"] == "1025"
    assert "@" in env["MRM_SMTP_FROM"]
    assert services["notifier"]["depends_on"]["mailpit"]["condition"] == "service_healthy"
    assert 8025 in published_ports(services["mailpit"])


def test_kafka_runs_in_kraft_mode_for_the_services(services: dict[str, Any]) -> None:
    """Combined broker/controller, advertised to the compose network as kafka:9092."""
    env = environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "ZOOKEEPER" not in " ".join(env)
    for svc in APP_SERVICES:
        assert services[svc]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_container_has_a_health_check(services: dict[str, Any]) -> None:
    """Long-running containers declare a health check; services probe their /ready."""
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
    for svc in APP_SERVICES:
        test = services[svc]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert f"urllib.request.urlopen('http://127.0.0.1:{default_port(svc)}/ready'" in test[3]


def test_dependencies_wait_for_healthy_containers(services: dict[str, Any]) -> None:
    """Every depends_on waits for service_healthy on a container that has a health check."""
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, condition in depends_on.items():
            if target in ONE_SHOT_SERVICES:  # a job: waited for until it has succeeded
                assert condition == {"condition": "service_completed_successfully"}, name
                continue
            optional = condition.get("required", True) is False  # a node of a profile
            assert condition == {"condition": "service_healthy"} | (
                {"required": False} if optional else {}
            ), f"{name} -> {target}"
            assert "healthcheck" in services[target], f"{name} -> {target}: no health check"
            assert not optional or services[target].get("profiles"), f"{name} -> {target}"


def test_the_relational_services_start_once_their_databases_are_migrated(
    services: dict[str, Any],
) -> None:
    """The migrate job runs `mrm migrate all` on each service's own database and on
    measurement's warehouse, after PostgreSQL and ClickHouse are healthy; each of the four
    services waits for it to succeed (the relational ones refuse a schema not at head)."""
    job = services["migrate"]
    assert job["command"] == ["mrm", "migrate", "all"]
    assert job["restart"] == "no" and "profiles" not in job
    assert resolve(job["image"]) == resolve(services["planning"]["image"])
    assert job["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "clickhouse": {"condition": "service_healthy"},
    }
    env = environment(job)
    for svc in RELATIONAL_SERVICES:
        assert (
            env[f"MRM_{svc.upper()}_DATABASE_URL"] == environment(services[svc])["MRM_DATABASE_URL"]
        )
    measurement = environment(services["measurement"])
    for name in ("MRM_CLICKHOUSE_URL", "MRM_CLICKHOUSE_DATABASE", "MRM_CLICKHOUSE_CLUSTER"):
        assert env[name] == measurement[name], name
    for svc in (*RELATIONAL_SERVICES, "measurement"):
        assert services[svc]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_demo_profile_runs_the_cli_against_the_stack(services: dict[str, Any]) -> None:
    """`mrm demo` gets the broker, the four service URLs and a token the services accept."""
    demo = services["demo"]
    assert demo["command"] == ["mrm", "demo"]
    env = environment(demo)
    assert set(env) >= DEMO_CLI_VARIABLES
    assert env["MRM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    for svc in APP_SERVICES:
        assert env[f"MRM_{svc.upper()}_URL"] == f"http://{svc}:{default_port(svc)}"
    tokens = json.loads(environment(services["planning"])["MRM_TOKENS"])
    assert tokens[env["MRM_DEMO_TOKEN"]]["role"] in ("admin", "cmo")


# --------------------------------------------------------------------------------------------
# Prometheus, Grafana, ClickHouse
# --------------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_replica_of_all_four_services(services: dict[str, Any]) -> None:
    """One scrape job per service, path /metrics, whose targets are the A records of the
    service's compose name (one per replica) on the port that service listens on."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for svc in APP_SERVICES:
        job = jobs[svc]
        assert job.get("metrics_path", "/metrics") == "/metrics", svc
        assert "static_configs" not in job, f"{svc}: a static target is one replica only"
        [discovery] = job["dns_sd_configs"]
        assert discovery["names"] == [svc]
        assert (discovery["type"], discovery["port"]) == ("A", default_port(svc))
        # the services label their own series with `service`: a target label of that name
        # would rename theirs to `exported_service`
        assert not any(
            r.get("target_label") == "service" for r in job.get("relabel_configs", [])
        ), svc
    mounted = [str(v) for v in services["prometheus"]["volumes"]]
    assert any(v.startswith("./deploy/prometheus/prometheus.yml:") for v in mounted)


def test_grafana_data_sources(services: dict[str, Any]) -> None:
    """Prometheus, and ClickHouse through the plugin with the read-only `grafana` user."""
    provisioning = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"
    sources = {ds["type"]: ds for ds in yaml.safe_load(provisioning.read_text())["datasources"]}
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    clickhouse = sources["grafana-clickhouse-datasource"]
    assert clickhouse["jsonData"]["host"] == "clickhouse"
    assert clickhouse["jsonData"]["username"] == "grafana"
    password_ref = clickhouse["secureJsonData"]["password"]
    variable = re.fullmatch(r"\$\{?(\w+)\}?", password_ref)
    assert variable, "the password comes from Grafana's environment"
    grafana_env = environment(services["grafana"])
    clickhouse_env = environment(services["clickhouse"])
    assert grafana_env[variable.group(1)] == clickhouse_env[variable.group(1)]
    # "<plugin id> <version>": the plugin is pinned like the images are
    plugin, _, version = grafana_env["GF_INSTALL_PLUGINS"].partition(" ")
    assert plugin == "grafana-clickhouse-datasource"
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"plugin version {version!r} is not pinned"


def _users() -> dict[str, ET.Element]:
    users: dict[str, ET.Element] = {}
    for path in sorted(CLICKHOUSE_USERS_DIR.glob("*.xml")):
        for user in ET.parse(path).getroot().iterfind("./users/*"):
            users[user.tag] = user
    return users


def test_clickhouse_users(services: dict[str, Any]) -> None:
    """`grafana` is read-only on the mrm database; both passwords come from the environment."""
    users = _users()
    profiles = {
        profile.tag: profile
        for path in CLICKHOUSE_USERS_DIR.glob("*.xml")
        for profile in ET.parse(path).getroot().iterfind("./profiles/*")
    }
    grafana = users["grafana"]
    profile = profiles[grafana.findtext("profile", "")]
    assert profile.findtext("readonly") == "1"
    assert profile.findtext("allow_ddl") == "0"
    assert [q.text for q in grafana.iterfind("./grants/query")] == ["GRANT SELECT ON mrm.*"]
    env = environment(services["clickhouse"])
    assert env["CLICKHOUSE_SKIP_USER_SETUP"] == "1"
    for name in ("default", "grafana"):
        password = users[name].find("password")
        assert password is not None and password.get("from_env") in env, name
    mounted = {str(v).split(":")[0] for v in services["clickhouse"]["volumes"]}
    assert {f"./{p.relative_to(ROOT)}" for p in CLICKHOUSE_USERS_DIR.glob("*.xml")} <= mounted


def test_grafana_dashboards_are_provisioned(services: dict[str, Any]) -> None:
    """The dashboard provider's path is where the dashboards directory is mounted."""
    provider_file = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
    providers = yaml.safe_load(provider_file.read_text())["providers"]
    mounts = dict(str(v).split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert [p.name for p in dashboards()] == ["marketing-kpis.json", "pipeline-health.json"]


_NAME_MATCHER = re.compile(r"""__name__\s*(=~|=)\s*"([^"]*)\"""")
_BARE_METRIC = re.compile(r"\bmrm_[A-Za-z0-9_:]+")


def _expansions(expr: str, variables: dict[str, list[str]]) -> list[str]:
    for name, values in variables.items():
        if re.search(rf"\$\{{?{name}\b", expr):
            return [
                e
                for value in values
                for e in _expansions(re.sub(rf"\$\{{{name}\}}|\${name}\b", value, expr), variables)
            ]
    return [expr]


def test_dashboard_expressions_use_exported_metrics() -> None:
    """Every Prometheus expression names only metrics ServiceMetrics exports."""
    exported = exported_metric_names()
    for path in dashboards():
        dashboard = json.loads(path.read_text())
        variables = {
            var["name"]: [o["value"] for o in var.get("options", []) if o["value"] != "$__all"]
            or var["query"].split(",")
            for var in dashboard.get("templating", {}).get("list", [])
            if var["type"] == "custom"
        }
        exprs = [
            target["expr"]
            for panel in walk_panels(dashboard["panels"])
            for target in panel.get("targets", [])
            if "expr" in target
        ]
        assert exprs, f"{path.name}: no Prometheus queries"
        for expr in exprs:
            for concrete in _expansions(expr, variables):
                referenced = 0
                for operator, value in _NAME_MATCHER.findall(concrete):
                    matching = {
                        name
                        for name in exported
                        if (re.fullmatch(value, name) if operator == "=~" else name == value)
                    }
                    assert matching, f"{path.name}: {value!r} matches no exported metric"
                    referenced += 1
                bare = _BARE_METRIC.findall(_NAME_MATCHER.sub("", concrete))
                unknown = set(bare) - exported
                assert not unknown, f"{path.name}: unknown metrics {unknown} in {concrete!r}"
                assert referenced + len(bare), f"{path.name}: no mrm_ metric in {concrete!r}"


def test_dashboard_covers_the_pipeline_metrics() -> None:
    """The pipeline-health dashboard shows each kind of pipeline metric, per service."""
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "pipeline-health.json").read_text())
    text = " ".join(
        target["expr"]
        for panel in walk_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    )
    for suffix in (
        "messages_in_total",
        "messages_out_total",
        "dead_letters_total",
        "handler_seconds_bucket",
        "consumer_lag_messages",
        "outbox_pending_messages",
    ):
        assert f'mrm_{suffix}{{service="$service"}}' in text, suffix
    assert "histogram_quantile(0.5," in text and "histogram_quantile(0.99," in text
    service_var = next(v for v in dashboard["templating"]["list"] if v["name"] == "service")
    assert set(service_var["query"].split(",")) == set(APP_SERVICES)
    uids = {
        panel["datasource"]["uid"]
        for panel in walk_panels(dashboard["panels"])
        if panel.get("datasource")
    }
    assert uids == {"prometheus"}


def test_clickhouse_and_grafana_config_files_are_well_formed() -> None:
    """XML parses; YAML provisioning files parse with apiVersion 1."""
    for path in CLICKHOUSE_USERS_DIR.glob("*.xml"):
        assert ET.parse(path).getroot().tag == "clickhouse", path.name
    for path in (GRAFANA_DIR / "provisioning").rglob("*.yml"):
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path.name


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    ]


# The base image's digest pin and the locked, hashed install: tests/deploy/test_lockfile.py.


def test_dockerfile_installs_the_package_and_runs_unprivileged() -> None:
    """pip installs the project, a non-root user runs it, 8001-8004 exposed, CLI by default."""
    instructions = _instructions()
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert re.search(r"pip install --no-cache-dir [^&]*\s\.(\s|$)", runs)
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    exposed = {int(p) for op, arg in instructions if op == "EXPOSE" for p in arg.split()}
    assert exposed == set(SPEC_PORTS.values())
    assert instructions[-1] == ("CMD", '["mrm", "--help"]')
    copied = {arg.split()[0] for op, arg in instructions if op == "COPY"}
    for source in copied:
        assert (ROOT / source).exists(), source


def test_dockerignore_keeps_local_state_out_but_not_the_sources() -> None:
    """.venv, .git and .env never reach the build context; what COPY needs does."""
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", ".mrm"} <= patterns
    assert not {"pyproject.toml", "shared", "services", "mrm"} & patterns
