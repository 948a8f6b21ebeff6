"""Measurement's rule-based segment routes: definitions (create, read, replace with an
optimistic version check, remove), members as of a day (JSON, or CSV for the CRM) and sizes
over time. Membership is ``rule_segments``; storage ``warehouse.segment_defs``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.responses import JSONResponse, Response

from services.measurement import rfm, rule_segments, segment_rules
from services.measurement.api import Fx, Reader, Store, respond
from services.measurement.rule_segments import Definition
from services.measurement.segment_schemas import (
    SegmentCreate,
    SegmentList,
    SegmentMembers,
    SegmentOut,
    SegmentReplace,
    SegmentSizes,
)
from services.measurement.segment_sizes import sizes_as_of
from services.measurement.warehouse import segment_defs
from shared.auth import PLANNERS, Principal, require
from shared.errors import DomainError, NotFound
from shared.events.envelope import Date, Identifier

router = APIRouter(prefix="/api/v1", tags=["segments"])
Writer = Annotated[Principal, Depends(require(*PLANNERS))]
MAX_SIZE_POINTS = 60
"""The most buckets one sizes request evaluates (each is a membership evaluation of its own:
~1-2.5 s for 100 k customers, ``rule_segments``)."""
SegmentPath = Annotated[
    Identifier,
    Path(description="A rule-based segment's id, or rfm:<segment> for a built-in RFM segment."),
]
AsOf = Annotated[
    Date | None,
    Query(
        description="Profiles published and sales made up to this UTC day's end (default: today)."
    ),
]


async def definition_or_404(store: Store, segment_id: str) -> Definition:
    """The segment's current definition; 404 if unknown or removed."""
    found = await rule_segments.find(store, segment_id=segment_id)
    if found is None:
        raise NotFound("segment", segment_id)
    return found


def _conflict(message: str, current: int | None, *, field: str = "version") -> DomainError:
    context = {"current_version": str(current)} if current is not None else None
    return DomainError(message, field=field, status_code=409, context=context)


async def _write(
    store: Store, *, segment_id: str, version: int, author: str, creating: bool, **fields: Any
) -> dict[str, Any]:
    won = await store.write(
        segment_defs.write, segment_id=segment_id, version=version, author=author, **fields
    )
    if not won:
        raise _conflict(
            f"segment {segment_id!r} was written concurrently as version {version}",
            version,
            field="segment_id" if creating else "version",
        )
    stored = await store.run(segment_defs.latest, segment_id=segment_id, version=version)
    assert stored is not None  # the write of this version stood
    return rule_segments.from_stored(stored).as_json()


@router.post(
    "/segments",
    response_model=SegmentOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The segment id is taken."}},
)
async def create_segment(body: SegmentCreate, store: Store, who: Writer) -> JSONResponse:
    """Define a rule-based segment (admin, cmo, manager). A rule naming an unknown field or
    operator, or a value of the wrong type, gets a 422 naming its path
    (e.g. `rule.conditions.1.op`)."""
    rule = segment_rules.check_rule(body.rule)
    segment_id = body.segment_id or f"seg-{uuid.uuid4().hex[:12]}"
    if segment_id in ("rfm", "effectiveness"):  # /segments/rfm, /segments/effectiveness
        raise DomainError("is reserved", field="segment_id", status_code=422)
    latest = await store.run(segment_defs.latest, segment_id=segment_id)
    if latest is not None and not latest.removed:
        raise DomainError(f"segment {segment_id!r} exists", field="segment_id", status_code=409)
    answer = await _write(
        store,
        segment_id=segment_id,
        version=(latest.version + 1) if latest else 1,
        author=who.subject,
        creating=True,
        name=body.name,
        description=body.description,
        rule=rule.as_json(),
        rfm_days=body.rfm_days,
    )
    response = respond(answer)
    response.status_code = status.HTTP_201_CREATED
    return response


@router.get("/segments", response_model=SegmentList)
async def list_segments(store: Store, _: Reader) -> JSONResponse:
    """Every rule-based segment's current definition, and the built-in RFM segments' ids."""
    found = await store.run(segment_defs.current)
    return respond(
        {
            "segments": [rule_segments.from_stored(d).as_json() for d in found],
            "rfm_segments": [f"{rule_segments.RFM_PREFIX}{s}" for s in rfm.SEGMENTS],
        }
    )


@router.get("/segments/{segment_id}", response_model=SegmentOut)
async def get_segment(segment_id: SegmentPath, store: Store, _: Reader) -> JSONResponse:
    """A segment's current definition (`rfm:<segment>`: a built-in RFM segment)."""
    return respond((await definition_or_404(store, segment_id)).as_json())


async def _current_version(store: Store, segment_id: str, expected: int | None) -> int:
    if segment_id.startswith(rule_segments.RFM_PREFIX):
        raise DomainError(
            "a built-in RFM segment cannot be changed",
            field="segment_id",
            status_code=409,
            location="path",
        )
    latest = await store.run(segment_defs.latest, segment_id=segment_id)
    if latest is None or latest.removed:
        raise NotFound("segment", segment_id)
    if expected is not None and latest.version != expected:
        raise _conflict(
            f"is {expected}, the segment is at version {latest.version}", latest.version
        )
    return latest.version


@router.put(
    "/segments/{segment_id}",
    response_model=SegmentOut,
    responses={409: {"description": "`version` is not the current one (ctx.current_version)."}},
)
async def replace_segment(
    segment_id: SegmentPath, body: SegmentReplace, store: Store, who: Writer
) -> JSONResponse:
    """Replace a segment's definition (admin, cmo, manager) if `version` is still the current
    one; else 409 naming `version`, with the current one in `ctx`."""
    rule = segment_rules.check_rule(body.rule)
    version = await _current_version(store, segment_id, body.version)
    return respond(
        await _write(
            store,
            segment_id=segment_id,
            version=version + 1,
            author=who.subject,
            creating=False,
            name=body.name,
            description=body.description,
            rule=rule.as_json(),
            rfm_days=body.rfm_days,
        )
    )


@router.delete("/segments/{segment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_segment(
    segment_id: SegmentPath,
    store: Store,
    who: Writer,
    version: Annotated[
        int | None, Query(ge=1, description="If given, remove only if still this version.")
    ] = None,
) -> Response:
    """Remove a segment (admin, cmo, manager): a tombstone version; its id may be defined
    again later."""
    current = await _current_version(store, segment_id, version)
    won = await store.write(
        segment_defs.write,
        segment_id=segment_id,
        version=current + 1,
        removed=True,
        author=who.subject,
    )
    if not won:
        raise _conflict(f"segment {segment_id!r} was changed concurrently", current + 1)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/segments/{segment_id}/customers",
    response_model=SegmentMembers,
    responses={200: {"content": {"text/csv": {}}}},
)
async def segment_customers(
    segment_id: SegmentPath,
    store: Store,
    fx: Fx,
    _: Reader,
    as_of: AsOf = None,
    output: Annotated[
        Literal["json", "csv"],
        Query(alias="format", description="json, or csv: a header row and a line per member."),
    ] = "json",
) -> Response:
    """The members of a segment as of a day, with the profile and RFM facts the rule was
    evaluated on; CSV for the CRM."""
    definition = await definition_or_404(store, segment_id)
    day = as_of or dt.datetime.now(dt.UTC).date()
    found = await rule_segments.membership(store, fx, definition=definition, as_of=day)
    if output == "csv":
        safe = segment_id.replace(":", "-")
        return Response(
            rule_segments.render_csv(found.members, currency=found.currency),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="segment-{safe}-{day}.csv"'},
        )
    return respond(
        {
            "segment_id": definition.segment_id,
            "name": definition.name,
            "version": definition.version,
            "as_of": day,
            "rfm_days": definition.rfm_days,
            "currency": found.currency,
            "size": len(found.members),
            "members": found.members,
        }
    )


@router.get("/segments/{segment_id}/sizes", response_model=SegmentSizes)
async def segment_sizes(
    segment_id: SegmentPath,
    store: Store,
    fx: Fx,
    _: Reader,
    start: Annotated[Date, Query(alias="from", description="The first day (UTC).")],
    end: Annotated[Date, Query(alias="to", description="The last day (UTC), inclusive.")],
    bucket: Annotated[
        Literal["day", "week", "month"], Query(description="UTC days, ISO weeks or months.")
    ] = "week",
) -> JSONResponse:
    """How many members the segment had as of each bucket's last day (the last bucket: as of
    `to`), each evaluated on the profiles and sales up to that day; the current definition."""
    if end < start:
        raise DomainError(
            "must not be before 'from'", field="to", status_code=422, location="query"
        )
    points = rule_segments.size_points(start=start, end=end, bucket=bucket)
    if len(points) > MAX_SIZE_POINTS:
        raise DomainError(
            f"at most {MAX_SIZE_POINTS} {bucket} buckets",
            field="to",
            status_code=422,
            location="query",
        )
    definition = await definition_or_404(store, segment_id)
    counts = await sizes_as_of(store, fx, definition=definition, days=[day for _, day in points])
    sizes = [
        {"start": first, "as_of": day, "size": size}
        for (first, day), size in zip(points, counts, strict=True)
    ]
    return respond(
        {"segment_id": segment_id, "bucket": bucket, "from": start, "to": end, "points": sizes}
    )
