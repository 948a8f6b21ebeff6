"""notifier baseline: the schema of the releases before migrations

Revision ID: 0001
Revises:
Create Date: 2026-12-03 19:07:04.185702
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
        "notifier_budget_lines",
        sa.Column("line_id", sa.String(length=128), nullable=False),
        sa.Column("plan_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("line_id"),
    )
    op.create_table(
        "notifier_campaigns",
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("plan_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    op.create_table(
        "notifier_change_requests",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_table(
        "notifier_inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        sa.UniqueConstraint("consumer", "event_id", name="uq_notifier_inbox_event"),
    )
    op.create_table(
        "notifier_notifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("cause_event_id", sa.String(length=36), nullable=False),
        sa.Column("cause_event_type", sa.String(length=100), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "cause_event_id", "recipient", "channel", name="uq_notifier_notification_cause"
        ),
    )
    with op.batch_alter_table("notifier_notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifier_notifications_created", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_notifier_notifications_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_notifier_notifications_recipient", ["recipient", "created_at"], unique=False
        )

    op.create_table(
        "notifier_outbox",
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
    with op.batch_alter_table("notifier_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notifier_outbox_published_at"), ["published_at"], unique=False
        )

    op.create_table(
        "notifier_outbox_lease",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", shared.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "notifier_parked_causes",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("waits_kind", sa.String(length=16), nullable=False),
        sa.Column("waits_id", sa.String(length=128), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("parked_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("notifier_parked_causes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifier_parked_causes_waits", ["waits_kind", "waits_id"], unique=False
        )

    op.create_table(
        "notifier_plans",
        sa.Column("plan_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_id"),
    )
    op.create_table(
        "notifier_recipients",
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("muted_event_types", sa.JSON(), nullable=False),
        sa.Column("created_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recipient_id"),
    )
    op.create_table(
        "notifier_stages",
        sa.Column("stage_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("deadline", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stage_id"),
    )
    with op.batch_alter_table("notifier_stages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notifier_stages_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "notifier_units",
        sa.Column("unit_id", sa.String(length=128), nullable=False),
        sa.Column("parent_id", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("updated_at", shared.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("unit_id"),
    )


def downgrade() -> None:
    op.drop_table("notifier_units")
    with op.batch_alter_table("notifier_stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifier_stages_campaign_id"))

    op.drop_table("notifier_stages")
    op.drop_table("notifier_recipients")
    op.drop_table("notifier_plans")
    with op.batch_alter_table("notifier_parked_causes", schema=None) as batch_op:
        batch_op.drop_index("ix_notifier_parked_causes_waits")

    op.drop_table("notifier_parked_causes")
    op.drop_table("notifier_outbox_lease")
    with op.batch_alter_table("notifier_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifier_outbox_published_at"))

    op.drop_table("notifier_outbox")
    with op.batch_alter_table("notifier_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifier_notifications_recipient")
        batch_op.drop_index("ix_notifier_notifications_due")
        batch_op.drop_index("ix_notifier_notifications_created")

    op.drop_table("notifier_notifications")
    op.drop_table("notifier_inbox")
    op.drop_table("notifier_change_requests")
    op.drop_table("notifier_campaigns")
    op.drop_table("notifier_budget_lines")
