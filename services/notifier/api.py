"""HTTP routes of the notifier: recipients (channels, preferences) and the delivery log.

Access: admin, cmo and manager manage and read every recipient and the whole log; an executor
manages and reads only the recipient whose id is its own subject, a viewer only reads it; both
see only their own notifications (``recipient`` defaults to itself; asking for someone else is
a 403). Webhook URLs must name public addresses unless the notifier allows private ones.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator
from sqlalchemy import Engine

from services.notifier import domain, store
from services.notifier.senders import webhook_url_problem
from shared.auth import PLANNERS, READERS, WRITERS, Principal, require
from shared.events.envelope import Identifier, Name, Text
from shared.http import DomainError, NotFound
from shared.sql import utcnow

router = APIRouter(prefix="/api/v1", tags=["notifier"])

_EMAIL = re.compile(
    r"^[^@\s<>\"(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    return value


MAX_URL = 2000
"""The longest webhook URL the store keeps."""


def _storable_url(url: HttpUrl) -> HttpUrl:
    if len(str(url)) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    return url


EmailAddress = Annotated[Text, AfterValidator(_email)]
WebhookUrl = Annotated[HttpUrl, AfterValidator(_storable_url)]
RecipientId = Annotated[Identifier, Path(pattern=r"^[^\s/]+$")]
StatusFilter = Literal["pending", "delivered", "failed", "skipped"]


class RecipientIn(BaseModel):
    """A recipient's addresses, enabled channels and muted event types (replaces all)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: EmailAddress | None = None
    webhook_url: WebhookUrl | None = Field(
        default=None,
        description="http(s) URL for JSON POSTs; public addresses only unless the notifier "
        "allows private ones (MRM_NOTIFIER_WEBHOOK_ALLOW_PRIVATE).",
    )
    channels: list[domain.Channel] = Field(default_factory=list, max_length=2)
    muted_event_types: list[domain.CauseType] = Field(default_factory=list, max_length=50)

    @field_validator("channels")
    @classmethod
    def _distinct_channels(cls, channels: list[str]) -> list[str]:
        if len(set(channels)) != len(channels):
            raise ValueError("each channel may be listed once")
        return channels


class RecipientOut(BaseModel):
    """A stored recipient."""

    id: str
    name: str | None
    email: str | None
    webhook_url: str | None
    channels: list[str]
    muted_event_types: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


class NotificationOut(BaseModel):
    """One row of the delivery log."""

    id: str
    recipient: str
    channel: str = Field(description='"email", "webhook", or "none" for a skipped notification.')
    subject: str
    body: str
    status: StatusFilter
    attempts: int
    last_error: str | None = Field(description="The last delivery error, or why it was skipped.")
    cause_event_id: str
    cause_event_type: str
    campaign_id: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None


class NotificationList(BaseModel):
    """The delivery log, newest first."""

    items: list[NotificationOut]
    count: int


def get_engine(request: Request) -> Engine:
    """The service's database engine (built by the lifespan)."""
    engine: Engine = request.app.state.engine
    return engine


def _forbidden(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN, detail=[{"loc": ["header", "Authorization"], "msg": message}]
    )


def _ensure_self_or_planner(principal: Principal, recipient_id: str) -> None:
    if principal.role not in PLANNERS and principal.subject != recipient_id:
        raise _forbidden(
            f"role {principal.role!r} may only access its own recipient ({principal.subject!r})"
        )


def _out(record: store.RecipientRecord) -> RecipientOut:
    prefs = record.prefs
    return RecipientOut(
        id=prefs.recipient_id,
        name=prefs.name,
        email=prefs.email,
        webhook_url=prefs.webhook_url,
        channels=list(prefs.channels),
        muted_event_types=sorted(prefs.muted_event_types),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


@router.put("/recipients/{recipient_id}", response_model=RecipientOut)
def put_recipient(
    recipient_id: RecipientId,
    body: RecipientIn,
    response: Response,
    request: Request,
    principal: Principal = Depends(require(*WRITERS)),
    engine: Engine = Depends(get_engine),
) -> RecipientOut:
    """Create or replace a recipient (201 when created, 200 when replaced; viewers only read)."""
    _ensure_self_or_planner(principal, recipient_id)
    if body.webhook_url is not None:
        problem = webhook_url_problem(
            str(body.webhook_url), allow_private=request.app.state.webhook_allow_private
        )
        if problem is not None:
            raise DomainError(problem, field="webhook_url", status_code=422)
    if "email" in body.channels and body.email is None:
        raise DomainError("required when channels include 'email'", field="email", status_code=422)
    if "webhook" in body.channels and body.webhook_url is None:
        raise DomainError(
            "required when channels include 'webhook'", field="webhook_url", status_code=422
        )
    prefs = domain.RecipientPrefs(
        recipient_id=recipient_id,
        name=body.name,
        email=body.email,
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
        channels=tuple(body.channels),
        muted_event_types=frozenset(body.muted_event_types),
    )
    with store.UnitOfWork(engine) as uow:
        record, created = store.put_recipient(session=uow.session, prefs=prefs, now=utcnow())
        uow.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _out(record)


@router.get("/recipients/{recipient_id}", response_model=RecipientOut)
def get_recipient(
    recipient_id: RecipientId,
    principal: Principal = Depends(require(*READERS)),
    engine: Engine = Depends(get_engine),
) -> RecipientOut:
    """A recipient's channels and preferences."""
    _ensure_self_or_planner(principal, recipient_id)
    with store.UnitOfWork(engine) as uow:
        record = store.get_recipient(session=uow.session, recipient_id=recipient_id)
    if record is None:
        raise NotFound("recipient", recipient_id)
    return _out(record)


@router.get("/notifications", response_model=NotificationList)
def list_notifications(
    recipient: Annotated[Identifier | None, Query()] = None,
    status_: Annotated[StatusFilter | None, Query(alias="status")] = None,
    cause_event_id: Annotated[Identifier | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    principal: Principal = Depends(require(*READERS)),
    engine: Engine = Depends(get_engine),
) -> NotificationList:
    """The delivery log, newest first (executors and viewers see only their own)."""
    if principal.role not in PLANNERS:
        if recipient is not None and recipient != principal.subject:
            raise _forbidden(
                f"role {principal.role!r} may only list its own notifications "
                f"(recipient={principal.subject})"
            )
        recipient = principal.subject
    with store.UnitOfWork(engine) as uow:
        records = store.list_notifications(
            session=uow.session,
            recipient=recipient,
            status=status_,
            cause_event_id=cause_event_id,
            limit=limit,
        )
    items = [NotificationOut.model_validate(record, from_attributes=True) for record in records]
    return NotificationList(items=items, count=len(items))
