"""Tables of the billing core's dunning part: dunning processes and their actions.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0003 creates them.

* ``dunning_processes``: one per invoice in collections (a failed payment or an overdue
  invoice), with where it stands and what is due next (the engine's queue).
* ``dunning_actions``: append-only, one row per executed action. ``(process_id, step)`` is
  unique, so an action is executed exactly once however often the run is repeated. The lake
  export reads it incrementally by ``id``, with ``executed_at`` as the event time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from billing_core.db.schema import metadata
from billing_core.db.types import UTCDateTime

_AUTO: dict[str, Any] = {"sqlite_autoincrement": True}

dunning_processes = Table(
    "dunning_processes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("subscription_id", Integer, ForeignKey("subscriptions.id")),
    Column("reason", String(16), nullable=False),  # payment_failed, overdue
    Column("status", String(16), nullable=False),  # active, recovered, written_off, closed
    Column("started_at", UTCDateTime, nullable=False),
    Column("step", Integer, nullable=False, server_default="0"),  # actions executed so far
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("reminders", Integer, nullable=False, server_default="0"),
    Column("last_decline_code", String(32)),
    Column("next_action", String(16)),
    Column("next_channel", String(8)),
    Column("next_action_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_dunning_processes_queue", "status", "next_action_at"),
    **_AUTO,
)

dunning_actions = Table(
    "dunning_actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("process_id", Integer, ForeignKey("dunning_processes.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False, index=True),
    Column("customer_id", Integer, nullable=False),
    Column("subscription_id", Integer),
    Column("action", String(16), nullable=False),  # retry, remind, final_notice, suspend, write_off
    Column("channel", String(8)),  # email, sms, call; none for retry, suspend, write_off
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("executed_at", UTCDateTime, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("attempt_id", Integer),  # the payment attempt of a retry
    Column("amount_minor", BigInteger, nullable=False),  # what the invoice still owed
    Column("currency", String(3), nullable=False),
    Column("policy", String(64), nullable=False),  # the policy that chose the action
    UniqueConstraint("process_id", "step"),
    **_AUTO,
)
