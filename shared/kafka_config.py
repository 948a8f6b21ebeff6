"""How the platform's Kafka clients connect and how its topics are shaped, built in one place.

``KafkaSecurity`` turns the SASL/TLS settings into the arguments of each client library the
code uses (FastStream's security object, aiokafka, kafka-python), so a managed cluster works
for the services and the ``mrm`` tools alike. ``TopicPolicy`` says how every platform topic is
created: partitions, replication factor, ``min.insync.replicas`` and topic configs, with
``mrm.planning.v1`` kept for ever (other services rebuild their projections from it) and dead
letters kept long enough to be replayed. ``KafkaOptions`` carries both, plus the producer
guarantees, from the settings (``KafkaSettings``) to the composition roots."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from shared.topics import DLQ_SUFFIX, PLANNING, all_topics_with_dlq

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

DAY_MS = 24 * 3600 * 1000
DEFAULT_DLQ_RETENTION_MS = 30 * DAY_MS
FOREVER = "-1"
ALL_TOPICS_KEY = "*"
"""The key of ``MRM_KAFKA_TOPIC_CONFIGS`` whose configs apply to every topic."""


class KafkaConfigError(ValueError):
    """Kafka settings that contradict each other; the message names the setting to change."""


@dataclass(frozen=True)
class KafkaSecurity:
    """SASL and TLS of every Kafka client; the default is a plaintext connection."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.uses_sasl:
            for value, name in (
                (self.sasl_mechanism, "MRM_KAFKA_SASL_MECHANISM"),
                (self.username, "MRM_KAFKA_SASL_USERNAME"),
                (self.password, "MRM_KAFKA_SASL_PASSWORD"),
            ):
                if not value:
                    raise KafkaConfigError(
                        f"{name} must be set when MRM_KAFKA_SECURITY_PROTOCOL is {self.protocol}"
                    )
        elif self.sasl_mechanism or self.username or self.password:
            raise KafkaConfigError(
                "MRM_KAFKA_SASL_MECHANISM/USERNAME/PASSWORD are set but "
                f"MRM_KAFKA_SECURITY_PROTOCOL is {self.protocol} "
                "(use SASL_SSL or SASL_PLAINTEXT to authenticate)"
            )
        if not self.uses_tls:
            for value, name in (
                (self.ssl_cafile, "MRM_KAFKA_SSL_CAFILE"),
                (self.ssl_certfile, "MRM_KAFKA_SSL_CERTFILE"),
                (self.ssl_keyfile, "MRM_KAFKA_SSL_KEYFILE"),
            ):
                if value:
                    raise KafkaConfigError(
                        f"{name} is set but MRM_KAFKA_SECURITY_PROTOCOL is {self.protocol} "
                        "(use SSL or SASL_SSL for TLS)"
                    )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise KafkaConfigError("MRM_KAFKA_SSL_KEYFILE is set without MRM_KAFKA_SSL_CERTFILE")

    @property
    def uses_sasl(self) -> bool:
        """Whether clients authenticate with SASL."""
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        """Whether connections are encrypted with TLS."""
        return self.protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client shares (None without TLS): the server certificate is
        always verified (against the CA file, else the system's CAs), the host name unless
        ``ssl_check_hostname`` is off, and the client certificate is presented when given."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaConfigError(f"MRM_KAFKA_SSL_CAFILE cannot be loaded: {exc}") from exc
        context.check_hostname = self.ssl_check_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        if self.ssl_certfile:
            try:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise KafkaConfigError(
                    f"MRM_KAFKA_SSL_CERTFILE/KEYFILE cannot be loaded: {exc}"
                ) from exc
        return context

    def faststream(self) -> BaseSecurity | None:
        """FastStream's security object for ``KafkaBroker(security=...)`` (None: plaintext)."""
        context = self.ssl_context()
        use_ssl = self.uses_tls
        if not self.uses_sasl:
            return BaseSecurity(ssl_context=context, use_ssl=use_ssl) if use_ssl else None
        assert self.username is not None and self.password is not None  # __post_init__
        kinds = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }
        kind = kinds[self.sasl_mechanism or "PLAIN"]
        return kind(self.username, self.password, ssl_context=context, use_ssl=use_ssl)

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's producer, consumer and admin client."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return kwargs

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's producer, consumer and admin client (the same
        TLS context as aiokafka's, so both check certificates alike)."""
        return self.aiokafka()


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


@dataclass(frozen=True)
class TopicPolicy:
    """Partitions, replication and configs of the platform's topics.

    Configs are layered: ``MRM_KAFKA_TOPIC_CONFIGS["*"]``, then what a topic needs
    (``mrm.planning.v1`` kept for ever, DLQs kept ``dlq_retention_ms``), then the topic's own
    entry. Dead-letter topics and single-partition topics (an election topic) get one
    partition unless ``partitions_by_topic`` names them."""

    partitions: int = 3
    partitions_by_topic: Mapping[str, int] = field(default_factory=dict)
    replication_factor: int = 1
    min_insync_replicas: int | None = None
    configs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    dlq_retention_ms: int = DEFAULT_DLQ_RETENTION_MS

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise KafkaConfigError("MRM_KAFKA_PARTITIONS must be at least 1")
        if self.replication_factor < 1:
            raise KafkaConfigError("MRM_KAFKA_REPLICATION_FACTOR must be at least 1")
        if self.min_insync_replicas is not None and not (
            1 <= self.min_insync_replicas <= self.replication_factor
        ):
            raise KafkaConfigError(
                f"MRM_KAFKA_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) must be between 1 "
                f"and MRM_KAFKA_REPLICATION_FACTOR ({self.replication_factor})"
            )
        if self.dlq_retention_ms < 1 and self.dlq_retention_ms != -1:
            raise KafkaConfigError("MRM_KAFKA_DLQ_RETENTION_MS must be positive or -1 (for ever)")
        known = set(all_topics_with_dlq())
        for topic, count in self.partitions_by_topic.items():
            if topic not in known:
                raise KafkaConfigError(
                    f"MRM_KAFKA_TOPIC_PARTITIONS names no platform topic: {topic}"
                )
            if count < 1:
                raise KafkaConfigError(f"MRM_KAFKA_TOPIC_PARTITIONS[{topic}] must be at least 1")
        for topic in self.configs:
            if topic != ALL_TOPICS_KEY and topic not in known:
                raise KafkaConfigError(f"MRM_KAFKA_TOPIC_CONFIGS names no platform topic: {topic}")
        planning = self.spec(PLANNING).configs
        if planning.get("retention.ms") != FOREVER or "compact" in planning.get(
            "cleanup.policy", "delete"
        ):
            raise KafkaConfigError(
                f"MRM_KAFKA_TOPIC_CONFIGS must keep {PLANNING} for ever (retention.ms=-1, no "
                "compaction): the other services rebuild their projections from it"
            )

    def spec(self, topic: str, *, single_partition: bool = False) -> TopicSpec:
        """How ``topic`` is created under this policy."""
        configs: dict[str, str] = {}
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        configs |= self.configs.get(ALL_TOPICS_KEY, {})
        if topic == PLANNING:
            configs |= {"retention.ms": FOREVER, "retention.bytes": FOREVER}
        if topic.endswith(DLQ_SUFFIX):
            configs["retention.ms"] = str(self.dlq_retention_ms)
        configs |= self.configs.get(topic, {})
        single = single_partition or topic.endswith(DLQ_SUFFIX)
        partitions = self.partitions_by_topic.get(topic, 1 if single else self.partitions)
        return TopicSpec(topic, partitions, self.replication_factor, MappingProxyType(configs))


@dataclass(frozen=True)
class KafkaOptions:
    """Everything a Kafka client of the platform needs besides the bootstrap servers.

    The default (plaintext, one replica, no idempotence) suits the embedded broker; services
    get theirs from ``KafkaSettings.kafka_options()``."""

    security: KafkaSecurity = KafkaSecurity()
    topics: TopicPolicy = TopicPolicy()
    idempotence: bool = False

    def producer(self) -> dict[str, Any]:
        """Producer guarantees where the services publish: every in-sync replica acknowledges,
        and with idempotence a retried send is not written twice."""
        return {"acks": "all", "enable_idempotence": self.idempotence}

    def with_partitions(self, partitions: int) -> KafkaOptions:
        """These options with another default partition count."""
        topics = TopicPolicy(**{**vars(self.topics), "partitions": partitions})
        return KafkaOptions(security=self.security, topics=topics, idempotence=self.idempotence)


PLAINTEXT = KafkaOptions()
"""The options of a client that is given none: plaintext, the policy's defaults (tools, tests
and the embedded broker)."""
