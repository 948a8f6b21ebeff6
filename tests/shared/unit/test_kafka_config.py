"""Kafka settings → the arguments of every client library (FastStream, aiokafka, kafka-python)
and the shape of created topics; contradictory settings fail naming the setting."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from shared.kafka_config import (
    DAY_MS,
    KafkaConfigError,
    KafkaOptions,
    KafkaSecurity,
    TopicPolicy,
)
from shared.settings import CommonSettings
from shared.topics import PLANNING, SPEND, dlq


@pytest.fixture
def no_kafka_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings read from the arguments only (no MRM_KAFKA_* of the environment, no .env)."""
    import os

    for key in list(os.environ):
        if key.startswith(("MRM_KAFKA_", "MRM_TOPIC_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate and its key (PEM), made with the openssl tool."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl tool is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "client.pem", folder / "client.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=mrm-client", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


# --- security ---------------------------------------------------------------------------------


def test_plaintext_is_the_default() -> None:
    security = KafkaSecurity()
    assert security.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert security.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert security.faststream() is None


@pytest.mark.parametrize(
    ("mechanism", "kind"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_ssl_mechanisms(mechanism: str, kind: type[BaseSecurity]) -> None:
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        username="mrm",
        password="s3cret",  # type: ignore[arg-type]
    )
    kwargs = security.aiokafka()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == mechanism
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("mrm", "s3cret")
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    broker = security.faststream()
    assert type(broker) is kind
    # FastStream turns its object into the same aiokafka arguments as ours
    parsed = parse_security(broker)
    assert {k: v for k, v in parsed.items() if k != "ssl_context"} == {
        k: v for k, v in kwargs.items() if k != "ssl_context"
    }
    assert isinstance(parsed["ssl_context"], ssl.SSLContext)
    assert security.kafka_python()["sasl_mechanism"] == mechanism


def test_sasl_plaintext_has_no_tls() -> None:
    security = KafkaSecurity(
        protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", username="u", password="p"
    )
    assert "ssl_context" not in security.aiokafka()
    assert parse_security(security.faststream()) == {
        "security_protocol": "SASL_PLAINTEXT",
        "ssl_context": None,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }


def test_tls_without_client_certificate() -> None:
    security = KafkaSecurity(protocol="SSL", ssl_check_hostname=False)
    kwargs = security.kafka_python()
    assert kwargs["security_protocol"] == "SSL" and "sasl_mechanism" not in kwargs
    context = kwargs["ssl_context"]
    assert context.check_hostname is False and context.verify_mode == ssl.CERT_REQUIRED
    parsed = parse_security(security.faststream())
    assert parsed["security_protocol"] == "SSL"


def test_tls_with_ca_and_client_certificate(client_cert: tuple[str, str]) -> None:
    cert, key = client_cert
    security = KafkaSecurity(protocol="SSL", ssl_cafile=cert, ssl_certfile=cert, ssl_keyfile=key)
    context = security.ssl_context()
    assert context is not None
    # the CA file replaces the system CAs: its one certificate is the only one trusted
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "mrm-client"),),)]


def test_unreadable_ca_file_names_the_setting(tmp_path: Path) -> None:
    security = KafkaSecurity(protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem"))
    with pytest.raises(KafkaConfigError, match="MRM_KAFKA_SSL_CAFILE"):
        security.aiokafka()


def test_bad_key_names_the_setting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    security = KafkaSecurity(protocol="SSL", ssl_certfile=str(broken))
    with pytest.raises(KafkaConfigError, match="MRM_KAFKA_SSL_CERTFILE"):
        security.faststream()


@pytest.mark.parametrize(
    ("fields", "setting"),
    [
        ({"protocol": "SASL_SSL", "username": "u", "password": "p"}, "MRM_KAFKA_SASL_MECHANISM"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "password": "p"}, "USERNAME"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "u"}, "PASSWORD"),
        ({"protocol": "SSL", "sasl_mechanism": "PLAIN"}, "MRM_KAFKA_SECURITY_PROTOCOL is SSL"),
        ({"protocol": "PLAINTEXT", "ssl_cafile": "/ca.pem"}, "MRM_KAFKA_SSL_CAFILE is set"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "u",
          "password": "p", "ssl_certfile": "/c.pem"}, "MRM_KAFKA_SSL_CERTFILE is set"),
        ({"protocol": "SSL", "ssl_keyfile": "/k.pem"}, "MRM_KAFKA_SSL_KEYFILE is set without"),
    ],
)  # fmt: skip
def test_contradictions_name_the_setting(fields: dict[str, str], setting: str) -> None:
    with pytest.raises(KafkaConfigError, match=setting):
        KafkaSecurity(**fields)  # type: ignore[arg-type]


# --- settings → options -----------------------------------------------------------------------


@pytest.mark.usefixtures("no_kafka_env")
def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MRM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("MRM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("MRM_KAFKA_SASL_PASSWORD", "pw")
    monkeypatch.setenv("MRM_KAFKA_SSL_CHECK_HOSTNAME", "false")
    monkeypatch.setenv("MRM_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("MRM_KAFKA_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("MRM_KAFKA_PARTITIONS", "6")
    monkeypatch.setenv("MRM_KAFKA_TOPIC_PARTITIONS", '{"mrm.spend.v1": 12}')
    monkeypatch.setenv("MRM_KAFKA_TOPIC_CONFIGS", '{"*": {"compression.type": "zstd"}}')
    monkeypatch.setenv("MRM_KAFKA_DLQ_RETENTION_MS", str(90 * DAY_MS))
    settings = CommonSettings()
    assert "pw" not in repr(settings)
    options = settings.kafka_options()
    assert options.idempotence is True  # on unless turned off (the embedded broker)
    assert options.producer() == {"acks": "all", "enable_idempotence": True}
    assert options.security.aiokafka()["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options.security.aiokafka()["ssl_context"].check_hostname is False
    spend = options.topics.spec(SPEND)
    assert (spend.partitions, spend.replication_factor) == (12, 3)
    assert dict(spend.configs) == {"min.insync.replicas": "2", "compression.type": "zstd"}
    planning = options.topics.spec(PLANNING)
    assert planning.partitions == 6
    assert dict(planning.configs) == {
        "min.insync.replicas": "2",
        "compression.type": "zstd",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    dead = options.topics.spec(dlq(SPEND))
    assert (dead.partitions, dead.replication_factor) == (1, 3)
    assert dead.configs["retention.ms"] == "7776000000"


@pytest.mark.usefixtures("no_kafka_env")
def test_former_partitions_variable_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRM_TOPIC_PARTITIONS", "5")
    assert CommonSettings().kafka_options().topics.spec(SPEND).partitions == 5


@pytest.mark.usefixtures("no_kafka_env")
@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"MRM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "MRM_KAFKA_SASL_MECHANISM"),
        ({"MRM_KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol"),
        ({"MRM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"MRM_KAFKA_MIN_INSYNC_REPLICAS": "2"}, "MRM_KAFKA_MIN_INSYNC_REPLICAS"),
        ({"MRM_KAFKA_TOPIC_PARTITIONS": '{"mrm.spent.v1": 3}'}, "mrm.spent.v1"),
        ({"MRM_KAFKA_TOPIC_CONFIGS": '{"mrm.planning.v1": {"retention.ms": "604800000"}}'},
         "keep mrm.planning.v1 for ever"),
        ({"MRM_KAFKA_TOPIC_CONFIGS": '{"mrm.planning.v1": {"cleanup.policy": "compact"}}'},
         "keep mrm.planning.v1 for ever"),
        ({"MRM_KAFKA_DLQ_RETENTION_MS": "0"}, "MRM_KAFKA_DLQ_RETENTION_MS"),
    ],
)  # fmt: skip
def test_bad_settings_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=setting):
        CommonSettings()


# --- topic policy -----------------------------------------------------------------------------


def test_a_finite_retention_for_all_topics_does_not_reach_planning() -> None:
    policy = TopicPolicy(configs={"*": {"retention.ms": "604800000"}}, dlq_retention_ms=DAY_MS)
    assert policy.spec(SPEND).configs["retention.ms"] == "604800000"
    assert policy.spec(PLANNING).configs["retention.ms"] == "-1"
    assert policy.spec(dlq(PLANNING)).configs["retention.ms"] == "86400000"


def test_single_partition_topics_and_overrides() -> None:
    policy = TopicPolicy(partitions=4, partitions_by_topic={dlq(SPEND): 2})
    assert policy.spec("mrm.measurement.monitor", single_partition=True).partitions == 1
    assert policy.spec(dlq(SPEND)).partitions == 2
    assert policy.spec(dlq(PLANNING)).partitions == 1


def test_options_default_suits_the_embedded_broker() -> None:
    options = KafkaOptions()
    assert options.producer() == {"acks": "all", "enable_idempotence": False}
    assert options.with_partitions(7).topics.spec(SPEND).partitions == 7
    assert options.topics.spec(SPEND).replication_factor == 1
