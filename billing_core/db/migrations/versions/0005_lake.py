"""lake: the lake export's position and history.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_core.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SOURCES = ("outbox", "customers", "subscriptions", "usage_events", "dunning_actions")


def upgrade() -> None:
    op.create_table(
        "lake_exports",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        *(
            sa.Column(f"{source}_{end}", sa.BigInteger(), nullable=False)
            for source in _SOURCES
            for end in ("from", "to")
        ),
        sa.Column("outbox_head_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("committed_at", billing_core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Text(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lake_exports")),
    )


def downgrade() -> None:
    op.drop_table("lake_exports")
