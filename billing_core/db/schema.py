"""The billing core's tables (SQLAlchemy Core). Alembic migrations are generated from here.

Conventions: amounts are ``BigInteger`` minor units named ``*_minor`` beside a ``currency``
column; instants are :class:`UTCDateTime`; exact decimals are :class:`DecimalText`. Ids are
integers. A finalized invoice and its lines are guarded by triggers (see the first migration),
and the outbox is append-only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from billing_core.db.types import DecimalText, UTCDateTime

#: ``sqlite_autoincrement``: ids are never reused and can be reserved in blocks
_AUTO: dict[str, Any] = {"sqlite_autoincrement": True}

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


_PENDING = text("status = 'pending'")


def _money(prefix: str, *, nullable: bool = False, default: int | None = 0) -> Column[int]:
    return Column(
        f"{prefix}_minor",
        BigInteger,
        nullable=nullable,
        server_default=None if default is None else str(default),
    )


tax_rates = Table(
    "tax_rates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("jurisdiction", String(16), nullable=False),
    Column("percentage", DecimalText, nullable=False),
    Column("inclusive", Boolean, nullable=False),
    Column("display_name", String(64), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    **_AUTO,
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(128), unique=True),
    Column("email", String(320), nullable=False),
    Column("name", String(256), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("country", String(2), nullable=False),
    Column("language", String(8), nullable=False),
    Column("billing_anchor_day", Integer),
    Column("tax_rate_id", Integer, ForeignKey("tax_rates.id")),
    Column("balance_minor", BigInteger, nullable=False, server_default="0"),
    Column("default_payment_method_id", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # where the customer signed up from (migration 0006): what a fraud screen looks at
    Column("signup_channel", String(32)),  # organic, paid_search, partner, sales, referral...
    Column("signup_ip", String(45)),  # IPv4 or IPv6, as text
    Column("signup_device_id", String(64)),
    Column("signup_ip_country", String(2)),  # ISO 3166 code of the IP address (a GeoIP lookup)
    CheckConstraint("balance_minor >= 0", name="balance_not_negative"),
    **_AUTO,
)

payment_methods = Table(
    "payment_methods",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("brand", String(16), nullable=False),
    Column("bin", String(8), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("detached_at", UTCDateTime),
    **_AUTO,
)

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    **_AUTO,
)

billable_metrics = Table(
    "billable_metrics",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("aggregation", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

prices = Table(
    "prices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("model", String(16), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("interval_count", Integer, nullable=False),
    Column("usage_type", String(16), nullable=False),
    Column("unit_amount_minor", DecimalText, nullable=False),
    Column("package_size", Integer),
    Column("metric_code", String(64), ForeignKey("billable_metrics.code")),
    Column("trial_days", Integer, nullable=False, server_default="0"),
    Column("nickname", String(256), nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    **_AUTO,
)

price_tiers = Table(
    "price_tiers",
    metadata,
    Column("price_id", Integer, ForeignKey("prices.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("up_to", BigInteger),
    Column("unit_amount_minor", DecimalText, nullable=False),
    Column("flat_amount_minor", BigInteger, nullable=False),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("duration", String(16), nullable=False),
    Column("percent_off", DecimalText),
    Column("amount_off_minor", BigInteger),
    Column("currency", String(3)),
    Column("duration_in_periods", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    **_AUTO,
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("tz_name", String(64), nullable=False),
    Column("months_per_period", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("anchor_at", UTCDateTime, nullable=False),
    Column("trial_end", UTCDateTime),
    Column("next_period_index", Integer, nullable=False),
    Column("next_invoice_at", UTCDateTime),
    Column("current_period_start", UTCDateTime),
    Column("current_period_end", UTCDateTime),
    Column("cancel_at_period_end", Boolean, nullable=False, server_default="0"),
    Column("canceled_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("paused_at", UTCDateTime),
    Column("coupon_id", Integer, ForeignKey("coupons.id")),
    Column("discounted_invoices", Integer, nullable=False, server_default="0"),
    # metered usage before this instant has been invoiced (or was free: trial, pause)
    Column("usage_billed_until", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    **_AUTO,
)
# The billing run's queue: next renewals (NULL for paused, canceled and unpaid subscriptions).
# On SQLite the index is keyed by the UTC day only (see ``billing_core.db.due``): entries of one
# day stay in id order, so a run that renews subscriptions in id order rewrites a few index pages
# per chunk instead of touching most of the index in every chunk.
Index("ix_subscriptions_due", subscriptions.c.next_invoice_at).ddl_if(dialect="postgresql")
Index("ix_subscriptions_due_day", func.substr(subscriptions.c.next_invoice_at, 1, 10)).ddl_if(
    dialect="sqlite"
)
#: one database's own indexes, checked by their own test (tests/integration/test_migrations.py):
#: alembic compares an index on every dialect, and SQLAlchemy cannot reflect an expression index
#: on SQLite
_UNCOMPARED_INDEXES = frozenset({"ix_subscriptions_due", "ix_subscriptions_due_day"})


def compared_by_alembic(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """alembic's ``include_object``: everything but the indexes alembic cannot compare."""
    return not (type_ == "index" and name in _UNCOMPARED_INDEXES)


subscription_items = Table(
    "subscription_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscription_id", Integer, ForeignKey("subscriptions.id"), nullable=False, index=True),
    Column("price_id", Integer, ForeignKey("prices.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    UniqueConstraint("subscription_id", "price_id"),
    CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    **_AUTO,
)

# A plan change that takes effect at the end of the current period (a downgrade, typically).
subscription_pending_changes = Table(
    "subscription_pending_changes",
    metadata,
    Column("subscription_id", Integer, ForeignKey("subscriptions.id"), primary_key=True),
    Column("effective_at", UTCDateTime, nullable=False),
    Column("items", Text, nullable=False),  # JSON list of {"price_id": .., "quantity": ..}
    Column("created_at", UTCDateTime, nullable=False),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("metric_code", String(64), ForeignKey("billable_metrics.code"), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("unique_key", String(256)),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_usage_events_customer_metric_time", "customer_id", "metric_code", "occurred_at"),
    **_AUTO,
)

one_time_charges = Table(
    "one_time_charges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("subscription_id", Integer, ForeignKey("subscriptions.id")),
    Column("description", String(512), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("invoice_id", Integer, ForeignKey("invoices.id")),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_one_time_charges_pending", "subscription_id", "invoice_id"),
    **_AUTO,
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(32), unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("subscription_id", Integer, ForeignKey("subscriptions.id")),
    Column("status", String(16), nullable=False),
    Column("billing_reason", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("period_start", UTCDateTime),
    Column("period_end", UTCDateTime),
    _money("subtotal"),
    _money("discount"),
    _money("tax"),
    Column("tax_inclusive", Boolean, nullable=False, server_default="0"),
    _money("total"),
    _money("credit_applied"),
    _money("amount_due"),
    _money("amount_paid"),
    _money("amount_credited"),
    _money("amount_remaining"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finalized_at", UTCDateTime),
    Column("due_at", UTCDateTime),
    Column("paid_at", UTCDateTime),
    Column("voided_at", UTCDateTime),
    Column("marked_uncollectible_at", UTCDateTime),
    # one invoice per subscription period: the billing run's exactly-once guarantee
    UniqueConstraint("subscription_id", "period_start"),
    **_AUTO,
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", Integer, ForeignKey("invoices.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("description", String(512), nullable=False),
    Column("price_id", Integer),
    Column("subscription_id", Integer),
    Column("quantity", BigInteger, nullable=False),
    Column("period_start", UTCDateTime),
    Column("period_end", UTCDateTime),
    _money("amount"),
    _money("discount"),
    _money("tax"),
    Column("taxable", Boolean, nullable=False, server_default="1"),
    sqlite_with_rowid=False,
)

number_sequences = Table(
    "number_sequences",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("next_value", BigInteger, nullable=False),
)

payment_attempts = Table(
    "payment_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False),
    Column("customer_id", Integer, nullable=False),
    Column("payment_method_id", Integer, ForeignKey("payment_methods.id")),
    Column("attempt_number", Integer, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("decline_code", String(32)),
    Column("decline_type", String(16)),
    # sent to the gateway; derived from (invoice_id, attempt_number), so unique by construction
    Column("idempotency_key", String(128), nullable=False),
    Column("gateway_reference", String(128)),
    Column("source", String(16), nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    UniqueConstraint("invoice_id", "attempt_number"),
    # the payment collector's queue: attempts not yet sent, by when they are due
    Index("ix_payment_attempts_pending", "scheduled_at", sqlite_where=_PENDING, postgresql_where=_PENDING),
    **_AUTO,
)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False, index=True),
    Column("attempt_id", Integer, ForeignKey("payment_attempts.id"), unique=True),
    Column("customer_id", Integer, nullable=False),
    Column("method", String(16), nullable=False),  # card, bank_transfer
    Column("payment_method_id", Integer),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("gateway_reference", String(128)),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("amount_refunded_minor <= amount_minor", name="refund_within_payment"),
    **_AUTO,
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("payment_id", Integer, ForeignKey("payments.id"), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("gateway_reference", String(128)),
    Column("credit_note_id", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    **_AUTO,
)

chargebacks = Table(
    "chargebacks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("payment_id", Integer, ForeignKey("payments.id"), nullable=False, index=True),
    Column("network_reference", String(128), nullable=False, unique=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    **_AUTO,
)

credit_notes = Table(
    "credit_notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False, index=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("refund_id", Integer, ForeignKey("refunds.id")),
    Column("memo", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    **_AUTO,
)

customer_balance_transactions = Table(
    "customer_balance_transactions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),  # + credit added, - credit consumed
    Column("currency", String(3), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("invoice_id", Integer),
    Column("credit_note_id", Integer),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    **_AUTO,
)

disputes = Table(
    "disputes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id")),
    Column("payment_id", Integer, ForeignKey("payments.id")),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("message", Text, nullable=False),
    Column("category", String(32)),
    Column("status", String(16), nullable=False),
    Column("outcome", String(16)),
    Column("resolution_note", Text),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    **_AUTO,
)

fx_rates = Table(
    "fx_rates",
    metadata,
    Column("base", String(3), primary_key=True),
    Column("quote", String(3), primary_key=True),
    Column("effective_at", UTCDateTime, primary_key=True),
    Column("rate", DecimalText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# The outbox: every use case appends its domain events here, in its own transaction. Rows are
# never updated or deleted, and each row's hash covers the previous row's hash, so the outbox is
# also the tamper-evident audit log of every money movement and state change. Consumers (the
# lake export, notifications) keep their own position in ``consumer_offsets``.
outbox = Table(
    "outbox",
    metadata,
    # on SQLite an INTEGER PRIMARY KEY is the rowid itself: no second index to keep per event
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("aggregate_type", String(32), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    # sha256(previous row's hash | this row): the previous hash is the previous row's, not stored twice
    Column("hash", String(64), nullable=False),
)

outbox_head = Table(
    "outbox_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


# The tables of the other parts live beside this module, one file per part, on the same metadata.
from billing_core.db import schema_api, schema_dunning, schema_lake, schema_notifications  # noqa: E402, F401
