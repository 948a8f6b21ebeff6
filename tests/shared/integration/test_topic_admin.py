"""Topic creation under the topic policy, against the real test broker (Tansu), and the broker
the services build from the same options.

Tansu creates topics with the requested partitions but reports no topic configs back
(DescribeConfigs answers with none), so the configs are checked in the creation requests
sent to it; partitions are checked as the broker reports them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from structlog.testing import capture_logs

from shared import topic_admin
from shared.embedded import EmbeddedBroker
from shared.kafka import make_broker
from shared.kafka_config import DAY_MS, KafkaOptions, KafkaSecurity, TopicPolicy
from shared.topic_admin import ensure_topics
from shared.topics import PLANNING, SALES, SPEND, dlq


@pytest.fixture
def empty_broker() -> Iterator[str]:
    """A broker of its own with no topics yet (the session broker has them all)."""
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[NewTopic]:
    """The creation requests the admin client sends (and still sends to the broker)."""
    requests: list[NewTopic] = []
    original = KafkaAdminClient.create_topics

    def spy(self: KafkaAdminClient, new_topics: list[NewTopic], *args: object, **kw: object):  # type: ignore[no-untyped-def]
        requests.extend(new_topics)
        return original(self, new_topics, *args, **kw)

    monkeypatch.setattr(KafkaAdminClient, "create_topics", spy)
    return requests


def _partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(topics)}
    finally:
        admin.close()


POLICY = TopicPolicy(
    partitions=2,
    partitions_by_topic={SPEND: 5},
    min_insync_replicas=1,
    configs={"*": {"compression.type": "zstd"}, SPEND: {"retention.ms": "604800000"}},
    dlq_retention_ms=14 * DAY_MS,
)


def test_topics_are_created_as_the_policy_shapes_them(
    empty_broker: str, sent: list[NewTopic]
) -> None:
    topics = [PLANNING, dlq(PLANNING), SPEND, dlq(SPEND)]
    created = ensure_topics(empty_broker, topics, kafka=KafkaOptions(topics=POLICY))

    assert created == topics
    assert _partitions(empty_broker, topics) == {
        PLANNING: 2,
        dlq(PLANNING): 1,
        SPEND: 5,
        dlq(SPEND): 1,
    }
    requests = {t.name: t for t in sent}
    assert {n: (t.num_partitions, t.replication_factor) for n, t in requests.items()} == {
        PLANNING: (2, 1),
        dlq(PLANNING): (1, 1),
        SPEND: (5, 1),
        dlq(SPEND): (1, 1),
    }
    base = {"min.insync.replicas": "1", "compression.type": "zstd"}
    assert requests[PLANNING].topic_configs == {
        **base,
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    assert requests[dlq(PLANNING)].topic_configs == {**base, "retention.ms": "1209600000"}
    assert requests[SPEND].topic_configs == {**base, "retention.ms": "604800000"}
    assert requests[dlq(SPEND)].topic_configs == {**base, "retention.ms": "1209600000"}


def test_existing_topics_are_left_alone_and_differences_warned(
    empty_broker: str, sent: list[NewTopic]
) -> None:
    ensure_topics(empty_broker, [SALES], partitions=2)
    with capture_logs() as logs:
        created = ensure_topics(empty_broker, [SALES, SPEND], partitions=4)

    assert created == [SPEND]
    assert [t.name for t in sent] == [SALES, SPEND]  # SALES was not requested again
    assert _partitions(empty_broker, [SALES, SPEND]) == {SALES: 2, SPEND: 4}
    differs = [e for e in logs if e["event"] == "topic_differs"]
    assert differs == [
        {
            "event": "topic_differs",
            "log_level": "warning",
            "topic": SALES,
            "setting": "partitions",
            "wanted": "4",
            "found": "2",
        }
    ]


def test_differences_are_what_the_broker_reports() -> None:
    spec = POLICY.spec(PLANNING)
    assert topic_admin.topic_differences(
        spec,
        partitions=2,
        replication_factor=3,
        configs={"retention.ms": "604800000", "cleanup.policy": "delete"},
    ) == [("replication_factor", "1", "3"), ("retention.ms", "-1", "604800000")]
    # nothing reported (Tansu's DescribeConfigs), nothing to warn about
    assert (
        topic_admin.topic_differences(spec, partitions=None, replication_factor=None, configs={})
        == []
    )


def test_service_producer_guarantees_reach_the_client() -> None:
    security = KafkaSecurity(
        protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", username="u", password="p"
    )
    broker = make_broker(
        "kafka:9092", client_id="c", kafka=KafkaOptions(security=security, idempotence=True)
    )
    kwargs = broker._connection_kwargs
    assert (kwargs["acks"], kwargs["enable_idempotence"]) == ("all", True)
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"]) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
    )
    consumer = broker.config.broker_config.builder.keywords
    assert (consumer["sasl_plain_username"], consumer["sasl_plain_password"]) == ("u", "p")


def test_the_test_broker_refuses_idempotent_producers(kafka_bootstrap: str) -> None:
    """Why the embedded broker runs with MRM_KAFKA_IDEMPOTENCE=false: Tansu answers
    InitProducerId with an error. If this starts failing, Tansu supports idempotence."""
    from aiokafka.errors import KafkaError

    async def start() -> None:
        broker = make_broker(
            kafka_bootstrap, client_id="idem", kafka=KafkaOptions(idempotence=True)
        )
        try:
            await broker.start()
        finally:
            await broker.stop()

    with pytest.raises(KafkaError):
        asyncio.run(start())
