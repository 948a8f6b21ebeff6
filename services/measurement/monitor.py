"""KPI targets watched as data arrives: breach / recovery alerts, budget reallocation
proposals and periodic snapshots, by one replica at a time.

Replicas: every replica ingests a share of the partitions, so which campaigns changed is read
from ClickHouse, not from this process: each batch's campaigns go to the change log
(``alerts.record_changes``), and each job here (evaluate, reallocate, snapshot) reads the log
from its saved mark. Only the leader (``shared.leadership``: the replica its consumer group
assigns partition 0 of the monitor topic) runs the jobs, so each cause is acted on once. A
job's progress within a leadership term lives here, and its mark is saved once everything it
read is handled: a new leader goes on from the saved mark and at worst re-checks some
campaigns, which publishes no new alert or proposal (evaluation and the reallocation rules
compare with the stored state). Snapshots are the exception: those a leader published but had
not recorded in its mark when it died are published again, in the new leader's round.

Event ids derive from the cause (``domain.cause_event_id``), so the brief overlap of two
leaders a rebalance may leave, or a re-run after a crash, repeats an event id instead of
making a new alert, and consumers (the notifier: one e-mail per cause) drop the repeat:

* breach / recovery: campaign, target, transition, and the version of the state it leaves;
* reallocation proposal: plan, rule and donor (the episode's state key), and the version of
  that key's state;
* snapshot: campaign and the change-log bound of the round (its ``as_of``).

Alerts are published before their new state is saved: a crash in between re-publishes an
alert (with the same id) rather than losing it. The state lives in ClickHouse's
``alert_state`` table: a target's breach under its campaign, a plan's rule episodes
(``reallocation``: fired and holding keys) under ``plan:<plan_id>``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import structlog
from faststream.kafka import KafkaBroker

from services.measurement import discount_watch, domain, reallocation, warehouse
from services.measurement.warehouse import Warehouse, alerts
from services.measurement.warehouse import discounts as discount_tables
from services.measurement.warehouse import rules as rule_tables
from shared.events import EventData, new_envelope
from shared.events.kpi import BudgetReallocationProposed, KpiSnapshot
from shared.kafka import publish
from shared.leadership import Turns
from shared.metrics import ServiceMetrics

log = structlog.get_logger(__name__)
SOURCE = "measurement"


@dataclass
class _Feed:
    """One job's progress through the change log during one leadership term."""

    job: str
    upto_ms: int | None = None
    """The log is read up to here (None: not yet in this term; the saved mark comes first)."""
    saved_ms: int | None = None
    pending: set[str] = field(default_factory=set)
    """What the job read and has not handled yet (campaigns or plans)."""


class TargetMonitor:
    """Evaluates the targets of campaigns whose data changed and publishes ``mrm.kpi.v1``."""

    def __init__(
        self,
        *,
        warehouse: Warehouse,
        broker: KafkaBroker,
        metrics: ServiceMetrics,
        leadership: Turns,
        max_per_round: int = 50,
        evidence: Decimal = Decimal(0),
        fallback_rule: reallocation.PlanRule | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.max_per_round = max_per_round
        self.broker = broker
        self.metrics = metrics
        self.leadership = leadership
        self.evidence = evidence
        self.fallback_rule = fallback_rule
        """The rule of a plan measurement knows no rule of (the settings' rule)."""
        self._term: int | None = None
        self._feeds: dict[str, _Feed] = {}

    async def evaluate_changed(self) -> None:
        """Check the campaigns with targets whose data changed since the last round; at most
        ``max_per_round`` are evaluated, the rest wait for the next round, so a round never
        holds the warehouse's readers for long. A round costs a few queries, however many
        campaigns it checks: the change log, target lookups, one KPI query, one state read,
        one insert."""
        async with self.leadership.turn() as term:
            if term is None:
                return
            feed = self._feed("evaluate", term)
            await self._collect(feed, self._with_targets)
            batch = sorted(feed.pending)[: self.max_per_round]
            await self.evaluate_many(batch)
            feed.pending.difference_update(batch)
            await self._settle(feed)

    async def evaluate_many(self, campaign_ids: Sequence[str]) -> list[EventData]:
        """Evaluate the targets of several campaigns, those with enough evidence; publish and
        return the transitions, then save the states that changed."""
        if not campaign_ids:
            return []
        kpis_of = await self.warehouse.run(warehouse.campaigns_kpis, campaign_ids=campaign_ids)
        judged = [
            campaign_id
            for campaign_id, kpis in kpis_of.items()
            if domain.has_evidence(
                spend=kpis.get("spend"), budget=kpis.get("budget"), min_share=self.evidence
            )
        ]
        if not judged:
            return []
        targets = await self.warehouse.run(warehouse.targets_by_campaign, campaign_ids=judged)
        states_of = await self.warehouse.run(alerts.alert_states_of, subjects=judged)
        published: list[EventData] = []
        changed: dict[str, dict[str, bool]] = {}
        for campaign_id in judged:
            kpis, stored = kpis_of[campaign_id], states_of.get(campaign_id, {})
            states = {key: state.on for key, state in stored.items()}
            events, new_states = domain.evaluate_targets(
                campaign_id=campaign_id,
                plan_id=kpis.get("plan_id"),
                kpis=kpis,
                targets=targets.get(campaign_id, []),
                states=states,
            )
            for data in events:
                target_id = getattr(data, "target_id", "")
                since = stored[target_id].version if target_id in stored else 0
                await self._publish(
                    data,
                    event_id=domain.cause_event_id(campaign_id, target_id, data.event_type, since),
                )
                log.info(
                    "kpi_target_transition",
                    event_type=data.event_type,
                    campaign_id=campaign_id,
                    kpi=getattr(data, "kpi", None),
                )
            published += events
            changed[campaign_id] = {
                tid: b for tid, b in new_states.items() if states.get(tid, False) != b
            }
        await self.warehouse.write(
            alerts.save_alert_states_of, states=changed, now=dt.datetime.now(dt.UTC)
        )
        return published

    async def reallocate_touched(self) -> None:
        """Evaluate the reallocation rules of every plan with a campaign whose data changed
        since the last round, and of every plan with a condition waiting out its ``hold_s``
        (a plan whose check fails is retried next round)."""
        async with self.leadership.turn() as term:
            if term is None:
                return
            feed = self._feed("reallocate", term)
            await self._collect(feed, self._plans_of)
            waiting = await self.warehouse.run(rule_tables.plans_holding, prefix="hold:")
            for plan_id in sorted(feed.pending | set(waiting)):
                await self.reallocate(plan_id)
                feed.pending.discard(plan_id)
            await self._settle(feed)

    async def reallocate(self, plan_id: str) -> list[BudgetReallocationProposed]:
        """Evaluate one plan's reallocation rules; publish and return the new proposals, then
        save the episode states that changed."""
        found = await self.warehouse.run(rule_tables.plan_rules, plan_id=plan_id)
        plan_rules = found.rules
        if not found.known and self.fallback_rule is not None:
            plan_rules = [self.fallback_rule]
        if not any(rule.spec.enabled for rule in plan_rules):
            return []
        kpis = await self.warehouse.run(warehouse.plan_kpis, plan_id=plan_id)
        campaigns = [
            reallocation.CampaignStanding(
                campaign_id=row["campaign_id"],
                status=row.get("status"),
                kpis=row,
                spend=row.get("spend"),
                budget=row.get("budget"),
                currency=row.get("currency") or kpis.get("currency"),
                name=row.get("name"),
                line_id=found.line_of.get(row["campaign_id"]),
            )
            for row in kpis.get("campaigns", ())
        ]
        subject = f"plan:{plan_id}"
        stored = (await self.warehouse.run(alerts.alert_states_of, subjects=[subject])).get(
            subject, {}
        )
        now = dt.datetime.now(dt.UTC)
        outcome = reallocation.evaluate(
            plan_id=plan_id,
            campaigns=campaigns,
            rules=plan_rules,
            fired={key for key, state in stored.items() if state.on and key.startswith("fired:")},
            holding={
                key: state.version
                for key, state in stored.items()
                if state.on and key.startswith("hold:")
            },
            now_us=int(now.timestamp() * 1_000_000),
            parents=found.parents,
            line_names=found.line_names,
        )
        for proposal, key in outcome.proposals:
            since = stored[key].version if key in stored else 0
            await self._publish(
                proposal, event_id=domain.cause_event_id(plan_id, key, "proposed", since)
            )
            log.info(
                "budget_reallocation_proposed",
                plan_id=plan_id,
                rule_id=proposal.rule_id,
                mode=proposal.mode,
                from_campaign_id=proposal.from_campaign_id,
                to_campaign_id=proposal.to_campaign_id,
                to_line_id=proposal.to_line_id,
                amount=str(proposal.amount),
            )
        await self.warehouse.write(
            alerts.save_alert_states_of, states={subject: outcome.changes}, now=now
        )
        return [proposal for proposal, _ in outcome.proposals]

    async def watch_discounts(self) -> None:
        """Check the promo funds and maximum rates of every plan with a campaign whose data
        changed since the last round (``discount_watch``)."""
        async with self.leadership.turn() as term:
            if term is None:
                return
            feed = self._feed("discounts", term)
            await self._collect(feed, self._plans_of)
            for plan_id in sorted(feed.pending):
                await self.check_discounts(plan_id)
                feed.pending.discard(plan_id)
            await self._settle(feed)

    async def check_discounts(self, plan_id: str) -> list[EventData]:
        """Publish a plan's new threshold crossings and sales over their maximum rate, then
        save the alert states that changed; return the events."""
        limits = await self.warehouse.run(discount_tables.plan_limits, plan_id=plan_id)
        if not limits.limits:
            return []
        campaign_ids = sorted(limits.line_of)
        used = await self.warehouse.run(discount_tables.discounts_used, campaign_ids=campaign_ids)
        sales = await self.warehouse.run(
            discount_tables.discounted_sales, campaign_ids=campaign_ids
        )
        subject = discount_watch.subject(plan_id)
        stored = (await self.warehouse.run(alerts.alert_states_of, subjects=[subject])).get(
            subject, {}
        )
        outgoing, changes = discount_watch.plan_events(
            limits, used=used, sales=sales, stored=stored
        )
        for data, event_id in outgoing:
            await self._publish(data, event_id=event_id)
            log.info("discount_alert", event_type=data.event_type, plan_id=plan_id)
        await self.warehouse.write(
            alerts.save_alert_states_of, states={subject: changes}, now=dt.datetime.now(dt.UTC)
        )
        return [data for data, _ in outgoing]

    async def snapshot_active(self) -> None:
        """Publish ``kpi.snapshot`` for every campaign that received data since the last one
        (their KPIs read ``max_per_round`` campaigns per query)."""
        async with self.leadership.turn() as term:
            if term is None:
                return
            feed = self._feed("snapshot", term)
            await self._collect(feed, _every)
            assert feed.upto_ms is not None  # read by _collect
            as_of = dt.datetime.fromtimestamp(feed.upto_ms / 1000, dt.UTC)
            campaigns = sorted(feed.pending)
            for first in range(0, len(campaigns), self.max_per_round):
                chunk = campaigns[first : first + self.max_per_round]
                kpis_of = await self.warehouse.run(warehouse.campaigns_kpis, campaign_ids=chunk)
                for campaign_id in chunk:
                    kpis = kpis_of[campaign_id]
                    snapshot = KpiSnapshot(
                        campaign_id=campaign_id,
                        plan_id=kpis.get("plan_id"),
                        as_of=as_of,
                        kpis=domain.snapshot_values(kpis),
                    )
                    await self._publish(
                        snapshot,
                        event_id=domain.cause_event_id(campaign_id, "snapshot", feed.upto_ms),
                    )
                    feed.pending.discard(campaign_id)
            await self._settle(feed)

    # --- the change log -------------------------------------------------------------------

    def _feed(self, job: str, term: int) -> _Feed:
        """The job's progress in this term (a new term starts from the saved marks)."""
        if term != self._term:
            self._term, self._feeds = term, {}
        return self._feeds.setdefault(job, _Feed(job))

    async def _collect(
        self, feed: _Feed, select: Callable[[list[str]], Awaitable[Iterable[str]]]
    ) -> None:
        """Add what ``select`` makes of the campaigns changed since the feed's last read."""
        bound = await self.warehouse.run(alerts.settled_bound)
        if feed.upto_ms is None:
            saved = await self.warehouse.run(alerts.read_mark, job=feed.job)
            # before a job's first mark: from the start of the change log
            feed.upto_ms = feed.saved_ms = saved if saved is not None else 0
        if bound <= feed.upto_ms:
            return
        changed = await self.warehouse.run(
            alerts.changed_between, after_ms=feed.upto_ms, until_ms=bound
        )
        if changed:
            feed.pending.update(await select(changed))
        feed.upto_ms = bound

    async def _settle(self, feed: _Feed) -> None:
        """Save the feed's mark once everything it read is handled."""
        if feed.pending or feed.upto_ms is None or feed.upto_ms == feed.saved_ms:
            return
        await self.warehouse.write(alerts.save_mark, job=feed.job, upto_ms=feed.upto_ms)
        feed.saved_ms = feed.upto_ms

    async def _with_targets(self, campaign_ids: list[str]) -> list[str]:
        targets = await self.warehouse.run(warehouse.targets_by_campaign, campaign_ids=campaign_ids)
        return [campaign_id for campaign_id in campaign_ids if campaign_id in targets]

    async def _plans_of(self, campaign_ids: list[str]) -> list[str]:
        return await self.warehouse.run(alerts.plans_of, campaign_ids=campaign_ids)

    async def _publish(self, data: EventData, *, event_id: uuid.UUID) -> None:
        await publish_cause(self.broker, data, event_id=event_id, metrics=self.metrics)


async def publish_cause(
    broker: KafkaBroker, data: EventData, *, event_id: uuid.UUID, metrics: ServiceMetrics
) -> None:
    """Publish what the monitor decided, under the event id derived from its cause."""
    await publish(
        broker,
        new_envelope(data, source=SOURCE, event_id=event_id),
        topic=data.topic,
        key=data.key(),
        metrics=metrics,
    )


async def _every(campaign_ids: list[str]) -> list[str]:
    return campaign_ids
