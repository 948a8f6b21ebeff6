"""The demo's rule-based customer segments: defined over the measurement API before the
campaigns run, and their sizes and members' revenue shown when the run is over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SEGMENTS: tuple[dict[str, Any], ...] = (
    {
        "segment_id": "large-software",
        "name": "Large software customers",
        "description": "Software companies of size large or enterprise",
        "rule": {
            "conditions": [
                {"field": "industry", "op": "eq", "value": "software"},
                {"field": "size", "op": "in", "value": ["large", "enterprise"]},
            ]
        },
    },
    {
        "segment_id": "champions-emea",
        "name": "Champions in EMEA",
        "description": "EMEA customers who bought recently, often and the most",
        "rule": {
            "conditions": [
                {"field": "region", "op": "eq", "value": "EMEA"},
                {"field": "rfm_segment", "op": "in", "value": ["champions", "loyal"]},
            ]
        },
        "rfm_days": 90,
    },
    {
        "segment_id": "lapsing-big-spenders",
        "name": "Lapsing big spenders",
        "description": "High spend, no recent order: a win-back audience",
        "rule": {
            "conditions": [
                {"field": "monetary_score", "op": "gte", "value": 4},
                {
                    "any": [
                        {"field": "recency_score", "op": "lte", "value": 2},
                        {"field": "rfm_segment", "op": "eq", "value": "at_risk"},
                    ]
                },
            ]
        },
        "rfm_days": 365,
    },
)
"""Segments over the demo's profiles (industry, size, region) and its sales' RFM."""

Get = Callable[[str, str], Any]
Send = Callable[[str, str, str, object], Any]


def define(*, get: Get, send: Send) -> list[str]:
    """Define each demo segment that is not defined yet; one line per segment."""
    lines = []
    for segment in SEGMENTS:
        path = f"/api/v1/segments/{segment['segment_id']}"
        if get("measurement", path):
            lines.append(f"segment {segment['segment_id']} is already defined")
            continue
        send("POST", "measurement", "/api/v1/segments", segment)
        lines.append(f'segment {segment["segment_id"]}: "{segment["name"]}"')
    return lines


def summary(*, get: Get, measurement_url: str) -> list[str]:
    """Each demo segment's size today and where to see its members and KPIs."""
    lines = []
    for segment in SEGMENTS:
        sid = segment["segment_id"]
        kpis = get("measurement", f"/api/v1/kpis/segments/{sid}")
        size = kpis.get("members", "–") if isinstance(kpis, dict) else "–"
        revenue = kpis.get("revenue", "–") if isinstance(kpis, dict) else "–"
        lines.append(
            f"  {segment['name']:<26} {size} members, revenue {revenue}: "
            f"{measurement_url}/api/v1/segments/{sid}/customers?format=csv"
        )
    return lines
