"""Segment definitions in the warehouse on chDB: versions written at once from two clients (two
replicas sharing one ClickHouse) — exactly one write of each version stands, and every reader
sees that one; a tombstone hides the definition from the list."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import warehouse
from services.measurement.warehouse import segment_defs

pytestmark = pytest.mark.integration


def test_the_first_write_of_a_version_stands(
    warehouse_client: Client, chdb_url: str, unique_id: str
) -> None:
    other = warehouse.connect(chdb_url, database="mrm")
    sid = f"race-{unique_id}"
    try:
        for version in range(1, 6):

            def write(args: tuple[Client, str], version: int = version) -> bool:
                client, name = args
                return segment_defs.write(
                    client, segment_id=sid, version=version, name=name, rfm_days=365, author=name
                )

            with ThreadPoolExecutor(2) as pool:
                won = list(pool.map(write, [(warehouse_client, "a"), (other, "b")]))
            assert sorted(won) == [False, True]
            winner = "a" if won[0] else "b"
            for client in (warehouse_client, other):
                latest = segment_defs.latest(client, segment_id=sid)
                assert latest is not None
                assert (latest.version, latest.name) == (version, winner)
        mine = [d.segment_id for d in segment_defs.current(warehouse_client)]
        assert sid in mine
        assert segment_defs.write(
            warehouse_client, segment_id=sid, version=6, removed=True, author="a"
        )
        assert sid not in [d.segment_id for d in segment_defs.current(other)]
        latest = segment_defs.latest(other, segment_id=sid)
        assert latest is not None and latest.removed and latest.version == 6
    finally:
        other.close()
