"""execution baseline: the schema of the releases before migrations

Revision ID: 0001
Revises:
Create Date: 2026-12-03 19:07:03.772079
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
        "execution_campaigns",
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("plan_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status_version", sa.Integer(), nullable=False),
        sa.Column("budget", shared.sql.Cents(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("budget_as_of", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("overspend_flagged", sa.Boolean(), nullable=False),
        sa.Column("overspend_alerts", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    with op.batch_alter_table("execution_campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_execution_campaigns_plan_id"), ["plan_id"], unique=False
        )

    op.create_table(
        "execution_inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        sa.UniqueConstraint("consumer", "event_id", name="uq_execution_inbox_event"),
    )
    op.create_table(
        "execution_outbox",
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
    with op.batch_alter_table("execution_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_execution_outbox_published_at"), ["published_at"], unique=False
        )

    op.create_table(
        "execution_outbox_lease",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "execution_plans",
        sa.Column("plan_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id"),
    )
    op.create_table(
        "execution_spend",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("amount", shared.sql.Cents(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("execution_spend", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_execution_spend_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "execution_spend_totals",
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", shared.sql.Cents(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "currency"),
    )
    # spend totals are the sum of the spend recorded (a no-op on an empty database; the same
    # step fills them when a database made before they existed is adopted)
    op.execute(
        "INSERT INTO execution_spend_totals (campaign_id, currency, amount)"
        " SELECT campaign_id, currency, SUM(amount) FROM execution_spend"
        " GROUP BY campaign_id, currency"
    )
    op.create_table(
        "execution_stages",
        sa.Column("stage_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("deadline", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("starts_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_as_of", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("status_by", sa.String(length=128), nullable=True),
        sa.Column("status_comment", sa.Text(), nullable=True),
        sa.Column("completed_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("completion_announced", sa.Boolean(), nullable=False),
        sa.Column("warned_for", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("overdue_for", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stage_id"),
    )
    with op.batch_alter_table("execution_stages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_execution_stages_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_execution_stages_deadline"), ["deadline"], unique=False
        )

    op.create_table(
        "execution_threshold_crossings",
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("threshold_pct", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("crossed_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("spend", shared.sql.Cents(), nullable=False),
        sa.Column("budget", shared.sql.Cents(), nullable=False),
        sa.Column("rearmed_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "threshold_pct", "generation"),
    )


def downgrade() -> None:
    op.drop_table("execution_threshold_crossings")
    with op.batch_alter_table("execution_stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_execution_stages_deadline"))
        batch_op.drop_index(batch_op.f("ix_execution_stages_campaign_id"))

    op.drop_table("execution_stages")
    op.drop_table("execution_spend_totals")
    with op.batch_alter_table("execution_spend", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_execution_spend_campaign_id"))

    op.drop_table("execution_spend")
    op.drop_table("execution_plans")
    op.drop_table("execution_outbox_lease")
    with op.batch_alter_table("execution_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_execution_outbox_published_at"))

    op.drop_table("execution_outbox")
    op.drop_table("execution_inbox")
    with op.batch_alter_table("execution_campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_execution_campaigns_plan_id"))

    op.drop_table("execution_campaigns")
