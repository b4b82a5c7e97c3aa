"""lake: payment methods read by id, with their own range in each export run.

A lake exported before this revision has read no payment method yet: its range starts at 0 and
the next run exports every card.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lake_exports") as batch:
        for end in ("from", "to"):
            batch.add_column(
                sa.Column(f"payment_methods_{end}", sa.BigInteger(), nullable=False, server_default="0")
            )


def downgrade() -> None:
    with op.batch_alter_table("lake_exports") as batch:
        for end in ("to", "from"):
            batch.drop_column(f"payment_methods_{end}")
