"""Tables of the billing core's dunning part: dunning processes and their actions.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0003 creates them.

* ``dunning_processes``: one per invoice in collections (a failed payment or an overdue
  invoice), with where it stands and what is due next (the engine's queue). Its status follows
  :data:`billing_core.dunning.lifecycle.DUNNING_LIFECYCLE`: active, warned, suspended while in
  collections; recovered, written_off or closed once ended.
* ``dunning_actions``: append-only, one row per executed action. ``(process_id, step)`` is
  unique, so an action is executed exactly once however often the run is repeated. The lake
  export reads it incrementally by ``id``, with ``executed_at`` as the event time; ids are
  reserved in the transaction that writes the rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)

from billing_core.db.schema import metadata
from billing_core.db.types import UTCDateTime

_AUTO: dict[str, Any] = {"sqlite_autoincrement": True}
_IN_FLIGHT = text("attempt_id IS NOT NULL")

dunning_processes = Table(
    "dunning_processes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("subscription_id", Integer, ForeignKey("subscriptions.id")),
    Column("reason", String(16), nullable=False),  # payment_failed, overdue
    Column("status", String(16), nullable=False),  # active, warned, suspended, recovered, written_off, closed
    Column("started_at", UTCDateTime, nullable=False),  # the failed payment, or the due date
    Column("step", Integer, nullable=False, server_default="0"),  # actions executed so far
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("reminders", Integer, nullable=False, server_default="0"),
    Column("last_decline_code", String(32)),
    Column("next_action", String(16)),
    Column("next_channel", String(8)),
    Column("next_action_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # payment attempts on the invoice so far, the billing run's included
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("reminders_email", Integer, nullable=False, server_default="0"),
    Column("reminders_sms", Integer, nullable=False, server_default="0"),
    Column("reminders_call", Integer, nullable=False, server_default="0"),
    Column("last_retry_at", UTCDateTime),
    Column("last_reminder_at", UTCDateTime),  # the last reminder or final notice
    Column("final_notice_at", UTCDateTime),
    # the card last declined (or tried); a customer's default card that differs is a new card
    Column("payment_method_id", Integer),
    # a retry sent to the gateway whose answer is not recorded yet
    Column("attempt_id", Integer),
    Column("decided_by", String(64)),  # the policy that chose next_action
    Index("ix_dunning_processes_queue", "status", "next_action_at"),
    Index(
        "ix_dunning_processes_in_flight", "attempt_id", sqlite_where=_IN_FLIGHT, postgresql_where=_IN_FLIGHT
    ),
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
    # retry: succeeded, declined, canceled; remind, final_notice: queued;
    # suspend: suspended, not_suspended; write_off: written_off
    Column("outcome", String(32), nullable=False),
    Column("attempt_id", Integer),  # the payment attempt of a retry
    Column("amount_minor", BigInteger, nullable=False),  # what the invoice still owed
    Column("currency", String(3), nullable=False),
    Column("policy", String(64), nullable=False),  # the policy that chose the action
    Column("decline_code", String(32)),  # a declined retry's code
    Column("day", Integer, nullable=False, server_default="0"),  # whole days since the process started
    UniqueConstraint("process_id", "step"),
    **_AUTO,
)

# Open invoices the engine looked at but that were not in collections yet (not due, or a payment
# still pending): each run looks at them again, with the invoices its feed of outbox events names.
dunning_watch = Table(
    "dunning_watch",
    metadata,
    Column("invoice_id", Integer, ForeignKey("invoices.id"), primary_key=True, autoincrement=False),
    Column("since", UTCDateTime, nullable=False),
)
