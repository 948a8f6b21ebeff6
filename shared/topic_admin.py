"""Creating the platform's topics with the shape ``TopicPolicy`` gives them (kafka-python admin).

Existing topics are never altered: a topic created by an older release or by hand may differ
(fewer partitions, another replication factor, other configs), and changing it here could
lose data or move keys between partitions. Each difference the broker reports is logged as a
``topic_differs`` warning naming the topic, the setting, the value wanted and the value found;
an operator aligns it with ``kafka-configs.sh`` / ``kafka-topics.sh`` if it matters."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import structlog
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from shared.kafka_config import PLAINTEXT, KafkaOptions, TopicSpec

log = structlog.get_logger(__name__)


def new_topic(spec: TopicSpec) -> NewTopic:
    """kafka-python's creation request for ``spec``."""
    return NewTopic(
        spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.configs)
    )


def topic_differences(
    spec: TopicSpec,
    *,
    partitions: int | None,
    replication_factor: int | None,
    configs: Mapping[str, str],
) -> list[tuple[str, str, str]]:
    """(setting, wanted, found) for each way an existing topic differs from ``spec``; what the
    broker does not report (None, or a config it leaves out) is not a difference."""
    found: list[tuple[str, str, str]] = []
    if partitions is not None and partitions != spec.partitions:
        found.append(("partitions", str(spec.partitions), str(partitions)))
    if replication_factor is not None and replication_factor != spec.replication_factor:
        found.append(("replication_factor", str(spec.replication_factor), str(replication_factor)))
    for name, wanted in sorted(spec.configs.items()):
        have = configs.get(name)
        if have is not None and have != wanted:
            found.append((name, wanted, have))
    return found


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int | None = None,
    kafka: KafkaOptions = PLAINTEXT,
    single_partition: Collection[str] = (),
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet as ``kafka.topics`` shapes them (``partitions``
    replaces its default count), warn about existing ones that differ; return those created."""
    options = kafka if partitions is None else kafka.with_partitions(partitions)
    specs = [options.topics.spec(t, single_partition=t in single_partition) for t in topics]
    admin = _admin(bootstrap, options, timeout_s=timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([new_topic(spec) for spec in missing])
        present = [spec for spec in specs if spec.name in existing]
        if present:
            _warn_differences(admin, present)
        return [spec.name for spec in missing]
    finally:
        admin.close()


def _admin(bootstrap: str, options: KafkaOptions, *, timeout_s: float) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="mrm-admin",
                **options.security.kafka_python(),
            )
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _warn_differences(admin: KafkaAdminClient, specs: list[TopicSpec]) -> None:
    try:
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
        resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
        configs = admin.describe_configs(resources, config_filter="all").get("topic", {})
    except KafkaError as exc:  # a broker that cannot describe: creation still succeeded
        log.warning("topic_describe_failed", error=repr(exc))
        return
    for spec in specs:
        topic = described.get(spec.name, {})
        parts = topic.get("partitions") or []
        differences = topic_differences(
            spec,
            partitions=len(parts) or None,
            replication_factor=len(parts[0]["replica_nodes"]) if parts else None,
            configs=_values(configs.get(spec.name, {})),
        )
        for setting, wanted, have in differences:
            log.warning(
                "topic_differs", topic=spec.name, setting=setting, wanted=wanted, found=have
            )


def _values(configs: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: str(entry["value"])
        for name, entry in configs.items()
        if isinstance(entry, Mapping) and entry.get("value") is not None
    }
