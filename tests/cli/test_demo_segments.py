"""The demo's segments are valid definitions, and defining them twice posts each once."""

from __future__ import annotations

from typing import Any

from mrm import demo_segments
from services.measurement import segment_rules
from services.measurement.segment_schemas import SegmentCreate


def test_demo_segments_are_valid_definitions() -> None:
    for segment in demo_segments.SEGMENTS:
        body = SegmentCreate.model_validate(segment)
        assert segment_rules.check_rule(body.rule).as_json() == segment["rule"]


def test_defining_twice_posts_each_segment_once() -> None:
    defined: dict[str, Any] = {}

    def get(service: str, path: str) -> Any:
        assert service == "measurement"
        return defined.get(path.rsplit("/", 1)[-1], {})

    def send(method: str, service: str, path: str, body: Any) -> Any:
        assert (method, service, path) == ("POST", "measurement", "/api/v1/segments")
        defined[body["segment_id"]] = body
        return body

    first = demo_segments.define(get=get, send=send)
    assert first[1] == 'segment champions-emea: "Champions in EMEA"'
    again = demo_segments.define(get=get, send=send)
    assert again == [
        f"segment {s['segment_id']} is already defined" for s in demo_segments.SEGMENTS
    ]
    assert sorted(defined) == ["champions-emea", "lapsing-big-spenders", "large-software"]
