"""The campaign model put to work: peers read from the warehouse and converted to one currency
(for the model routes), and every campaign's model at its approval, published once as
``campaign.modelled`` so planning keeps what was expected next to what was planned.

The approval models are made by the replica that leads (``shared.leadership``), as the target
monitor's jobs are: each round models the approved or active campaigns not modelled yet, a few
at a time, publishes each (event id derived from the campaign, so two replicas or a re-run
repeat an id instead of a model), writes its figures to ``campaign_models`` (``warehouse.modelled``,
what Grafana's "Modelled vs actual" panel reads) and then records it in ``alert_state`` under
``models``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from faststream.kafka import KafkaBroker

from services.measurement import domain, modelling
from services.measurement.monitor import publish_cause
from services.measurement.warehouse import Warehouse, alerts, modelled
from services.measurement.warehouse import peers as peer_tables
from shared.events.kpi import CampaignModelled, ModelBand
from shared.leadership import Turns
from shared.metrics import ServiceMetrics
from shared.money import CurrencyNotConvertible, FxRates

log = structlog.get_logger(__name__)
SUBJECT = "models"
"""The ``alert_state`` subject under which each modelled campaign is recorded (key: its id)."""


def as_of_for(start: dt.date, now: dt.datetime | None = None) -> dt.datetime:
    """What a model may see: what happened before the campaign starts (before now, if it starts
    later)."""
    start_at = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    return min(start_at, now or dt.datetime.now(dt.UTC))


def in_currency(
    found: list[tuple[modelling.Peer, str | None]], currency: str, fx: FxRates
) -> tuple[list[modelling.Peer], list[str]]:
    """The peers with their amounts in ``currency``; those without a rate are left out (and
    the notes say which currencies)."""
    peers, missing = [], set()
    for peer, source in found:
        if source is None or source == currency:
            peers.append(peer)
            continue
        try:
            rate = fx.convert(Decimal(1), source=source, target=currency)
        except CurrencyNotConvertible:
            missing.add(source)
            continue
        results = {
            k: v * rate if k in modelling.MONEY_VOLUMES else v for k, v in peer.results.items()
        }
        peers.append(
            modelling.Peer(**{**vars(peer), "spend": peer.spend * rate, "results": results})
        )
    notes = [f"campaigns in {code} left out: no FX rate to {currency}" for code in sorted(missing)]
    return peers, notes


async def model_query(
    warehouse: Warehouse,
    fx: FxRates,
    query: modelling.Query,
    *,
    as_of: dt.datetime,
    currency: str,
    min_peers: int = 3,
    exclude: str | None = None,
) -> modelling.Model:
    """Model ``query`` from the campaigns that started before ``as_of`` (but ``exclude``)."""
    found = await warehouse.run(peer_tables.peers_before, as_of=as_of, exclude=exclude)
    peers, notes = in_currency(found, currency, fx)
    model = modelling.model_campaign(query, peers, min_peers=min_peers)
    model.notes[:0] = notes
    return model


@dataclass(frozen=True)
class Backtest:
    """The model replayed on the campaigns over before ``as_of`` (``modelling.backtest``)."""

    as_of: dt.datetime
    currency: str
    campaigns: int
    modelled: int
    notes: list[str]
    figures: dict[str, modelling.Accuracy]


async def backtest(
    warehouse: Warehouse, fx: FxRates, *, as_of: dt.datetime, currency: str, min_peers: int = 3
) -> Backtest:
    """Each campaign over before ``as_of`` modelled at its actual spend from the campaigns over
    before it started, in ``currency``, and compared with what it gave."""
    found = await warehouse.run(peer_tables.history, as_of=as_of)
    peers, notes = in_currency([(peer, dims.get("currency")) for peer, dims in found], currency, fx)
    dims_of = {peer.campaign_id: dims for peer, dims in found}
    history = [
        modelling.Past(
            peer=peer,
            start=dims_of[peer.campaign_id]["start_date"],
            end=dims_of[peer.campaign_id]["end_date"],
            budget=dims_of[peer.campaign_id].get("budget") or Decimal(0),
        )
        for peer in peers
    ]
    # many curve fits: off the event loop
    accuracy, modelled = await asyncio.to_thread(modelling.backtest, history, min_peers=min_peers)
    return Backtest(as_of, currency, len(history), modelled, notes, accuracy)


@dataclass(frozen=True)
class KnownModel:
    """A known campaign's model and what it was asked with."""

    model: modelling.Model
    campaign: dict[str, Any]
    as_of: dt.datetime
    currency: str
    budget: Decimal


async def model_known(
    warehouse: Warehouse, fx: FxRates, *, campaign_id: str, now: dt.datetime | None = None
) -> KnownModel | None:
    """Model a known campaign (its channel, brand, partner, target segment, budget) from the
    campaigns measured before its start, not itself; None when measurement does not know it."""
    known = await warehouse.run(peer_tables.campaign_query, campaign_id=campaign_id)
    if known is None:
        return None
    currency = known.get("currency") or fx.base
    budget = known.get("budget") or Decimal(0)
    as_of = as_of_for(known["start_date"], now)
    query = modelling.Query(
        channel=known.get("channel") or "",
        brand=known.get("brand") or None,
        partner=known.get("partner"),
        segment=known.get("target_segment"),
        budget=budget,
    )
    model = await model_query(
        warehouse, fx, query, as_of=as_of, currency=currency, exclude=campaign_id
    )
    return KnownModel(model, known, as_of, currency, budget)


def modelled_event(known: KnownModel) -> CampaignModelled:
    """The ``campaign.modelled`` of a known campaign's model."""
    return CampaignModelled(
        campaign_id=known.campaign["campaign_id"],
        plan_id=known.campaign.get("plan_id") or None,
        as_of=known.as_of,
        currency=known.currency,
        budget=known.budget,
        match=known.model.match,
        peers=len(known.model.peers),
        figures={
            name: ModelBand(p10=band.p10, p50=band.p50, p90=band.p90)
            for name, band in known.model.figures.items()
        },
    )


class ApprovalModels:
    """Models each campaign once it is approved and publishes ``campaign.modelled``."""

    def __init__(
        self,
        *,
        warehouse: Warehouse,
        broker: KafkaBroker,
        metrics: ServiceMetrics,
        leadership: Turns,
        fx: FxRates,
        per_round: int = 10,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.warehouse = warehouse
        self.broker = broker
        self.metrics = metrics
        self.leadership = leadership
        self.fx = fx
        self.per_round = per_round
        self.clock = clock

    async def model_new_approvals(self) -> None:
        """On the leader: model the approved campaigns not modelled yet."""
        async with self.leadership.turn() as term:
            if term is None:
                return
            await self.model_pending()

    async def model_pending(self) -> list[CampaignModelled]:
        """Model up to ``per_round`` approved or active campaigns without a model; publish and
        record each; return the events."""
        pending = await self.warehouse.run(
            peer_tables.approved_unmodelled, subject=SUBJECT, limit=self.per_round
        )
        published = []
        for campaign_id in pending:
            known = await model_known(self.warehouse, self.fx, campaign_id=campaign_id)
            if known is None:
                continue
            event = modelled_event(known)
            event_id = domain.cause_event_id(campaign_id, "modelled")
            await publish_cause(self.broker, event, event_id=event_id, metrics=self.metrics)
            # before the campaign is recorded as modelled: a recorded campaign has its rows
            await self.warehouse.write(
                modelled.save_model, event=event, event_id=event_id, now=self.clock()
            )
            await self.warehouse.write(
                alerts.save_alert_states_of,
                states={SUBJECT: {campaign_id: True}},
                now=self.clock(),
            )
            log.info("campaign_modelled", campaign_id=campaign_id, match=event.match)
            published.append(event)
        return published
