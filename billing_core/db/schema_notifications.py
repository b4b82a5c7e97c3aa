"""Tables of the billing core's notifications part: messages sent from the outbox, call tasks, phones.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0004 creates them.

* ``notifications``: one row per message (email or SMS) that an outbox event asked for.
  ``(event_seq, channel)`` is unique, so an event never produces a second message on the same
  channel however often the dispatcher runs. ``message_id`` is the stable Message-ID (and the
  SMS idempotency key) that every resend reuses. ``status`` is ``sending`` (claimed for delivery;
  ``next_attempt_at`` is when the claim lapses), ``sent``, ``failed`` (to be retried at
  ``next_attempt_at``) or ``undeliverable``. ``ix_notifications_due`` is the retry queue.
* ``call_tasks``: a person's to-do list: call the customer about an invoice (``open``, then
  ``done`` with an outcome). One per outbox event.
* ``notification_phones``: the mobile number (E.164) a customer agreed to receive text messages
  on. A customer without one gets email where the dunning engine asked for SMS.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from billing_core.db.schema import metadata
from billing_core.db.types import UTCDateTime

_AUTO: dict[str, Any] = {"sqlite_autoincrement": True}

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_seq", BigInteger, nullable=False),  # the outbox event that asked for it
    Column("kind", String(32), nullable=False),  # payment_failed, dunning_reminder, ...
    Column("channel", String(8), nullable=False),  # email, sms
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id")),
    Column("recipient", String(320), nullable=False),  # email address or E.164 number
    Column("language", String(8), nullable=False),  # the language it was rendered in
    Column("subject", String(512)),  # none for SMS
    Column("status", String(16), nullable=False),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("provider_message_id", String(255)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(512)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    UniqueConstraint("event_seq", "channel"),
    CheckConstraint("status IN ('sending', 'sent', 'failed', 'undeliverable')", name="status"),
    Index("ix_notifications_due", "status", "next_attempt_at"),
    **_AUTO,
)

call_tasks = Table(
    "call_tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_seq", BigInteger, nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id")),
    Column("action", String(16), nullable=False),  # remind, final_notice
    Column("amount_minor", BigInteger, nullable=False),  # what the invoice still owed
    Column("currency", String(3), nullable=False),
    Column("status", String(8), nullable=False),  # open, done
    Column("outcome", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
    CheckConstraint("status IN ('open', 'done')", name="status"),
    Index("ix_call_tasks_queue", "status", "created_at"),
    **_AUTO,
)

notification_phones = Table(
    "notification_phones",
    metadata,
    Column("customer_id", Integer, ForeignKey("customers.id"), primary_key=True, autoincrement=False),
    Column("phone", String(16), nullable=False),  # E.164, such as +4915112345678
    Column("consented_at", UTCDateTime, nullable=False),
)
