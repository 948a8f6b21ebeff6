"""planning baseline: the schema of the releases before migrations

Revision ID: 0001
Revises:
Create Date: 2026-12-03 19:07:03.334725
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.sql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "planning_audit",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_planning_audit_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_planning_audit_entity_id"), ["entity_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_planning_audit_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "planning_campaign_models",
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("as_of", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("budget", shared.sql.Cents(), nullable=False),
        sa.Column("match", sa.String(length=32), nullable=False),
        sa.Column("peers", sa.Integer(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("recorded_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    op.create_table(
        "planning_discount_limits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope_kind", sa.String(length=10), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("promo_fund", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("max_discount_rate", sa.Numeric(precision=7, scale=6), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope_kind", "scope_id", name="uq_planning_discount_limit"),
    )
    with op.batch_alter_table("planning_discount_limits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_discount_limits_plan_id"), ["plan_id"], unique=False
        )

    op.create_table(
        "planning_inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        sa.UniqueConstraint("consumer", "event_id", name="uq_planning_inbox_event"),
    )
    op.create_table(
        "planning_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("published_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("planning_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_outbox_published_at"), ["published_at"], unique=False
        )

    op.create_table(
        "planning_outbox_lease",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "planning_plans",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("budget", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("approved_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "planning_reallocation_proposals",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("from_campaign_id", sa.String(length=64), nullable=False),
        sa.Column("to_campaign_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposed_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("to_line_id", sa.String(length=64), nullable=True),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("planning_reallocation_proposals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_reallocation_proposals_plan_id"), ["plan_id"], unique=False
        )

    op.create_table(
        "planning_reallocation_rules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("comparison", sa.String(length=2), nullable=False),
        sa.Column("threshold", sa.Numeric(precision=28, scale=10), nullable=False),
        sa.Column("min_spend_share", sa.Numeric(precision=7, scale=6), nullable=False),
        sa.Column("hold_s", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("share", sa.Numeric(precision=7, scale=6), nullable=False),
        sa.Column("hysteresis", sa.Numeric(precision=28, scale=10), nullable=True),
        sa.Column("recipient_threshold", sa.Numeric(precision=28, scale=10), nullable=True),
        sa.Column("min_amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("scope_line_id", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_reallocation_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_reallocation_rules_plan_id"), ["plan_id"], unique=False
        )

    op.create_table(
        "planning_sale_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "planning_sales_totals",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("rep_id", sa.String(length=128), nullable=False),
        sa.Column("partner_id", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", shared.sql.Cents(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("planning_sales_totals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_planning_sales_totals_month"), ["month"], unique=False)

    op.create_table(
        "planning_sales_units",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=True),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_sales_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_sales_units_parent_id"), ["parent_id"], unique=False
        )

    op.create_table(
        "planning_spend",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("amount", shared.sql.Cents(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("planning_spend", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_spend_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "planning_budget_lines",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=200), nullable=True),
        sa.Column("partner", sa.String(length=200), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("months", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["planning_plans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_budget_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_budget_lines_plan_id"), ["plan_id"], unique=False
        )

    op.create_table(
        "planning_budget_reallocations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("from_campaign_id", sa.String(length=64), nullable=False),
        sa.Column("to_campaign_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("proposal_event_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("from_line_id", sa.String(length=64), nullable=True),
        sa.Column("to_line_id", sa.String(length=64), nullable=True),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["planning_plans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_budget_reallocations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_budget_reallocations_plan_id"), ["plan_id"], unique=False
        )

    op.create_table(
        "planning_campaigns",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=200), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("budget", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("gross_margin", sa.Numeric(precision=7, scale=6), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sales_unit_id", sa.String(length=64), nullable=True),
        sa.Column("planned_uplift", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("target_segment", sa.String(length=128), nullable=True),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["planning_plans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_campaigns_plan_id"), ["plan_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_planning_campaigns_sales_unit_id"), ["sales_unit_id"], unique=False
        )

    op.create_table(
        "planning_sales_targets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("brand", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["planning_sales_units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_id", "period", "brand", name="uq_planning_sales_target"),
    )
    with op.batch_alter_table("planning_sales_targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_sales_targets_unit_id"), ["unit_id"], unique=False
        )

    op.create_table(
        "planning_change_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["planning_campaigns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_change_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_change_requests_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "planning_kpi_targets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("target", sa.Numeric(precision=28, scale=10), nullable=False),
        sa.Column("direction", sa.String(length=20), nullable=False),
        sa.Column("weight", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("tolerance", sa.Numeric(precision=7, scale=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["planning_campaigns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "kpi", name="uq_planning_target_kpi"),
    )
    with op.batch_alter_table("planning_kpi_targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_kpi_targets_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "planning_sales_target_proposals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("proposed_by", sa.String(length=128), nullable=False),
        sa.Column("proposed_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["planning_sales_targets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_sales_target_proposals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_sales_target_proposals_target_id"), ["target_id"], unique=False
        )

    op.create_table(
        "planning_stages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("deadline", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("starts_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["planning_campaigns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("planning_stages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planning_stages_campaign_id"), ["campaign_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("planning_stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_stages_campaign_id"))

    op.drop_table("planning_stages")
    with op.batch_alter_table("planning_sales_target_proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_sales_target_proposals_target_id"))

    op.drop_table("planning_sales_target_proposals")
    with op.batch_alter_table("planning_kpi_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_kpi_targets_campaign_id"))

    op.drop_table("planning_kpi_targets")
    with op.batch_alter_table("planning_change_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_change_requests_campaign_id"))

    op.drop_table("planning_change_requests")
    with op.batch_alter_table("planning_sales_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_sales_targets_unit_id"))

    op.drop_table("planning_sales_targets")
    with op.batch_alter_table("planning_campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_campaigns_sales_unit_id"))
        batch_op.drop_index(batch_op.f("ix_planning_campaigns_plan_id"))

    op.drop_table("planning_campaigns")
    with op.batch_alter_table("planning_budget_reallocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_budget_reallocations_plan_id"))

    op.drop_table("planning_budget_reallocations")
    with op.batch_alter_table("planning_budget_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_budget_lines_plan_id"))

    op.drop_table("planning_budget_lines")
    with op.batch_alter_table("planning_spend", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_spend_campaign_id"))

    op.drop_table("planning_spend")
    with op.batch_alter_table("planning_sales_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_sales_units_parent_id"))

    op.drop_table("planning_sales_units")
    with op.batch_alter_table("planning_sales_totals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_sales_totals_month"))

    op.drop_table("planning_sales_totals")
    op.drop_table("planning_sale_events")
    with op.batch_alter_table("planning_reallocation_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_reallocation_rules_plan_id"))

    op.drop_table("planning_reallocation_rules")
    with op.batch_alter_table("planning_reallocation_proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_reallocation_proposals_plan_id"))

    op.drop_table("planning_reallocation_proposals")
    op.drop_table("planning_plans")
    op.drop_table("planning_outbox_lease")
    with op.batch_alter_table("planning_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_outbox_published_at"))

    op.drop_table("planning_outbox")
    op.drop_table("planning_inbox")
    with op.batch_alter_table("planning_discount_limits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_discount_limits_plan_id"))

    op.drop_table("planning_discount_limits")
    op.drop_table("planning_campaign_models")
    with op.batch_alter_table("planning_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planning_audit_plan_id"))
        batch_op.drop_index(batch_op.f("ix_planning_audit_entity_id"))
        batch_op.drop_index(batch_op.f("ix_planning_audit_at"))

    op.drop_table("planning_audit")
