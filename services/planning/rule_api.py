"""Planning's reallocation-rule routes: a plan's rules are read by every role and created,
changed or removed by a CMO or admin."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import MISSING, BaseModel, ConfigDict, Field

from services.planning import rule_usecases
from services.planning.api import DB, Approver, Reader
from services.planning.rules import RuleDraft, RuleFacts
from services.planning.schemas import StrictBody
from shared.events.envelope import Count, Identifier, Measure, Money, Share
from shared.reallocation import ActionKind, Comparison, RuleMode

router = APIRouter(prefix="/api/v1", tags=["reallocation rules"])

MovedShare = Annotated[Share, Field(gt=0)]
Hysteresis = Annotated[Measure, Field(ge=0)]


class RuleIn(StrictBody):
    """A new reallocation rule: its condition, its action and its mode."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kpi": "cpl",
                    "comparison": "gt",
                    "threshold": "60",
                    "min_spend_share": "0.2",
                    "hold_s": 3600,
                    "hysteresis": "5",
                    "action": "best_in_line",
                    "recipient_threshold": "40",
                    "share": "0.25",
                    "min_amount": "100.00",
                    "mode": "propose",
                },
                {
                    "kpi": "romi",
                    "comparison": "lt",
                    "threshold": "0",
                    "min_spend_share": "0.3",
                    "action": "line",
                    "target_id": "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b",
                    "scope_line_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "share": "0.5",
                    "mode": "apply",
                },
            ]
        }
    )

    kpi: Identifier = Field(description="``ckpi`` or a KPI of the catalogue.")
    comparison: Comparison
    threshold: Measure
    min_spend_share: Share = Field(
        default=Decimal(0), description="Campaigns are judged once they spent this share."
    )
    hold_s: Count = Field(default=0, description="How long the condition must hold (seconds).")
    hysteresis: Hysteresis = Field(
        default=Decimal(0),
        description="How far past the threshold the KPI must come back to end an episode.",
    )
    action: ActionKind
    target_id: Identifier | None = Field(
        default=None, description="The campaign or budget line receiving (named actions)."
    )
    recipient_threshold: Measure | None = Field(
        default=None,
        description="best_in_line: the recipient must score at least this (at most, for a gt/ge"
        " condition).",
    )
    share: MovedShare = Field(description="Share of the donor's unspent budget moved.")
    min_amount: Money = Field(default=Decimal(0), description="Smaller moves are not made.")
    mode: RuleMode = "propose"
    enabled: bool = True
    scope_line_id: Identifier | None = Field(
        default=None,
        description="Watch only the campaigns of this budget line and the lines beneath it.",
    )


class RulePatch(StrictBody):
    """Changes to a rule; absent fields stay as they are."""

    kpi: Identifier | MISSING = MISSING
    comparison: Comparison | MISSING = MISSING
    threshold: Measure | MISSING = MISSING
    min_spend_share: Share | MISSING = MISSING
    hold_s: Count | MISSING = MISSING
    hysteresis: Hysteresis | MISSING = MISSING
    action: ActionKind | MISSING = MISSING
    target_id: Identifier | MISSING | None = MISSING
    recipient_threshold: Measure | MISSING | None = MISSING
    share: MovedShare | MISSING = MISSING
    min_amount: Money | MISSING = MISSING
    scope_line_id: Identifier | MISSING | None = MISSING
    mode: RuleMode | MISSING = MISSING
    enabled: bool | MISSING = MISSING


class RuleOut(BaseModel):
    """A plan's reallocation rule (``is_default``: given at the plan's creation)."""

    rule_id: str
    plan_id: str
    kpi: str
    comparison: Comparison
    threshold: Decimal
    min_spend_share: Decimal
    hold_s: int
    hysteresis: Decimal
    action: ActionKind
    target_id: str | None
    recipient_threshold: Decimal | None
    share: Decimal
    min_amount: Decimal
    mode: RuleMode
    enabled: bool
    scope_line_id: str | None
    is_default: bool
    version: int


def _out(facts: RuleFacts) -> RuleOut:
    return RuleOut(**vars(facts))


@router.get("/plans/{plan_id}/reallocation-rules", response_model=list[RuleOut])
def list_rules(plan_id: Identifier, db: DB, _: Reader) -> list[RuleOut]:
    """A plan's reallocation rules, its default first."""
    return [_out(facts) for facts in rule_usecases.list_rules(db=db, plan_id=plan_id)]


@router.post(
    "/plans/{plan_id}/reallocation-rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleOut,
)
def create_rule(plan_id: Identifier, body: RuleIn, db: DB, principal: Approver) -> RuleOut:
    """Add a reallocation rule to a plan."""
    draft = RuleDraft(**body.model_dump())
    return _out(rule_usecases.create_rule(db=db, plan_id=plan_id, draft=draft, principal=principal))


@router.get("/reallocation-rules/{rule_id}", response_model=RuleOut)
def get_rule(rule_id: Identifier, db: DB, _: Reader) -> RuleOut:
    """One reallocation rule."""
    return _out(rule_usecases.get_rule(db=db, rule_id=rule_id))


@router.patch("/reallocation-rules/{rule_id}", response_model=RuleOut)
def patch_rule(rule_id: Identifier, body: RulePatch, db: DB, principal: Approver) -> RuleOut:
    """Change a reallocation rule (a new version)."""
    changes = body.model_dump()
    return _out(
        rule_usecases.update_rule(db=db, rule_id=rule_id, changes=changes, principal=principal)
    )


@router.delete(
    "/reallocation-rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def delete_rule(rule_id: Identifier, db: DB, principal: Approver) -> Response:
    """Remove a reallocation rule (the default one too)."""
    rule_usecases.delete_rule(db=db, rule_id=rule_id, principal=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
