"""docs/asyncapi.json matches the event models: regenerated here, any difference fails."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mrm.cli import main
from shared import topics
from shared.asyncapi import DOCUMENT, build_document, render
from shared.events.planning import PlanCreated
from shared.events.registry import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[3]
KEPT = ROOT / DOCUMENT


def test_the_kept_document_is_the_generated_one() -> None:
    assert KEPT.read_text() == render(), "docs/asyncapi.json is out of date: run `mrm asyncapi`"


def test_every_topic_and_event_type_is_in_the_document() -> None:
    document = build_document()
    addresses = {channel["address"]: channel for channel in document["channels"].values()}
    assert set(addresses) == set(topics.all_topics_with_dlq())
    for name, model in EVENT_TYPES.items():
        channel = addresses[model.topic]
        assert channel["messages"][name] == {"$ref": f"#/components/messages/{name}"}
    in_channels = {name for topic in topics.ALL_TOPICS for name in addresses[topic]["messages"]}
    assert in_channels == set(EVENT_TYPES)
    assert addresses["mrm.spend.v1.dlq"]["messages"] == {
        "dead-letter": {"$ref": "#/components/messages/dead-letter"}
    }


def test_a_message_is_the_envelope_with_its_payload_schema() -> None:
    document = build_document()
    message = document["components"]["messages"]["plan.created"]
    envelope, specific = message["payload"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/Envelope"}
    assert specific["properties"]["event_type"] == {"const": "plan.created"}
    assert specific["properties"]["data"] == {"$ref": "#/components/schemas/PlanCreated"}
    schema = document["components"]["schemas"]["PlanCreated"]
    assert set(schema["properties"]) == set(PlanCreated.model_fields)
    assert set(schema["required"]) == {
        "plan_id",
        "name",
        "period_start",
        "period_end",
        "currency",
        "owner",
    }
    assert schema["additionalProperties"] is False
    assert message["bindings"]["kafka"]["key"]["description"] == "the event's plan_id"
    assert set(document["components"]["schemas"]["Envelope"]["required"]) == {
        "event_id",
        "event_type",
        "occurred_at",
        "source",
        "data",
    }


def test_mrm_asyncapi_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"
    assert main(["asyncapi", "--output", str(target), "--check"]) == 1  # missing
    assert main(["asyncapi", "--output", str(target)]) == 0
    assert json.loads(target.read_text()) == build_document()
    assert main(["asyncapi", "--output", str(target), "--check"]) == 0
    target.write_text(target.read_text().replace('"plan.created"', '"plan.made"', 1))
    assert main(["asyncapi", "--output", str(target), "--check"]) == 1


def test_the_document_is_valid_asyncapi() -> None:
    """The AsyncAPI Initiative's parser accepts it (npm package, fetched into .cache/tools)."""
    found = subprocess.run(
        [str(ROOT / "scripts" / "ensure-asyncapi-parser")],
        capture_output=True,
        text=True,
        check=False,
    )
    modules = found.stdout.strip()
    if not modules:
        pytest.skip(f"node or @asyncapi/parser unavailable: {found.stderr.strip() or 'no node'}")
    result = subprocess.run(
        ["node", str(ROOT / "scripts" / "validate-asyncapi.mjs"), modules, str(KEPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(topics.all_topics_with_dlq())} channels" in result.stdout
