"""subscriptions: on SQLite, the billing run's due index is keyed by the UTC day.

A billing run renews its due subscriptions in id order. With the index keyed by the exact
instant, those subscriptions are scattered over the whole index and every chunk of a run
rewrote most of its pages; keyed by the day, the entries of one day stay in id order and a
chunk rewrites a few pages. Queries reach it through :mod:`billing_core.db.due`. PostgreSQL
keeps the index on the instant.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_subscriptions_due", table_name="subscriptions")
        op.execute("CREATE INDEX ix_subscriptions_due_day ON subscriptions (substr(next_invoice_at, 1, 10))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_subscriptions_due_day", table_name="subscriptions")
        op.create_index("ix_subscriptions_due", "subscriptions", ["next_invoice_at"])
