"""Planning's table of campaign models: the model measurement made when a campaign was
approved (``campaign.modelled``), kept once — a campaign's first model stands, later ones do not
replace what was expected. It belongs to planning's metadata (``store.Base``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.planning.store import Base, Store
from shared.events.kpi import CampaignModelled
from shared.sql import Cents, UtcDateTime, utcnow


class CampaignModel(Base):
    """The model of a campaign at its approval (one per campaign)."""

    __tablename__ = "planning_campaign_models"

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    as_of: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    currency: Mapped[str] = mapped_column(String(3))
    budget: Mapped[Decimal] = mapped_column(Cents())
    match: Mapped[str] = mapped_column(String(32))
    peers: Mapped[int] = mapped_column(Integer)
    figures: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


def record_model(*, db: Store, event_id: uuid.UUID, model: CampaignModelled) -> bool:
    """Keep a campaign's model at approval (once per event; a campaign's first model stands);
    False when nothing new was kept."""
    with db.unit_of_work() as uow:
        if not uow.claim(consumer="planning", event_id=event_id):
            return False
        if uow.session.get(CampaignModel, model.campaign_id) is not None:
            return False
        uow.session.add(
            CampaignModel(
                campaign_id=model.campaign_id,
                event_id=str(event_id),
                as_of=model.as_of,
                currency=model.currency,
                budget=model.budget,
                match=model.match,
                peers=model.peers,
                figures=json.dumps(
                    {name: band.model_dump(mode="json") for name, band in model.figures.items()}
                ),
            )
        )
    return True
