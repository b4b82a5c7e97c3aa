"""The lake's tables: one explicit pyarrow schema each, its partitioning and its sources.

Conventions, the same in every table:

* money is an ``int64`` of minor units named ``*_minor`` beside a ``currency`` column;
* instants are ``timestamp[us, tz=UTC]``;
* low-cardinality strings (statuses, codes, currencies, reasons) are dictionary-encoded;
* ``event_timestamp`` is when the row became true: the ``occurred_at`` of the outbox event it
  records (or ``created_at``, ``executed_at``, the last usage received, for rows read by id);
  a reader that keeps the rows with ``event_timestamp <= t`` sees what the billing core knew at
  ``t``, and nothing later;
* ``event_seq`` is the outbox sequence number of that event (null for rows read by id): it
  orders rows that share an ``event_timestamp``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
DICT = pa.dictionary(pa.int32(), pa.string())
ITEM = pa.struct(
    [pa.field("price_id", pa.int64(), nullable=False), pa.field("quantity", pa.int64(), nullable=False)]
)

Partitioning = Literal["day", "month"]
#: where an export run's rows for a table come from: the outbox, or a table read by id
Source = Literal["outbox", "customers", "payment_methods", "subscriptions", "usage_events", "dunning_actions"]


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


def _key(name: str) -> pa.Field:
    return pa.field(name, pa.int64(), nullable=False)


_EVENT = [_f("event_seq", pa.int64(), False), _f("event_timestamp", TS, False)]


@dataclass(frozen=True)
class LakeTable:
    """A table of the lake: ``<lake>/<name>/<date|month>=<key>/<prefix>-<from>-<to>.parquet``."""

    name: str
    schema: pa.Schema
    #: day partitions (``date=YYYY-MM-DD``) for the big tables, month (``month=YYYY-MM``) for the rest
    partitioning: Partitioning
    #: file name prefix -> the source whose range names the file
    sources: dict[str, Source] = field(default_factory=lambda: {"part": "outbox"})
    #: the column partitions are cut by (an instant, or a date for usage)
    partition_column: str = "event_timestamp"
    description: str = ""

    @property
    def partition_key(self) -> str:
        return "date" if self.partitioning == "day" else "month"


CUSTOMERS = LakeTable(
    "customers",
    pa.schema(
        [
            _key("customer_id"),
            _f("external_id", pa.string()),
            _f("email", pa.string(), False),
            _f("currency", DICT, False),
            _f("timezone", DICT, False),
            _f("country", DICT, False),
            _f("language", DICT, False),
            _f("billing_anchor_day", pa.int32()),
            _f("tax_rate_id", pa.int64()),
            _f("created_at", TS, False),
            # where the customer signed up from (null for customers created without it)
            _f("signup_channel", DICT),
            _f("signup_ip", pa.string()),
            _f("signup_device_id", pa.string()),
            _f("signup_ip_country", DICT),
            _f("event_timestamp", TS, False),
        ]
    ),
    "month",
    {"part": "customers"},
    description="one row per customer, as created (attributes that never change); read by id",
)

PAYMENT_METHODS = LakeTable(
    "payment_methods",
    pa.schema(
        [
            _key("payment_method_id"),
            _f("customer_id", pa.int64(), False),
            _f("brand", DICT, False),
            _f("bin", DICT, False),
            _f("exp_month", pa.int32(), False),
            _f("exp_year", pa.int32(), False),
            # the same card on two customers shares a fingerprint (never the card number)
            _f("fingerprint", pa.string(), False),
            _f("created_at", TS, False),
            _f("event_timestamp", TS, False),
        ]
    ),
    "month",
    {"part": "payment_methods"},
    description="one row per card, as attached (a replacement card is a new row); read by id",
)

SUBSCRIPTIONS = LakeTable(
    "subscriptions",
    pa.schema(
        [
            _key("subscription_id"),
            _f("customer_id", pa.int64(), False),
            # created, status_changed, plan_changed, plan_change_scheduled, cancel_scheduled, renewed
            _f("change", DICT, False),
            _f("reason", DICT),
            _f("status", DICT, False),
            _f("previous_status", DICT),
            _f("items", pa.list_(pa.field("item", ITEM, nullable=False))),
            _f("period_start", TS),
            _f("period_end", TS),
            _f("cancel_at_period_end", pa.bool_(), False),
            _f("currency", DICT, False),
            _f("tz_name", DICT, False),
            _f("months_per_period", pa.int32(), False),
            _f("started_at", TS, False),
            _f("trial_end", TS),
            _f("coupon_id", pa.int64()),
            _f("created_at", TS, False),
            _f("event_seq", pa.int64()),
            _f("event_timestamp", TS, False),
        ]
    ),
    "month",
    {"part": "outbox", "adopted": "subscriptions"},
    description="the history of each subscription: a row per change, with the whole state from then on",
)

INVOICES = LakeTable(
    "invoices",
    pa.schema(
        [
            _key("invoice_id"),
            _f("number", pa.string()),
            _f("customer_id", pa.int64(), False),
            _f("subscription_id", pa.int64()),
            _f("change", DICT, False),  # finalized, paid, voided, marked_uncollectible
            _f("status", DICT, False),  # open, paid, void, uncollectible: the status from then on
            _f("change_amount_minor", pa.int64(), False),
            _f("paid_with", DICT),
            _f("billing_reason", DICT, False),
            _f("currency", DICT, False),
            _f("period_start", TS),
            _f("period_end", TS),
            _f("subtotal_minor", pa.int64(), False),
            _f("discount_minor", pa.int64(), False),
            _f("tax_minor", pa.int64(), False),
            _f("tax_inclusive", pa.bool_(), False),
            _f("total_minor", pa.int64(), False),
            _f("credit_applied_minor", pa.int64(), False),
            _f("amount_due_minor", pa.int64(), False),
            _f("created_at", TS, False),
            _f("finalized_at", TS),
            _f("due_at", TS),
            *_EVENT,
        ]
    ),
    "day",
    description="a row per change of an invoice's state, with the amounts fixed at finalization",
)

INVOICE_LINES = LakeTable(
    "invoice_lines",
    pa.schema(
        [
            _key("invoice_id"),
            _f("position", pa.int32(), False),
            _f("customer_id", pa.int64(), False),
            _f("subscription_id", pa.int64()),
            _f("kind", DICT, False),
            _f("description", pa.string(), False),
            _f("price_id", pa.int64()),
            _f("quantity", pa.int64(), False),
            _f("period_start", TS),
            _f("period_end", TS),
            _f("amount_minor", pa.int64(), False),
            _f("discount_minor", pa.int64(), False),
            _f("tax_minor", pa.int64(), False),
            _f("taxable", pa.bool_(), False),
            _f("currency", DICT, False),
            *_EVENT,
        ]
    ),
    "day",
    description="the lines of every finalized invoice, stamped with the finalization",
)

PAYMENTS = LakeTable(
    "payments",
    pa.schema(
        [
            _key("payment_id"),
            _f("invoice_id", pa.int64(), False),
            _f("attempt_id", pa.int64()),
            _f("customer_id", pa.int64(), False),
            _f("method", DICT, False),
            _f("payment_method_id", pa.int64()),
            _f("amount_minor", pa.int64(), False),
            _f("currency", DICT, False),
            _f("gateway_reference", pa.string()),
            _f("created_at", TS, False),
            *_EVENT,
        ]
    ),
    "day",
    description="money received",
)

PAYMENT_ATTEMPTS = LakeTable(
    "payment_attempts",
    pa.schema(
        [
            _key("attempt_id"),
            _f("invoice_id", pa.int64(), False),
            _f("customer_id", pa.int64(), False),
            _f("payment_method_id", pa.int64()),
            _f("attempt_number", pa.int32(), False),
            _f("amount_minor", pa.int64(), False),
            _f("currency", DICT, False),
            _f("status", DICT, False),  # succeeded, failed
            _f("decline_code", DICT),
            _f("decline_type", DICT),  # soft, hard, ...
            _f("source", DICT, False),
            _f("scheduled_at", TS, False),
            _f("processed_at", TS),
            *_EVENT,
        ]
    ),
    "day",
    description="every payment attempt the gateway answered, with decline code and type",
)

REFUNDS = LakeTable(
    "refunds",
    pa.schema(
        [
            _key("refund_id"),
            _f("payment_id", pa.int64(), False),
            _f("invoice_id", pa.int64(), False),
            _f("customer_id", pa.int64(), False),
            _f("amount_minor", pa.int64(), False),
            _f("currency", DICT, False),
            _f("reason", DICT, False),
            _f("credit_note_id", pa.int64()),
            _f("created_at", TS, False),
            *_EVENT,
        ]
    ),
    "month",
    description="money given back",
)

CREDIT_NOTES = LakeTable(
    "credit_notes",
    pa.schema(
        [
            _key("credit_note_id"),
            _f("number", pa.string(), False),
            _f("invoice_id", pa.int64(), False),
            _f("customer_id", pa.int64(), False),
            _f("amount_minor", pa.int64(), False),
            _f("currency", DICT, False),
            _f("reason", DICT, False),
            _f("outcome", DICT, False),
            _f("refund_id", pa.int64()),
            _f("memo", pa.string(), False),
            _f("created_at", TS, False),
            *_EVENT,
        ]
    ),
    "month",
    description="corrections of finalized invoices",
)

CHARGEBACKS = LakeTable(
    "chargebacks",
    pa.schema(
        [
            _key("chargeback_id"),
            _f("payment_id", pa.int64(), False),
            _f("invoice_id", pa.int64(), False),
            _f("customer_id", pa.int64(), False),
            _f("change", DICT, False),  # opened, closed
            _f("status", DICT, False),  # open, won, lost
            _f("network_reference", pa.string(), False),
            _f("amount_minor", pa.int64(), False),
            _f("fee_minor", pa.int64(), False),
            _f("currency", DICT, False),
            _f("reason_code", DICT, False),
            _f("opened_at", TS, False),
            _f("closed_at", TS),
            *_EVENT,
        ]
    ),
    "month",
    description="a row when a chargeback opens and one when it closes",
)

DISPUTES = LakeTable(
    "disputes",
    pa.schema(
        [
            _key("dispute_id"),
            _f("customer_id", pa.int64(), False),
            _f("invoice_id", pa.int64()),
            _f("payment_id", pa.int64()),
            _f("change", DICT, False),  # opened, categorized, under_review, resolved, withdrawn
            _f("status", DICT, False),
            _f("category", DICT),
            _f("outcome", DICT),
            _f("amount_minor", pa.int64(), False),
            _f("currency", DICT, False),
            _f("message", pa.string(), False),  # the customer's own words
            _f("resolution_note", pa.string()),
            _f("opened_at", TS, False),
            _f("resolved_at", TS),
            *_EVENT,
        ]
    ),
    "month",
    description="a row per change of a dispute, with the customer's message",
)

DUNNING_ACTIONS = LakeTable(
    "dunning_actions",
    pa.schema(
        [
            _key("action_id"),
            _f("process_id", pa.int64(), False),
            _f("step", pa.int32(), False),
            _f("invoice_id", pa.int64(), False),
            _f("customer_id", pa.int64(), False),
            _f("subscription_id", pa.int64()),
            _f("action", DICT, False),
            _f("channel", DICT),
            _f("scheduled_at", TS, False),
            _f("executed_at", TS, False),
            _f("outcome", DICT, False),
            _f("attempt_id", pa.int64()),
            _f("amount_minor", pa.int64(), False),
            _f("currency", DICT, False),
            _f("policy", DICT, False),
            _f("decline_code", DICT),
            _f("day", pa.int32(), False),
            _f("event_timestamp", TS, False),
        ]
    ),
    "day",
    {"part": "dunning_actions"},
    description="every executed dunning action (append-only); read by id",
)

USAGE_BY_DAY = LakeTable(
    "usage_by_day",
    pa.schema(
        [
            _f("day", pa.date32(), False),  # the UTC day the usage occurred
            _f("customer_id", pa.int64(), False),
            _f("metric_code", DICT, False),
            _f("quantity", pa.int64(), False),  # sum of the events' values
            _f("events", pa.int64(), False),  # how many events
            _f("received_on", pa.date32(), False),  # the UTC day they were recorded
            _f("first_occurred_at", TS, False),
            _f("last_occurred_at", TS, False),
            _f("last_received_at", TS, False),
            _f("event_timestamp", TS, False),
        ]
    ),
    "day",
    {"part": "usage_events"},
    partition_column="day",
    description="usage summed per customer, metric, day of use and day of recording; read by id",
)

TABLES: dict[str, LakeTable] = {
    t.name: t
    for t in (
        CUSTOMERS,
        PAYMENT_METHODS,
        SUBSCRIPTIONS,
        INVOICES,
        INVOICE_LINES,
        PAYMENTS,
        PAYMENT_ATTEMPTS,
        REFUNDS,
        CREDIT_NOTES,
        CHARGEBACKS,
        DISPUTES,
        DUNNING_ACTIONS,
        USAGE_BY_DAY,
    )
}
