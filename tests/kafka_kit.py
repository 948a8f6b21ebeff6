"""Kafka helpers the tests share (importable as ``kafka_kit``: pytest puts ``tests/`` on the
path for its conftest)."""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata


def start_group_at_end(bootstrap: str, group_id: str, topics: Iterable[str]) -> None:
    """Commit ``group_id``'s offsets at the current end of ``topics``: the group then reads
    only what is published next, not what other tests left on the shared topics (a new group
    starts from the earliest offset), as replicas added to a running service do.

    The embedded broker may report the start of a partition's last batch + 1 as its end, so the
    end is found by reading on from there to the last record."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    try:
        partitions = [
            TopicPartition(topic, number)
            for topic in dict.fromkeys(topics)
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, ends[partition])
        while batch := consumer.poll(timeout_ms=300):
            for partition, records in batch.items():
                ends[partition] = max(ends[partition], records[-1].offset + 1)
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in partitions})
    finally:
        consumer.close()
