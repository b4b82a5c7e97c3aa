"""signup context: the channel, IP address (and its country) and device a customer signed up from.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("signup_channel", sa.String(length=32), nullable=True))
    op.add_column("customers", sa.Column("signup_ip", sa.String(length=45), nullable=True))
    op.add_column("customers", sa.Column("signup_device_id", sa.String(length=64), nullable=True))
    op.add_column("customers", sa.Column("signup_ip_country", sa.String(length=2), nullable=True))


def downgrade() -> None:
    op.drop_column("customers", "signup_ip_country")
    op.drop_column("customers", "signup_device_id")
    op.drop_column("customers", "signup_ip")
    op.drop_column("customers", "signup_channel")
