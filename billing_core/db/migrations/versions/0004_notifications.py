"""notifications: notifications sent from the outbox (email, SMS), call tasks, SMS phone numbers.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_core.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("created_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('sending', 'sent', 'failed', 'undeliverable')", name=op.f("ck_notifications_status")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_notifications_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_notifications_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("event_seq", "channel", name=op.f("uq_notifications_event_seq_channel")),
        sa.UniqueConstraint("message_id", name=op.f("uq_notifications_message_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_notifications_customer_id"), "notifications", ["customer_id"], unique=False)
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"], unique=False)
    op.create_table(
        "call_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("created_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'done')", name=op.f("ck_call_tasks_status")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_call_tasks_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_call_tasks_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_tasks")),
        sa.UniqueConstraint("event_seq", name=op.f("uq_call_tasks_event_seq")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_call_tasks_customer_id"), "call_tasks", ["customer_id"], unique=False)
    op.create_index("ix_call_tasks_queue", "call_tasks", ["status", "created_at"], unique=False)
    op.create_table(
        "notification_phones",
        sa.Column("customer_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("consented_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_notification_phones_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_notification_phones")),
    )


def downgrade() -> None:
    op.drop_table("notification_phones")
    op.drop_index("ix_call_tasks_queue", table_name="call_tasks")
    op.drop_index(op.f("ix_call_tasks_customer_id"), table_name="call_tasks")
    op.drop_table("call_tasks")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_index(op.f("ix_notifications_customer_id"), table_name="notifications")
    op.drop_table("notifications")
