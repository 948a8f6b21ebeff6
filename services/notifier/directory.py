"""What the notifier knows of planning — plans, campaigns, stages, sales units, change
requests and budget lines — learnt from ``mrm.planning.v1``; pure data, no I/O.

Causes name ids (a campaign, a unit …); routing and messages need owners and names. The store
loads the slice a cause needs (:class:`Lookups`) into a :class:`Directory`; a cause whose entry
is missing waits for it under a :class:`WaitKey` — except a budget line, which only gives a
message a name: a cause naming an unknown line is told with the line's id instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from shared.events.planning import (
    BudgetLineSet,
    CampaignChangeRequested,
    CampaignState,
    PlanCreated,
    SalesUnitSet,
    StageScheduled,
)


@dataclass(frozen=True)
class PlanInfo:
    """What the notifier knows of a plan."""

    plan_id: str
    name: str
    owner: str
    currency: str


@dataclass(frozen=True)
class CampaignInfo:
    """What the notifier knows of a campaign."""

    campaign_id: str
    plan_id: str
    name: str
    owner: str
    version: int


@dataclass(frozen=True)
class StageInfo:
    """What the notifier knows of a stage."""

    stage_id: str
    campaign_id: str
    name: str
    assignee: str | None
    deadline: dt.datetime
    version: int


@dataclass(frozen=True)
class UnitInfo:
    """What the notifier knows of a unit of the sales-target tree."""

    unit_id: str
    parent_id: str | None
    kind: str
    name: str
    owner: str


@dataclass(frozen=True)
class ChangeRequestInfo:
    """Who asked for a change to an approved campaign (``campaign.change_decided`` does not
    say, and the requester is the one to hear the decision)."""

    request_id: str
    campaign_id: str
    requested_by: str


@dataclass(frozen=True)
class LineInfo:
    """What the notifier knows of a budget line (its name, for messages)."""

    line_id: str
    plan_id: str
    name: str
    version: int


@dataclass(frozen=True)
class Directory:
    """The slice of the planning directory a cause needs (see ``domain.lookups_for``)."""

    plans: Mapping[str, PlanInfo] = field(default_factory=dict)
    campaigns: Mapping[str, CampaignInfo] = field(default_factory=dict)
    stages: Mapping[str, StageInfo] = field(default_factory=dict)
    units: Mapping[str, UnitInfo] = field(default_factory=dict)
    change_requests: Mapping[str, ChangeRequestInfo] = field(default_factory=dict)
    lines: Mapping[str, LineInfo] = field(default_factory=dict)


@dataclass(frozen=True)
class Lookups:
    """Directory keys to load for a cause."""

    plan_ids: frozenset[str] = frozenset()
    campaign_ids: frozenset[str] = frozenset()
    stage_ids: frozenset[str] = frozenset()
    unit_ids: frozenset[str] = frozenset()
    request_ids: frozenset[str] = frozenset()
    line_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WaitKey:
    """The directory entry a cause waits for: a stage, campaign, plan or sales unit."""

    kind: Literal["campaign", "plan", "stage", "unit"]
    identifier: str


def plan_info(data: PlanCreated) -> PlanInfo:
    """The directory entry of a created plan."""
    return PlanInfo(plan_id=data.plan_id, name=data.name, owner=data.owner, currency=data.currency)


def campaign_info(data: CampaignState) -> CampaignInfo:
    """The directory entry of a planned or updated campaign."""
    return CampaignInfo(
        campaign_id=data.campaign_id,
        plan_id=data.plan_id,
        name=data.name,
        owner=data.owner,
        version=data.version,
    )


def stage_info(data: StageScheduled) -> StageInfo:
    """The directory entry of a scheduled stage."""
    return StageInfo(
        stage_id=data.stage_id,
        campaign_id=data.campaign_id,
        name=data.name,
        assignee=data.assignee,
        deadline=data.deadline,
        version=data.version,
    )


def unit_info(data: SalesUnitSet) -> UnitInfo:
    """The directory entry of a created or changed sales unit."""
    return UnitInfo(
        unit_id=data.unit_id,
        parent_id=data.parent_id,
        kind=data.kind,
        name=data.name,
        owner=data.owner,
    )


def change_request_info(data: CampaignChangeRequested) -> ChangeRequestInfo:
    """The directory entry of a change request (its requester)."""
    return ChangeRequestInfo(
        request_id=data.request_id, campaign_id=data.campaign_id, requested_by=data.requested_by
    )


def line_info(data: BudgetLineSet) -> LineInfo:
    """The directory entry of a created or changed budget line."""
    return LineInfo(
        line_id=data.line_id, plan_id=data.plan_id, name=data.name, version=data.version
    )


def supersedes(*, incoming: int, current: int | None) -> bool:
    """Whether a versioned directory entry replaces the stored one (late events lose)."""
    return current is None or incoming >= current


def lookups_with_plans(lookups: Lookups, directory: Directory) -> Lookups:
    """``lookups`` plus the plans of the campaigns found (for plan names in messages) and the
    parents of the units found (a proposal goes to the parent unit's owner)."""
    plan_ids = {campaign.plan_id for campaign in directory.campaigns.values()}
    parent_ids = {unit.parent_id for unit in directory.units.values() if unit.parent_id}
    return replace(
        lookups, plan_ids=lookups.plan_ids | plan_ids, unit_ids=lookups.unit_ids | parent_ids
    )
