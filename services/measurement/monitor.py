"""KPI targets watched as data arrives: breach / recovery alerts, budget reallocation
proposals and periodic snapshots.

Alerts are published before their new state is saved: a crash in between re-publishes an
alert rather than losing it. The state lives in ClickHouse's ``alert_state`` table: a target's
breach under its campaign, a plan's standing reallocation pairs under ``plan:<plan_id>``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

import structlog
from faststream.kafka import KafkaBroker

from services.measurement import analytics, domain
from services.measurement.analytics import Warehouse
from shared.events import EventData, new_envelope
from shared.events.kpi import BudgetReallocationProposed, KpiSnapshot
from shared.kafka import publish
from shared.metrics import ServiceMetrics

log = structlog.get_logger(__name__)
SOURCE = "measurement"
_PAIR = "reallocation:"


class TargetMonitor:
    """Evaluates the targets of campaigns whose data changed and publishes ``mrm.kpi.v1``."""

    def __init__(
        self,
        *,
        warehouse: Warehouse,
        broker: KafkaBroker,
        metrics: ServiceMetrics,
        changed: set[str],
        max_per_round: int = 50,
        evidence: Decimal = Decimal(0),
        reallocation: domain.ReallocationRule | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.max_per_round = max_per_round
        self.broker = broker
        self.metrics = metrics
        self.changed = changed
        self.evidence = evidence
        self.reallocation = reallocation
        self.active: set[str] = set()
        self.plans: set[str] = set()

    async def evaluate_changed(self) -> None:
        """Check the campaigns with new data since the last round that have KPI targets; at
        most ``max_per_round`` are evaluated, the rest wait for the next round, so a round never
        holds the warehouse's readers for long. A round costs a few queries, however many
        campaigns it checks: one target lookup, one KPI query, one state read, one insert."""
        campaigns = sorted(self.changed)
        self.changed.difference_update(campaigns)
        self.active.update(campaigns)
        try:
            targets = await self.warehouse.run(
                analytics.targets_by_campaign, campaign_ids=campaigns
            )
        except BaseException:
            self.changed.update(campaigns)
            raise
        watched = [campaign_id for campaign_id in campaigns if campaign_id in targets]
        self.changed.update(watched[self.max_per_round :])
        watched = watched[: self.max_per_round]
        try:
            await self.evaluate_many(watched, targets=targets)
        except BaseException:
            self.changed.update(watched)
            raise

    async def evaluate(self, campaign_id: str) -> list[EventData]:
        """Evaluate one campaign's targets; publish and return the transitions."""
        return await self.evaluate_many([campaign_id])

    async def evaluate_many(
        self,
        campaign_ids: Sequence[str],
        *,
        targets: Mapping[str, list[domain.Target]] | None = None,
    ) -> list[EventData]:
        """Evaluate the targets (looked up unless given) of several campaigns, those with
        enough evidence; publish and return the transitions, then save the states that
        changed."""
        if not campaign_ids:
            return []
        kpis_of = await self.warehouse.run(analytics.campaigns_kpis, campaign_ids=campaign_ids)
        self.plans.update(kpis["plan_id"] for kpis in kpis_of.values() if kpis.get("plan_id"))
        judged = [
            campaign_id
            for campaign_id, kpis in kpis_of.items()
            if domain.has_evidence(
                spend=kpis.get("spend"), budget=kpis.get("budget"), min_share=self.evidence
            )
        ]
        if not judged:
            return []
        if targets is None:
            targets = await self.warehouse.run(analytics.targets_by_campaign, campaign_ids=judged)
        states_of = await self.warehouse.run(analytics.alert_states_of, subjects=judged)
        published: list[EventData] = []
        changed: dict[str, dict[str, bool]] = {}
        for campaign_id in judged:
            kpis, states = kpis_of[campaign_id], states_of.get(campaign_id, {})
            events, new_states = domain.evaluate_targets(
                campaign_id=campaign_id,
                plan_id=kpis.get("plan_id"),
                kpis=kpis,
                targets=targets.get(campaign_id, []),
                states=states,
            )
            for data in events:
                await self._publish(data)
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
            analytics.save_alert_states_of, states=changed, now=dt.datetime.now(dt.UTC)
        )
        return published

    async def reallocate_touched(self) -> None:
        """Apply the reallocation rule to every plan whose campaigns were evaluated since the
        last round (a plan whose check fails is retried next round)."""
        plans = sorted(self.plans)
        self.plans.difference_update(plans)
        for position, plan_id in enumerate(plans):
            try:
                await self.reallocate(plan_id)
            except BaseException:
                self.plans.update(plans[position:])
                raise

    async def reallocate(self, plan_id: str) -> list[BudgetReallocationProposed]:
        """Apply the reallocation rule to one plan; publish and return the new proposals."""
        if self.reallocation is None:
            return []
        kpis = await self.warehouse.run(analytics.plan_kpis, plan_id=plan_id)
        campaigns = [
            domain.CampaignStanding(
                campaign_id=row["campaign_id"],
                status=row.get("status"),
                ckpi=row.get("ckpi"),
                spend=row.get("spend"),
                budget=row.get("budget"),
                currency=row.get("currency") or kpis.get("currency"),
                name=row.get("name"),
            )
            for row in kpis.get("campaigns", ())
        ]
        subject = f"plan:{plan_id}"
        states = await self.warehouse.run(analytics.alert_states, campaign_id=subject)
        before = {_pair_of(key) for key, on in states.items() if on and key.startswith(_PAIR)}
        proposals, after = domain.propose_reallocations(
            plan_id=plan_id, campaigns=campaigns, standing=before, rule=self.reallocation
        )
        for proposal in proposals:
            await self._publish(proposal)
            log.info(
                "budget_reallocation_proposed",
                plan_id=plan_id,
                from_campaign_id=proposal.from_campaign_id,
                to_campaign_id=proposal.to_campaign_id,
                amount=str(proposal.amount),
            )
        await self.warehouse.write(
            analytics.save_alert_states,
            campaign_id=subject,
            states=_pair_states(before, after),
            now=dt.datetime.now(dt.UTC),
        )
        return proposals

    async def snapshot_active(self) -> None:
        """Publish ``kpi.snapshot`` for every campaign that received data since the last one
        (their KPIs read ``max_per_round`` campaigns per query)."""
        campaigns = sorted(self.active)
        self.active.difference_update(campaigns)
        now = dt.datetime.now(dt.UTC)
        for first in range(0, len(campaigns), self.max_per_round):
            chunk = campaigns[first : first + self.max_per_round]
            try:
                kpis_of = await self.warehouse.run(analytics.campaigns_kpis, campaign_ids=chunk)
            except BaseException:
                self.active.update(campaigns[first:])
                raise
            for campaign_id in chunk:
                kpis = kpis_of[campaign_id]
                await self._publish(
                    KpiSnapshot(
                        campaign_id=campaign_id,
                        plan_id=kpis.get("plan_id"),
                        as_of=now,
                        kpis=domain.snapshot_values(kpis),
                    )
                )

    async def _publish(self, data: EventData) -> None:
        await publish(
            self.broker,
            new_envelope(data, source=SOURCE),
            topic=data.topic,
            key=data.key(),
            metrics=self.metrics,
        )


def _pair_of(key: str) -> tuple[str, str]:
    donor, recipient = json.loads(key.removeprefix(_PAIR))
    return donor, recipient


def _pair_states(
    before: Iterable[tuple[str, str]], after: Iterable[tuple[str, str]]
) -> dict[str, bool]:
    """The alert-state rows that change: pairs formed (on) and pairs dissolved (off)."""
    before, after = set(before), set(after)
    return {_PAIR + json.dumps(list(pair)): pair in after for pair in sorted(before ^ after)}
