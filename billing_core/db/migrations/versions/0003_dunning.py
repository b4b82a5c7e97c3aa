"""dunning: dunning processes, their actions, and the invoices watched before they are due.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_core.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dunning_processes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reminders", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_decline_code", sa.String(length=32), nullable=True),
        sa.Column("next_action", sa.String(length=16), nullable=True),
        sa.Column("next_channel", sa.String(length=8), nullable=True),
        sa.Column("next_action_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reminders_email", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reminders_sms", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reminders_call", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_retry_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_reminder_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("final_notice_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payment_method_id", sa.Integer(), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_dunning_processes_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_dunning_processes_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_dunning_processes_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_processes")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_dunning_processes_invoice_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_dunning_processes_customer_id"), "dunning_processes", ["customer_id"], unique=False
    )
    op.create_index(
        "ix_dunning_processes_queue", "dunning_processes", ["status", "next_action_at"], unique=False
    )
    op.create_index(
        "ix_dunning_processes_in_flight",
        "dunning_processes",
        ["attempt_id"],
        unique=False,
        sqlite_where=sa.text("attempt_id IS NOT NULL"),
        postgresql_where=sa.text("attempt_id IS NOT NULL"),
    )
    op.create_table(
        "dunning_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=True),
        sa.Column("scheduled_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("executed_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("decline_code", sa.String(length=32), nullable=True),
        sa.Column("day", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_dunning_actions_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["process_id"],
            ["dunning_processes.id"],
            name=op.f("fk_dunning_actions_process_id_dunning_processes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_actions")),
        sa.UniqueConstraint("process_id", "step", name=op.f("uq_dunning_actions_process_id_step")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_dunning_actions_invoice_id"), "dunning_actions", ["invoice_id"], unique=False)
    op.create_table(
        "dunning_watch",
        sa.Column("invoice_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("since", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_dunning_watch_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_dunning_watch")),
    )


def downgrade() -> None:
    op.drop_table("dunning_watch")
    op.drop_index(op.f("ix_dunning_actions_invoice_id"), table_name="dunning_actions")
    op.drop_table("dunning_actions")
    op.drop_index("ix_dunning_processes_in_flight", table_name="dunning_processes")
    op.drop_index("ix_dunning_processes_queue", table_name="dunning_processes")
    op.drop_index(op.f("ix_dunning_processes_customer_id"), table_name="dunning_processes")
    op.drop_table("dunning_processes")
