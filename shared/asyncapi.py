"""The event contract as an AsyncAPI 3.0 document, generated from ``shared.events``.

Every topic of ``shared.topics`` is a channel (and its ``.dlq`` companion another); every
event type of ``shared.events.registry`` is a message whose payload is the envelope with the
event's ``data`` schema (pydantic's JSON Schema, the same one ``decode`` enforces). The
document is kept in the repository (``docs/asyncapi.json``, written by ``mrm asyncapi``) and a
test regenerates it, so it cannot drift from the models.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from shared import dlq, topics
from shared.events.envelope import Envelope, EventData
from shared.events.registry import EVENT_TYPES

DOCUMENT = Path("docs") / "asyncapi.json"
"""Where the document lives, relative to the repository root."""
SCHEMAS = "#/components/schemas/"

_TOPIC_DESCRIPTIONS = {
    topics.SPEND: "Ad spend per campaign and channel, published by the ad platforms.",
    topics.AD_METRICS: "Impressions and clicks per campaign and channel.",
    topics.LEADS: "Leads and their funnel stages, published by the CRM.",
    topics.SALES: "Sales (and their returns) attributed to campaigns.",
    topics.TASKS: "Work tasks of campaigns, published by the task tracker.",
    topics.CUSTOMERS: "Customer profiles (segments), published by the CRM.",
    topics.PLANNING: "Plans, campaigns, stages, budgets and their changes (planning service). "
    "Kept for ever: the other services rebuild their projections from it.",
    topics.EXECUTION: "Campaign execution: stages started and finished, tasks, spend approved.",
    topics.KPI: "KPI measurements, targets missed and alerts (measurement service).",
    topics.NOTIFICATIONS: "Notification delivery outcomes (notifier service).",
}


def _doc(model: type[Any]) -> str:
    return inspect.cleandoc(model.__doc__ or "").strip()


def _schemas() -> dict[str, Any]:
    """JSON Schemas of the envelope and every payload, their shared parts hoisted."""
    models: list[type[Any]] = [Envelope, *(EVENT_TYPES[name] for name in sorted(EVENT_TYPES))]
    _keys, top = models_json_schema(
        [(model, "validation") for model in models], ref_template=SCHEMAS + "{model}"
    )
    return dict(sorted(top.get("$defs", {}).items()))


def _headers() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "content-type": {"type": "string", "const": "application/json"},
            "traceparent": {
                "type": "string",
                "description": "W3C trace context of the publish span (when traced).",
                "examples": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
            },
            "tracestate": {"type": "string", "description": "W3C trace state (when traced)."},
        },
    }


def _message(name: str, model: type[EventData], schema_names: dict[str, str]) -> dict[str, Any]:
    doc = _doc(model)
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": doc.splitlines()[0] if doc else name,
        "contentType": "application/json",
        "headers": {"$ref": f"{SCHEMAS}MessageHeaders"},
        "payload": {
            "allOf": [
                {"$ref": f"{SCHEMAS}Envelope"},
                {
                    "type": "object",
                    "properties": {
                        "event_type": {"const": name},
                        "data": {"$ref": SCHEMAS + schema_names[model.__name__]},
                    },
                },
            ]
        },
    }
    if len(doc.splitlines()) > 1:
        message["description"] = doc
    if model.key_field:
        message["bindings"] = {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": f"the event's {model.key_field}",
                },
                "bindingVersion": "0.5.0",
            }
        }
    return message


def _dead_letter() -> dict[str, Any]:
    headers = {
        dlq.ERROR_HEADER: "a readable reason naming the offending field",
        dlq.ORIGINAL_TOPIC_HEADER: "the topic the message was read from",
        dlq.ORIGINAL_PARTITION_HEADER: "its partition",
        dlq.ORIGINAL_OFFSET_HEADER: "its offset",
        dlq.CONSUMER_GROUP_HEADER: "the consumer group that rejected it",
        dlq.ORIGINAL_SIZE_HEADER: "the original size in bytes, when the body was cut",
        "traceparent": "W3C trace context of the dead-letter publish span, a child of the "
        "consumer span that gave the message up (when traced)",
        "tracestate": "W3C trace state (when traced)",
    }
    return {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "A message a consumer could not accept, with its original key and bytes.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {
                name: {"type": "string", "description": text} for name, text in headers.items()
            },
            "required": [dlq.ERROR_HEADER, dlq.ORIGINAL_TOPIC_HEADER],
        },
        "payload": {"description": "The original message's bytes (a preview when too large)."},
    }


def _channel_id(topic: str) -> str:
    return topic.removeprefix("mrm.").replace(".", "-")


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic, event type and payload schema."""
    schemas = _schemas()
    names = {name: name for name in schemas}
    schemas["MessageHeaders"] = _headers()
    by_topic: dict[str, list[str]] = {topic: [] for topic in topics.ALL_TOPICS}
    for name in sorted(EVENT_TYPES):
        by_topic[EVENT_TYPES[name].topic].append(name)
    messages = {name: _message(name, EVENT_TYPES[name], names) for name in sorted(EVENT_TYPES)}
    messages["dead-letter"] = _dead_letter()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in topics.ALL_TOPICS:
        channel = _channel_id(topic)
        channels[channel] = {
            "address": topic,
            "title": topic,
            "description": _TOPIC_DESCRIPTIONS[topic],
            "messages": {
                name: {"$ref": f"#/components/messages/{name}"} for name in by_topic[topic]
            },
        }
        channels[f"{channel}-dlq"] = {
            "address": topics.dlq(topic),
            "title": topics.dlq(topic),
            "description": f"Dead letters of {topic}.",
            "messages": {"dead-letter": {"$ref": "#/components/messages/dead-letter"}},
        }
        for action in ("send", "receive"):
            operations[f"{action}-{channel}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [
                    {"$ref": f"#/channels/{channel}/messages/{name}"} for name in by_topic[topic]
                ],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "MRM platform events",
            "version": "1",
            "description": (
                "Every message on every topic is a UTF-8 JSON envelope (SPEC §3) whose "
                "`data` is the payload of its `event_type`. Consumers are idempotent on "
                "`event_id`; a message they cannot accept goes to `<topic>.dlq`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "The platform's Kafka (MRM_KAFKA_BOOTSTRAP).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    """The document as the repository keeps it (stable JSON, two-space indent)."""
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"
