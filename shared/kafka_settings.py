"""The ``MRM_KAFKA_*`` settings of a production cluster (security, topic shape, producer
guarantees), mixed into every service's settings and read into ``KafkaOptions`` once."""

from __future__ import annotations

from typing import Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from shared.kafka_config import (
    DEFAULT_DLQ_RETENTION_MS,
    KafkaConfigError,
    KafkaOptions,
    KafkaSecurity,
    SaslMechanism,
    SecurityProtocol,
    TopicPolicy,
)


class KafkaSettings(BaseSettings):
    """Kafka connection and topic settings (the env prefix comes from the subclass)."""

    topic_partitions: int = Field(
        default=3,
        ge=1,
        validation_alias=AliasChoices("MRM_KAFKA_PARTITIONS", "MRM_TOPIC_PARTITIONS"),
        description="Partitions of created topics (dead-letter topics get 1).",
    )
    kafka_topic_partitions: dict[str, int] = Field(
        default_factory=dict,
        description='Partitions per topic as JSON, e.g. {"mrm.spend.v1": 12}.',
    )
    kafka_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of created topics."
    )
    kafka_min_insync_replicas: int | None = Field(
        default=None, ge=1, description="min.insync.replicas of created topics (unset: broker's)."
    )
    kafka_topic_configs: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='Topic configs as JSON by topic, "*" for all, e.g. '
        '{"*": {"compression.type": "zstd"}, "mrm.spend.v1": {"retention.ms": "604800000"}}.',
    )
    kafka_dlq_retention_ms: int = Field(
        default=DEFAULT_DLQ_RETENTION_MS,
        description="retention.ms of dead-letter topics (default 30 days; -1 for ever).",
    )
    kafka_idempotence: bool = Field(
        default=True,
        description="Idempotent service producers (the embedded broker does not support them: "
        "`mrm up` turns this off for it).",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(
        default=None, description="CA bundle (PEM) the brokers' certificates are checked against."
    )
    kafka_ssl_certfile: str | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    kafka_ssl_keyfile: str | None = Field(
        default=None, description="Client key (PEM) of the certificate."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Check that a broker's certificate names its host."
    )

    def kafka_options(self) -> KafkaOptions:
        """The options every Kafka client of this process is built with."""
        password = self.kafka_sasl_password
        security = KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
            ssl_check_hostname=self.kafka_ssl_check_hostname,
        )
        topics = TopicPolicy(
            partitions=self.topic_partitions,
            partitions_by_topic=dict(self.kafka_topic_partitions),
            replication_factor=self.kafka_replication_factor,
            min_insync_replicas=self.kafka_min_insync_replicas,
            configs={topic: dict(c) for topic, c in self.kafka_topic_configs.items()},
            dlq_retention_ms=self.kafka_dlq_retention_ms,
        )
        return KafkaOptions(security=security, topics=topics, idempotence=self.kafka_idempotence)

    @model_validator(mode="after")
    def _consistent_kafka(self) -> Self:
        try:
            self.kafka_options()
        except KafkaConfigError as exc:
            raise ValueError(str(exc)) from exc
        return self
