"""Loss and double counting across a killed consumer: the measurement service is SIGKILLed in the
middle of a stream and restarted; every event is counted exactly once.

This proves the delivery semantics end to end: offsets are committed only after rows are in
ClickHouse (nothing lost), re-delivered batches collapse on event_id (nothing double-counted),
and a new consumer group starts from the earliest offset (events published before the service
ever ran are seen)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from mrm.supervisor import spawn_service
from shared.embedded import free_port
from shared.events.ingest import SpendRecorded
from shared.events.planning import CampaignPlanned
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration
TOKEN = "restart-viewer"


def start_measurement(*, bootstrap: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        "MRM_KAFKA_BOOTSTRAP": bootstrap,
        "MRM_KAFKA_IDEMPOTENCE": "false",  # Tansu refuses idempotent producers
        "MRM_DATA_DIR": str(data_dir),
        "MRM_MEASUREMENT_PORT": str(port),
        "MRM_TOKENS": json.dumps({TOKEN: {"subject": "ops", "role": "viewer"}}),
        "MRM_MEASUREMENT_BATCH_MAX_RECORDS": "500",
    }
    return spawn_service(
        "measurement", env=env, log_path=data_dir / "measurement.log", inherit_mrm=False
    )


def spend_of(client: httpx.Client, campaign_id: str) -> Decimal | None:
    try:
        response = client.get(f"/api/v1/kpis/campaigns/{campaign_id}")
    except httpx.HTTPError:
        return None
    return Decimal(response.json()["spend"]) if response.status_code == 200 else None


def test_killed_and_restarted_consumer_loses_and_doubles_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    campaign_id = f"restart-{uuid.uuid4()}"
    port = free_port()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    events = EventPublisher(kafka_bootstrap, source="test", batch_size=65536)
    events.publish(
        CampaignPlanned(
            campaign_id=campaign_id,
            plan_id=f"p-{campaign_id}",
            name="Restart",
            channel="search",
            owner="ann",
            budget=Decimal("100000"),
            currency="USD",
            start_date="2027-01-01",
            end_date="2027-12-31",  # type: ignore[arg-type]
        )
    )
    total = 0

    def publish(count: int) -> None:
        nonlocal total
        for _ in range(count):
            events.publish(
                SpendRecorded(
                    campaign_id=campaign_id,
                    channel="search",
                    amount=Decimal("1.25"),
                    currency="USD",
                )
            )
        events.flush()
        total += count

    publish(20000)  # before the service ever ran: a new group starts from the earliest offset
    service = start_measurement(bootstrap=kafka_bootstrap, data_dir=tmp_path, port=port)
    try:
        deadline = time.monotonic() + 90
        while not (seen := spend_of(client, campaign_id)):
            assert service.poll() is None, (tmp_path / "measurement.log").read_text()
            assert time.monotonic() < deadline, "the service never counted anything"
            time.sleep(0.05)
        service.send_signal(signal.SIGKILL)  # mid-stream: no graceful shutdown, no final commit
        service.wait(timeout=30)
        publish(6000)  # while it is down

        service = start_measurement(bootstrap=kafka_bootstrap, data_dir=tmp_path, port=port)
        expected = Decimal("1.25") * total
        deadline = time.monotonic() + 120
        while spend_of(client, campaign_id) != expected:
            assert service.poll() is None, (tmp_path / "measurement.log").read_text()
            assert time.monotonic() < deadline, f"{spend_of(client, campaign_id)} != {expected}"
            time.sleep(0.2)
        time.sleep(2)  # anything re-delivered late would show up as a larger figure now
        assert spend_of(client, campaign_id) == expected == Decimal("32500.00")
        # the kill really was mid-stream: the first run had counted only part of the backlog
        assert seen < Decimal("25000.00"), seen
    finally:
        events.close()
        client.close()
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=30)
