"""Property-based runs from each service's OpenAPI (schemathesis): no request gets a 5xx, every
response with a declared schema conforms to it, and a 4xx leaves every table of the service's
store as it was (no row, no outbox event).

Each service runs served by uvicorn on its own broker (so no other test's events reach its
consumers while rows are counted), on SQLite, or on the session's chDB for measurement. Every
operation is fuzzed with positive and negative data, once with generated path parameters and
once with the ids of objects that exist, so bodies are tried against real campaigns, stages and
recipients. Generation is derandomised: a CI run repeats the same requests.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from http_kit import Service, auth, build_app, own_broker, store_of, subject
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.events.planning import CampaignPlanned, PlanCreated, StageScheduled
from shared.publisher import EventPublisher

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies use `random`; nothing this test can act on
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]
__all__ = ["own_broker"]  # a fixture

READ_EXAMPLES = 3
WRITE_EXAMPLES = 12
"""Examples per operation, generation mode and choice of path parameters: reads are cheap to
get right; the runs look for trouble where requests change state."""


def wait_for(probe: Callable[[], bool], *, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``probe`` until it holds."""
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def publish_plan(bootstrap: str, *, plan_id: str, campaign_id: str, stage_id: str) -> None:
    """The planning events of one plan, campaign and stage, as planning publishes them."""
    with EventPublisher(bootstrap, source="planning") as publisher:
        publisher.publish(
            PlanCreated(
                plan_id=plan_id,
                name="Fuzz plan",
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2027, 12, 31),
                currency="EUR",
                owner=subject("manager"),
            )
        )
        publisher.publish(
            CampaignPlanned(
                campaign_id=campaign_id,
                plan_id=plan_id,
                name="Fuzz campaign",
                channel="search",
                owner=subject("executor"),
                budget="1000.00",
                currency="EUR",
                start_date=dt.date(2027, 3, 1),
                end_date=dt.date(2027, 5, 31),
                status="approved",
            )
        )
        publisher.publish(
            StageScheduled(
                stage_id=stage_id,
                campaign_id=campaign_id,
                name="Creatives",
                deadline=dt.datetime(2027, 3, 10, 17, tzinfo=dt.UTC),
                assignee=subject("executor"),
            )
        )


def seed(name: str, client: httpx.Client, *, bootstrap: str, unique_id: str) -> dict[str, str]:
    """Objects that exist in the service, as path parameters of its operations."""
    admin = auth("admin")
    if name == "planning":
        plan = client.post(
            "/api/v1/plans",
            json={"name": "Fuzz", "period_start": "2027-01-01", "period_end": "2027-12-31"},
            headers=admin,
        ).json()
        campaign = client.post(
            f"/api/v1/plans/{plan['plan_id']}/campaigns",
            json={
                "name": "Fuzz search",
                "channel": "search",
                "owner": subject("executor"),
                "budget": "1000",
                "start_date": "2027-03-01",
                "end_date": "2027-05-31",
            },
            headers=admin,
        ).json()
        return {"plan_id": plan["plan_id"], "campaign_id": campaign["campaign_id"]}
    if name == "notifier":
        recipient = subject("executor")
        response = client.put(
            f"/api/v1/recipients/{recipient}",
            json={"email": "bob@example.com", "channels": ["email"]},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        return {"recipient_id": recipient}
    ids = {
        "plan_id": f"fuzz-plan-{unique_id}",
        "campaign_id": f"fuzz-campaign-{unique_id}",
        "stage_id": f"fuzz-stage-{unique_id}",
    }
    publish_plan(bootstrap, **ids)
    probe = (
        f"/api/v1/stages/{ids['stage_id']}"
        if name == "execution"
        else f"/api/v1/kpis/campaigns/{ids['campaign_id']}"
    )
    wait_for(
        lambda: client.get(probe, headers=admin).status_code == 200,
        what=f"{name} to know the seeded campaign",
    )
    return {**ids, "channel": "search"}


def fuzz_operation(operation: Any, *, call: Callable[[Any], None], known: dict[str, str]) -> None:
    """Run ``call`` on cases of one operation: positive and negative data, generated and real
    path parameters."""
    path_names = {p.name for p in operation.path_parameters}
    fixed = {key: value for key, value in known.items() if key in path_names}
    strategies = []
    admin = auth("admin")  # the roles have tests of their own; here every request may pass
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(generation_mode=mode, headers=admin))
        if fixed and fixed.keys() == path_names:
            strategies.append(
                operation.as_strategy(generation_mode=mode, headers=admin, path_parameters=fixed)
            )

    @settings(
        max_examples=len(strategies)
        * (READ_EXAMPLES if operation.method.upper() == "GET" else WRITE_EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        print_blob=False,
    )
    @given(case=st.one_of(*strategies))
    def run(case: Any) -> None:
        call(case)

    run()


@pytest.mark.parametrize("name", ["planning", "execution", "measurement", "notifier"])
def test_openapi_fuzz_finds_no_5xx_and_4xx_write_nothing(
    name: str, own_broker: str, chdb_url: str, tmp_path, serve_app, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    app = build_app(
        name,
        bootstrap=own_broker,
        database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
        chdb_url=chdb_url,
        data_dir=tmp_path,
        **({"scheduler_interval_s": 3600} if name == "execution" else {}),
    )
    with serve_app(app) as running, httpx.Client(base_url=running.url, timeout=30) as client:
        engine, metadata = store_of(name, app)
        service = Service(name=name, app=app, client=None, engine=engine, metadata=metadata)
        known = seed(name, client, bootstrap=own_broker, unique_id=unique_id)
        schema = schemathesis.openapi.from_dict(app.openapi())
        before: dict[str, dict[str, int]] = {}
        seen: dict[str, set[int]] = {}

        def nothing_written_after_4xx(_ctx: Any, response: Any, case: Any) -> None:
            if 400 <= response.status_code < 500:
                after = service.rows()
                assert after == before["rows"], (
                    f"{case.operation.label} answered {response.status_code} but wrote rows: "
                    f"{before['rows']} → {after}"
                )

        def call(case: Any) -> None:
            before["rows"] = service.rows()
            response = case.call(base_url=running.url)
            seen.setdefault(case.operation.label, set()).add(response.status_code)
            case.validate_response(
                response,
                checks=[not_a_server_error, response_schema_conformance, nothing_written_after_4xx],
            )

        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"an operation's schema does not load: {result}"
            operations.append(result.ok())
        assert len(operations) >= 4
        failures = []
        for operation in operations:
            try:
                fuzz_operation(operation, call=call, known=known)
            # collected, so that one run reports every failing operation (schemathesis raises
            # its failures as a BaseExceptionGroup)
            except (AssertionError, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label}: {exc!r}")
        assert not failures, "\n\n".join(failures)

    # the run reached past validation: some operations succeeded and some refused input
    statuses = set().union(*seen.values())
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses), seen
