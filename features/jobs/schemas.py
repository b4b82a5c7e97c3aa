"""The feature tables: their entities, columns, types, allowed nulls and ranges.

Each table is declared once, here: the jobs write exactly these columns (in this order), the Feast
feature views are derived from them (``features/repo/feature_views.py``), the data tests check
every table against them, and ``docs/features.md`` documents every column (a test keeps the two in
step).

Every table has its entity key columns first, then ``event_timestamp``: the instant from which the
row's values hold, until the entity's next row. ``(keys, event_timestamp)`` is unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
I32 = pa.int32()
I64 = pa.int64()
F64 = pa.float64()
STR = pa.string()
BOOL = pa.bool_()


@dataclass(frozen=True)
class Column:
    """A feature: its type, whether it may be null, its range and what it means."""

    name: str
    type: pa.DataType
    meaning: str
    #: the lake tables it is computed from
    source: str
    #: the window it looks back over ("" when it is a state as of the row's instant)
    window: str = ""
    nullable: bool = True
    #: inclusive bounds checked by the data tests (None: unbounded)
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class Key:
    """An entity key column of a table (never null)."""

    name: str
    type: pa.DataType
    #: the Feast entity it joins on
    entity: str


@dataclass(frozen=True)
class FeatureTable:
    name: str
    keys: tuple[Key, ...]
    columns: tuple[Column, ...]
    description: str
    #: how long a row stays valid without a newer one (None: until the entity's next row). Recoup's
    #: tables need none: a window's count drops by a row of its own when an event leaves it
    ttl: timedelta | None = None
    #: columns that exist only when the lake has optional columns (see features.jobs.lake)
    optional: tuple[str, ...] = field(default=())

    @property
    def key_names(self) -> list[str]:
        return [k.name for k in self.keys]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(k.name, k.type, nullable=False) for k in self.keys]
            + [pa.field("event_timestamp", TS, nullable=False)]
            + [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns]
        )

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


CUSTOMER = Key("customer_id", I64, "customer")
INVOICE = Key("invoice_id", I64, "invoice")
DISPUTE = Key("dispute_id", I64, "dispute")

_INV = "invoices"
_ATT = "payment_attempts"

# ------------------------------------------------------------------ customer payment behaviour


def _lateness(days: int) -> tuple[Column, ...]:
    w = f"{days} days"
    return (
        Column(f"invoices_paid_{days}d", I32, "invoices paid in the window", _INV, w, False, 0),
        Column(
            f"late_ratio_{days}d",
            F64,
            "share of the invoices paid in the window that were paid after their due date "
            "(null when none was paid)",
            _INV,
            w,
            lo=0,
            hi=1,
        ),
        Column(
            f"mean_days_late_{days}d",
            F64,
            "mean days from due date to payment of the invoices paid in the window (0 when on time)",
            _INV,
            w,
            lo=0,
        ),
        Column(
            f"max_days_late_{days}d",
            F64,
            "the most days from due date to payment among the invoices paid in the window",
            _INV,
            w,
            lo=0,
        ),
    )


CUSTOMER_PAYMENT = FeatureTable(
    "customer_payment",
    (CUSTOMER,),
    (
        Column(
            "currency",
            STR,
            "the customer's currency (every amount below is in its minor units)",
            "customers",
            nullable=False,
        ),
        Column("country", STR, "the customer's billing country", "customers", nullable=False),
        Column(
            "signup_at",
            TS,
            "when the customer was created (tenure is computed from it at request time)",
            "customers",
            nullable=False,
        ),
        Column(
            "mrr_minor",
            F64,
            "monthly recurring revenue: the last cycle invoice of each active or past-due subscription (subtotal less discount) per month of its period",
            "subscriptions, invoices",
            nullable=False,
            lo=0,
        ),
        Column(
            "active_subscriptions",
            I32,
            "subscriptions active or past due",
            "subscriptions",
            nullable=False,
            lo=0,
        ),
        Column("invoices_total", I32, "invoices finalized so far", _INV, "since signup", False, 0),
        Column("open_invoices", I32, "finalized invoices still open", _INV, nullable=False, lo=0),
        Column(
            "open_balance_minor",
            I64,
            "amount due on the open invoices (as fixed at finalization)",
            _INV,
            nullable=False,
            lo=0,
        ),
        Column("overdue_invoices", I32, "open invoices past their due date", _INV, nullable=False, lo=0),
        Column(
            "overdue_balance_minor",
            I64,
            "amount due on the open invoices past their due date",
            _INV,
            nullable=False,
            lo=0,
        ),
        Column(
            "median_invoice_minor",
            F64,
            "median amount due of the invoices finalized so far (null before the first)",
            _INV,
            "since signup",
            lo=0,
        ),
        *_lateness(30),
        *_lateness(90),
        *_lateness(365),
        Column("payments_total", I32, "successful payment attempts so far", _ATT, "since signup", False, 0),
        Column(
            "failed_attempts_total", I32, "declined payment attempts so far", _ATT, "since signup", False, 0
        ),
        Column(
            "failed_attempts_30d", I32, "declined payment attempts in the window", _ATT, "30 days", False, 0
        ),
        Column(
            "last_decline_code",
            STR,
            "decline code of the latest declined attempt (null if none)",
            _ATT,
            "since signup",
        ),
        Column(
            "last_decline_type",
            STR,
            "soft, hard or needs_new_card, of the latest declined attempt",
            _ATT,
            "since signup",
        ),
        Column("disputes_total", I32, "disputes opened so far", "disputes", "since signup", False, 0),
        Column("open_disputes", I32, "disputes open or under review", "disputes", nullable=False, lo=0),
        Column(
            "chargebacks_total", I32, "chargebacks opened so far", "chargebacks", "since signup", False, 0
        ),
        Column(
            "chargebacks_lost",
            I32,
            "chargebacks closed as lost so far",
            "chargebacks",
            "since signup",
            False,
            0,
        ),
    ),
    "a customer's payment behaviour: a row whenever one of its values changes (an invoice, a "
    "payment, a due date passing, a window moving past an old event...)",
)

# ----------------------------------------------------------------------------- invoice context

INVOICE_CONTEXT = FeatureTable(
    "invoice_context",
    (INVOICE,),
    (
        Column("amount_due_minor", I64, "amount due at finalization", _INV, nullable=False, lo=0),
        Column("total_minor", I64, "invoice total", _INV, nullable=False),
        Column("tax_minor", I64, "tax on the invoice", _INV, nullable=False),
        Column("discount_minor", I64, "discount on the invoice", _INV, nullable=False, lo=0),
        Column("invoice_currency", STR, "currency of the invoice", _INV, nullable=False),
        Column(
            "billing_reason", STR, "subscription_cycle, subscription_final, manual...", _INV, nullable=False
        ),
        Column("is_first_invoice", BOOL, "the customer's first finalized invoice", _INV, nullable=False),
        Column(
            "amount_over_median",
            F64,
            "amount due over the median of the customer's earlier invoices (null for the first, or a zero median)",
            _INV,
            "since signup",
            lo=0,
        ),
        Column("days_to_due", F64, "days from finalization to the due date (null without a due date)", _INV),
        Column("due_at", TS, "the due date", _INV),
        Column(
            "payment_method",
            STR,
            "card brand when the lake has payment methods, else 'card' if the customer paid or was charged by card before, else 'none'",
            "payment_attempts, payment_methods",
            nullable=False,
        ),
        Column(
            "card_expires_at",
            TS,
            "end of the expiry month of the customer's latest card (null until the lake exports payment methods)",
            "payment_methods",
        ),
        Column(
            "card_expires_in_days",
            F64,
            "days from finalization to the card's expiry (negative when expired)",
            "payment_methods",
        ),
    ),
    "an invoice as finalized: one row per invoice, at its finalization",
    optional=("card_expires_at", "card_expires_in_days"),
)

# ----------------------------------------------------------------------------- dunning context

DUNNING_CONTEXT = FeatureTable(
    "dunning_context",
    (INVOICE,),
    (
        Column(
            "attempts",
            I32,
            "payment attempts answered for the invoice so far (the next one is number attempts + 1)",
            _ATT,
            nullable=False,
            lo=0,
        ),
        Column("failed_attempts", I32, "declined attempts on the invoice", _ATT, nullable=False, lo=0),
        Column("first_failure_at", TS, "the invoice's first decline", _ATT),
        Column("last_failure_at", TS, "the invoice's latest decline", _ATT),
        Column(
            "hours_since_failure",
            F64,
            "hours from the latest decline to this row (the request-time value is dunning_request:hours_since_failure)",
            _ATT,
            lo=0,
        ),
        Column("decline_code", STR, "code of the latest decline", _ATT),
        Column("decline_type", STR, "soft, hard or needs_new_card, of the latest decline", _ATT),
        Column(
            "failure_day_of_month", I32, "day of the month (UTC) of the latest decline", _ATT, lo=1, hi=31
        ),
        Column("failure_hour", I32, "hour (UTC) of the latest decline", _ATT, lo=0, hi=23),
        Column("retries", I32, "retries the dunning engine made", "dunning_actions", nullable=False, lo=0),
        Column(
            "reminders_sent",
            I32,
            "reminders and final notices sent, any channel",
            "dunning_actions",
            nullable=False,
            lo=0,
        ),
        Column("reminders_email", I32, "of which by email", "dunning_actions", nullable=False, lo=0),
        Column("reminders_sms", I32, "of which by SMS", "dunning_actions", nullable=False, lo=0),
        Column("reminders_call", I32, "of which by a call task", "dunning_actions", nullable=False, lo=0),
        Column("last_reminder_at", TS, "when the latest reminder was sent", "dunning_actions"),
        Column("last_reminder_channel", STR, "its channel", "dunning_actions"),
        Column("final_notice_sent", BOOL, "a final notice was sent", "dunning_actions", nullable=False),
        Column(
            "suspended",
            BOOL,
            "the dunning engine suspended the subscription",
            "dunning_actions",
            nullable=False,
        ),
        Column(
            "dunning_day",
            I32,
            "whole days since the dunning process started, at its latest action",
            "dunning_actions",
            lo=0,
        ),
    ),
    "an invoice in collections: a row at every attempt answered and every dunning action",
)

# --------------------------------------------------------------------------------- usage trend

_USE = "usage_by_day"
USAGE_TREND = FeatureTable(
    "usage_trend",
    (CUSTOMER,),
    (
        Column("usage_1d", F64, "units of metered usage on the last whole UTC day", _USE, "1 day", False, 0),
        Column("usage_7d", F64, "units over the last 7 whole days", _USE, "7 days", False, 0),
        Column("usage_30d", F64, "units over the last 30 whole days", _USE, "30 days", False, 0),
        Column("usage_prev_30d", F64, "units over the 30 days before those", _USE, "days 31 to 60", False, 0),
        Column("active_days_30d", I32, "days with usage among the last 30", _USE, "30 days", False, 0, 30),
        Column(
            "usage_slope_7d",
            F64,
            "least-squares slope of daily units over the last 7 days (units per day; days without usage count as 0)",
            _USE,
            "7 days",
            False,
        ),
        Column("usage_slope_30d", F64, "the same over the last 30 days", _USE, "30 days", False),
        Column(
            "usage_zscore_1d",
            F64,
            "the last day's units against the 28 days before it: (x - mean) / standard deviation (null when constant)",
            _USE,
            "29 days",
        ),
    ),
    "a customer's metered usage, as known at each UTC midnight: a day counts the usage recorded by "
    "then, so usage that arrives late changes the next midnight's row, never an earlier one",
)

# ------------------------------------------------------------------------------- churn signals

_SUB = "subscriptions"
CHURN_SIGNALS = FeatureTable(
    "churn_signals",
    (CUSTOMER,),
    (
        Column(
            "seats",
            I64,
            "units (seats) of the active subscriptions' items (null when an item list is unknown)",
            _SUB,
            lo=0,
        ),
        Column(
            "plan_changes_90d", I32, "plan changes of the customer's subscriptions", _SUB, "90 days", False, 0
        ),
        Column(
            "seat_changes_90d",
            I32,
            "plan changes that changed the number of units",
            _SUB,
            "90 days",
            False,
            0,
        ),
        Column(
            "price_changes_90d",
            I32,
            "renewals whose recurring price per unit differed from the previous renewal's",
            "invoice_lines",
            "90 days",
            False,
            0,
        ),
        Column(
            "last_price_change_pct",
            F64,
            "relative change of the price per unit at the latest price change in the window (null if none)",
            "invoice_lines",
            "90 days",
        ),
        Column(
            "cancel_scheduled",
            I32,
            "subscriptions set to cancel at the end of their period",
            _SUB,
            nullable=False,
            lo=0,
        ),
        Column("past_due_subscriptions", I32, "subscriptions past due or unpaid", _SUB, nullable=False, lo=0),
        Column("disputes_90d", I32, "disputes opened", "disputes", "90 days", False, 0),
        Column(
            "usage_decline_30d",
            F64,
            "1 - usage of the last 30 days over usage of the 30 before (null when there was none before)",
            _USE,
            "60 days",
            hi=1,
        ),
    ),
    "signals that a customer may leave: a row whenever one changes (open disputes are in customer_payment)",
)

# ------------------------------------------------------------------------------ fraud velocity


def _velocity(
    name: str, prefix: str, what: str, key: Key, source: str, optional: bool = False
) -> FeatureTable:
    return FeatureTable(
        name,
        (key,),
        (
            Column(f"{prefix}_signups_1h", I32, f"signups with this {what}", source, "1 hour", False, 0),
            Column(f"{prefix}_signups_24h", I32, f"signups with this {what}", source, "24 hours", False, 0),
            Column(
                f"{prefix}_attempts_1h",
                I32,
                f"payment attempts by customers with this {what}",
                source + ", payment_attempts",
                "1 hour",
                False,
                0,
            ),
            Column(
                f"{prefix}_attempts_24h",
                I32,
                f"payment attempts by customers with this {what}",
                source + ", payment_attempts",
                "24 hours",
                False,
                0,
            ),
            Column(
                f"{prefix}_failed_attempts_24h",
                I32,
                f"declined attempts by customers with this {what}",
                source + ", payment_attempts",
                "24 hours",
                False,
                0,
            ),
        ),
        f"signup and payment velocity per {what}: a row at every signup and attempt and when one "
        "leaves a window"
        + (" (empty until the lake's customers carry the signup columns)" if optional else ""),
    )


EMAIL_DOMAIN = Key("email_domain", STR, "email_domain")
CARD_BIN = Key("card_bin", STR, "card_bin")
DEVICE = Key("device_id", STR, "device")
SIGNUP_IP = Key("signup_ip", STR, "signup_ip")

EMAIL_DOMAIN_VELOCITY = _velocity(
    "email_domain_velocity", "domain", "email domain", EMAIL_DOMAIN, "customers"
)
BIN_VELOCITY = _velocity(
    "bin_velocity", "bin", "card BIN (a signup is a card's first appearance)", CARD_BIN, "payment_methods"
)
DEVICE_VELOCITY = _velocity(
    "device_velocity", "device", "signup device", DEVICE, "customers.signup_device_id", optional=True
)
IP_VELOCITY = _velocity(
    "ip_velocity", "ip", "signup IP address", SIGNUP_IP, "customers.signup_ip", optional=True
)

PAYMENT_RISK = FeatureTable(
    "payment_risk",
    (CUSTOMER,),
    (
        Column(
            "customer_email_domain",
            STR,
            "domain of the customer's email address",
            "customers",
            nullable=False,
        ),
        Column(
            "signup_channel",
            STR,
            "channel the customer signed up through (null until the lake carries it)",
            "customers.signup_channel",
        ),
        Column(
            "country_mismatch",
            BOOL,
            "the billing country differs from the signup IP's or the card's country (null while neither is known)",
            "customers, payment_methods",
        ),
        Column("attempts_1h", I32, "payment attempts of the customer", _ATT, "1 hour", False, 0),
        Column("attempts_24h", I32, "payment attempts of the customer", _ATT, "24 hours", False, 0),
        Column(
            "payment_methods_used",
            I32,
            "distinct payment methods the customer's attempts used",
            _ATT,
            "since signup",
            False,
            0,
        ),
        Column(
            "new_payment_method",
            BOOL,
            "the latest attempt used a payment method none of the customer's earlier attempts used",
            _ATT,
            nullable=False,
        ),
        Column(
            "attempt_amount_mean",
            F64,
            "mean amount of the customer's attempts so far",
            _ATT,
            "since signup",
            lo=0,
        ),
        Column(
            "attempt_amount_std",
            F64,
            "population standard deviation of those amounts",
            _ATT,
            "since signup",
            lo=0,
        ),
        Column(
            "last_amount_zscore",
            F64,
            "the latest attempt's amount against the customer's earlier attempts (null before two earlier attempts or when they were all equal)",
            _ATT,
            "since signup",
        ),
    ),
    "a customer's payment risk profile: a row at signup, at every attempt, and when an attempt "
    "leaves a window",
    optional=("signup_channel", "country_mismatch"),
)

# ---------------------------------------------------------------- real-time counters (pushed)

CUSTOMER_REALTIME = FeatureTable(
    "customer_realtime",
    (CUSTOMER,),
    (
        Column(
            "failed_attempts_24h",
            I32,
            "declined payment attempts of the customer (kept fresh online by `recoup features push`)",
            _ATT,
            "24 hours",
            False,
            0,
        ),
    ),
    "failed attempts per customer over the last 24 hours; the push consumer writes the same "
    "values online as payments happen",
)
BIN_REALTIME = FeatureTable(
    "bin_realtime",
    (CARD_BIN,),
    (
        Column(
            "bin_attempts_last_hour",
            I32,
            "payment attempts on cards with this BIN (kept fresh online by `recoup features push`)",
            "payment_attempts, payment_methods",
            "1 hour",
            False,
            0,
        ),
    ),
    "attempts per card BIN over the last hour; the push consumer writes the same values online",
)

# ----------------------------------------------------------------------------- dispute context

DISPUTE_CONTEXT = FeatureTable(
    "dispute_context",
    (DISPUTE,),
    (
        Column("dispute_amount_minor", I64, "amount disputed", "disputes", nullable=False, lo=0),
        Column("dispute_currency", STR, "its currency", "disputes", nullable=False),
        Column("message", STR, "the customer's own words", "disputes", nullable=False),
        Column("message_length", I32, "characters in the message", "disputes", nullable=False, lo=0),
        Column(
            "amount_over_invoice",
            F64,
            "amount disputed over the invoice's total (null without an invoice)",
            "disputes, invoices",
            lo=0,
        ),
        Column(
            "days_since_invoice",
            F64,
            "days from the invoice's finalization to the dispute",
            "disputes, invoices",
            lo=0,
        ),
        Column(
            "days_since_payment",
            F64,
            "days from the invoice's latest payment to the dispute",
            "payments",
            lo=0,
        ),
        Column(
            "payments_on_invoice",
            I32,
            "payments received for the invoice (more than one suggests a duplicate charge)",
            "payments",
            nullable=False,
            lo=0,
        ),
        Column(
            "refunded_on_invoice_minor",
            I64,
            "refunded on the invoice before the dispute",
            "refunds",
            nullable=False,
            lo=0,
        ),
        Column(
            "credit_notes_on_invoice",
            I32,
            "credit notes on the invoice before the dispute",
            "credit_notes",
            nullable=False,
            lo=0,
        ),
        Column(
            "subscription_status",
            STR,
            "status of the invoice's subscription when the dispute opened (null without one)",
            _SUB,
        ),
        Column(
            "subscription_cancel_scheduled", BOOL, "that subscription was set to cancel at period end", _SUB
        ),
        Column(
            "customer_disputes_before",
            I32,
            "the customer's earlier disputes",
            "disputes",
            nullable=False,
            lo=0,
        ),
    ),
    "a dispute as opened: one row per dispute, at its opening",
)

TABLES: dict[str, FeatureTable] = {
    t.name: t
    for t in (
        CUSTOMER_PAYMENT,
        INVOICE_CONTEXT,
        DUNNING_CONTEXT,
        USAGE_TREND,
        CHURN_SIGNALS,
        EMAIL_DOMAIN_VELOCITY,
        BIN_VELOCITY,
        DEVICE_VELOCITY,
        IP_VELOCITY,
        PAYMENT_RISK,
        CUSTOMER_REALTIME,
        BIN_REALTIME,
        DISPUTE_CONTEXT,
    )
}
