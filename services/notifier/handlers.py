"""Subscribers of the notifier: planning events fill the directory, causes become notifications.

Each message is applied in one unit of work — inbox claim, directory or notification rows —
and committed before the consumer commits its offset; a redelivered event finds its claim and
does nothing, so every cause yields at most one notification per recipient and channel (the
unique key on the delivery log backs this). After a commit the delivery worker and the outbox
relay are woken.

All three topics are consumed by one subscriber, so within one process a cause and the
planning event it waits for are never applied concurrently; across processes, causes parked
while their stage, campaign or plan was unknown are also released by
:meth:`NotifierHandlers.release_ready`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from services.notifier import domain, store
from services.notifier.metrics import NotifierMetrics
from shared import topics
from shared.consumer import Consumed, EventConsumer
from shared.events import Envelope, EventData, event_type_of
from shared.events.planning import (
    BudgetLineRemoved,
    BudgetLineSet,
    CampaignChangeRequested,
    CampaignState,
    PlanCreated,
    SalesUnitSet,
    StageScheduled,
)
from shared.sql import utcnow

log = structlog.get_logger(__name__)

Apply = Callable[[store.UnitOfWork, Consumed, dt.datetime], list[domain.NotificationDraft]]


class NotifierHandlers:
    """The notifier's subscribers, bound to its store and wake-up callback."""

    def __init__(
        self,
        *,
        engine: Engine,
        metrics: NotifierMetrics,
        after_commit: Callable[[], None],
        clock: Callable[[], dt.datetime] = utcnow,
        parked_max_age: dt.timedelta = dt.timedelta(days=7),
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.after_commit = after_commit
        self.clock = clock
        self.parked_max_age = parked_max_age
        self._routes: dict[str, Apply] = {
            "plan.created": self.on_plan_created,
            "campaign.planned": self.on_campaign_state,
            "campaign.updated": self.on_campaign_state,
            "stage.scheduled": self.on_stage_scheduled,
            "sales_unit.set": self.on_sales_unit_set,
            "budget_line.set": self.on_budget_line_set,
            "budget_line.removed": self.on_budget_line_removed,
            **{event_type: self.on_cause for event_type in domain.CAUSE_TYPES},
            "campaign.change_requested": self.on_change_requested,
        }

    def register(self, consumer: EventConsumer) -> None:
        """Subscribe to the planning, execution and KPI topics."""
        consumer.on(topics.PLANNING, topics.EXECUTION, topics.KPI, handler=self.on_event)

    async def on_event(self, consumed: Consumed) -> None:
        """Apply one event once; events the notifier has no use for (kpi.snapshot …) are skipped."""
        apply = self._routes.get(consumed.envelope.event_type)
        if apply is None:
            return
        recorded = await asyncio.to_thread(self._apply_once, consumed, apply)
        if recorded is None:
            log.debug("duplicate_ignored")
            return
        self._count(recorded)
        self.after_commit()

    def _apply_once(
        self, consumed: Consumed, apply: Apply
    ) -> list[domain.NotificationDraft] | None:
        with store.UnitOfWork(self.engine) as uow:
            if not uow.claim(event_id=consumed.envelope.event_id):
                return None
            recorded = apply(uow, consumed, self.clock())
            uow.commit()
        return recorded

    # --- one function per event, run inside the message's unit of work -----------------------

    def on_plan_created(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Remember the plan and its owner; notify causes that waited for it."""
        data = consumed.data
        assert isinstance(data, PlanCreated)
        store.upsert_plan(session=uow.session, plan=domain.plan_info(data), now=now)
        return self._release(uow, domain.WaitKey(kind="plan", identifier=data.plan_id), now)

    def on_campaign_state(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Remember the campaign's name, plan and owner; notify causes that waited for it."""
        data = consumed.data
        assert isinstance(data, CampaignState)
        store.upsert_campaign(session=uow.session, campaign=domain.campaign_info(data), now=now)
        return self._release(uow, domain.WaitKey(kind="campaign", identifier=data.campaign_id), now)

    def on_stage_scheduled(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Remember the stage's assignee; notify causes that waited for it."""
        data = consumed.data
        assert isinstance(data, StageScheduled)
        store.upsert_stage(session=uow.session, stage=domain.stage_info(data), now=now)
        return self._release(uow, domain.WaitKey(kind="stage", identifier=data.stage_id), now)

    def on_sales_unit_set(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Remember the sales unit, its parent and owner; notify causes that waited for it."""
        data = consumed.data
        assert isinstance(data, SalesUnitSet)
        store.upsert_unit(session=uow.session, unit=domain.unit_info(data), now=now)
        return self._release(uow, domain.WaitKey(kind="unit", identifier=data.unit_id), now)

    def on_budget_line_set(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Remember the budget line's name (no cause waits for a line: it is told by id)."""
        data = consumed.data
        assert isinstance(data, BudgetLineSet)
        store.upsert_line(session=uow.session, line=domain.line_info(data), now=now)
        return []

    def on_budget_line_removed(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Forget a removed budget line."""
        data = consumed.data
        assert isinstance(data, BudgetLineRemoved)
        store.remove_line(session=uow.session, line_id=data.line_id)
        return []

    def on_change_requested(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Remember the requester (to hear the decision) and notify the plan's owner."""
        data = consumed.data
        assert isinstance(data, CampaignChangeRequested)
        store.add_change_request(
            session=uow.session, request=domain.change_request_info(data), now=now
        )
        return self._notify(uow, consumed.envelope, data, now)

    def on_cause(
        self, uow: store.UnitOfWork, consumed: Consumed, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        """Record the notifications of a cause (or park it until its owner is known)."""
        return self._notify(uow, consumed.envelope, consumed.data, now)

    # --- shared steps ---------------------------------------------------------------------------

    def _notify(
        self, uow: store.UnitOfWork, envelope: Envelope, data: EventData, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        cause = domain.Cause(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            occurred_at=envelope.occurred_at,
            data=data,
        )
        directory = store.load_directory(session=uow.session, lookups=domain.lookups_for(data))
        audience = domain.audience_of(cause, directory=directory)
        if audience.waits_for is not None:
            store.park_cause(
                session=uow.session, envelope=envelope, waits_for=audience.waits_for, now=now
            )
            self.metrics.parked.inc()
            log.info(
                "cause_parked",
                waits_for=f"{audience.waits_for.kind}:{audience.waits_for.identifier}",
            )
            return []
        recipients = store.get_recipients(session=uow.session, recipient_ids=audience.recipients)
        drafts = domain.draft_notifications(
            cause,
            audience=audience.recipients,
            recipients=recipients,
            directory=directory,
            now=now,
        )
        return store.add_notifications(session=uow.session, drafts=drafts, now=now)

    def _release(
        self, uow: store.UnitOfWork, key: domain.WaitKey, now: dt.datetime
    ) -> list[domain.NotificationDraft]:
        recorded: list[domain.NotificationDraft] = []
        for envelope in store.take_parked(session=uow.session, waits_for=key):
            data = event_type_of(envelope.event_type).model_validate(envelope.data)
            recorded += self._notify(uow, envelope, data, now)
        return recorded

    async def release_ready(self) -> None:
        """Notify parked causes whose campaign or plan arrived meanwhile (multi-process safety)
        and drop those that waited longer than ``parked_max_age``."""
        recorded = await asyncio.to_thread(self._release_ready)
        if recorded:
            self._count(recorded)
            self.after_commit()
        await asyncio.to_thread(self._expire_parked)

    def _expire_parked(self) -> None:
        now = self.clock()
        with store.UnitOfWork(self.engine) as uow:
            expired = store.expire_parked(
                session=uow.session, parked_before=now - self.parked_max_age
            )
            waiting = store.count_parked(session=uow.session)
            uow.commit()
        for row in expired:
            self.metrics.parked_expired.inc()
            log.warning(
                "parked_cause_expired",
                cause_event_id=row.event_id,
                event_type=row.envelope.get("event_type"),
                waited_for=f"{row.waits_kind}:{row.waits_id}",
                parked_at=row.parked_at.isoformat(),
            )
        self.metrics.parked_waiting.set(waiting)

    def _release_ready(self) -> list[domain.NotificationDraft]:
        recorded: list[domain.NotificationDraft] = []
        with store.UnitOfWork(self.engine) as uow:
            keys = store.ready_wait_keys(session=uow.session)
        for key in keys:
            with store.UnitOfWork(self.engine) as uow:
                drafts = self._release(uow, key, self.clock())
                uow.commit()
            recorded += drafts
        return recorded

    def _count(self, recorded: list[domain.NotificationDraft]) -> None:
        for draft in recorded:
            self.metrics.notifications.labels(status=draft.status).inc()
