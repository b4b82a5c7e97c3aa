"""Subscriptions: the lifecycle as a table, and the subscription's shape.

Lifecycle (:data:`SUBSCRIPTION_LIFECYCLE`)::

    trialing ─payment_succeeded─► active ─pause─► paused ─resume─► active
        │                           │  ▲
        └──payment_failed──► past_due ─┘ payment_succeeded
                               │
                               └─dunning_exhausted─► unpaid ─payment_succeeded─► active

    cancel: from trialing, active, past_due, paused and unpaid to canceled (terminal)

``renew`` (the billing run) and ``change_plan`` are allowed only where the table says so: a
canceled, paused or unpaid subscription is neither billed nor changed.

A subscription holds one or more items (a price and a quantity), all in the subscription's
currency and on the same interval. Add-ons on another interval are their own subscription, so
that the dunning of one never suspends another.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from billing_core.state_machine import StateMachine


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"
    UNPAID = "unpaid"


class SubscriptionEvent(StrEnum):
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    RENEW = "renew"
    CHANGE_PLAN = "change_plan"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    SCHEDULE_CANCEL = "schedule_cancel"
    DUNNING_EXHAUSTED = "dunning_exhausted"


_S = SubscriptionStatus
_E = SubscriptionEvent

SUBSCRIPTION_LIFECYCLE: StateMachine[SubscriptionStatus, SubscriptionEvent] = StateMachine(
    entity="subscription",
    states=SubscriptionStatus,
    events=SubscriptionEvent,
    transitions={
        (_S.TRIALING, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.TRIALING, _E.PAYMENT_FAILED): _S.PAST_DUE,
        (_S.TRIALING, _E.RENEW): _S.TRIALING,
        (_S.TRIALING, _E.CHANGE_PLAN): _S.TRIALING,
        (_S.TRIALING, _E.CANCEL): _S.CANCELED,
        (_S.TRIALING, _E.SCHEDULE_CANCEL): _S.TRIALING,
        (_S.ACTIVE, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.ACTIVE, _E.PAYMENT_FAILED): _S.PAST_DUE,
        (_S.ACTIVE, _E.RENEW): _S.ACTIVE,
        (_S.ACTIVE, _E.CHANGE_PLAN): _S.ACTIVE,
        (_S.ACTIVE, _E.PAUSE): _S.PAUSED,
        (_S.ACTIVE, _E.CANCEL): _S.CANCELED,
        (_S.ACTIVE, _E.SCHEDULE_CANCEL): _S.ACTIVE,
        (_S.PAST_DUE, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.PAST_DUE, _E.PAYMENT_FAILED): _S.PAST_DUE,
        (_S.PAST_DUE, _E.RENEW): _S.PAST_DUE,
        (_S.PAST_DUE, _E.CHANGE_PLAN): _S.PAST_DUE,
        (_S.PAST_DUE, _E.DUNNING_EXHAUSTED): _S.UNPAID,
        (_S.PAST_DUE, _E.CANCEL): _S.CANCELED,
        (_S.PAST_DUE, _E.SCHEDULE_CANCEL): _S.PAST_DUE,
        (_S.UNPAID, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.UNPAID, _E.PAYMENT_FAILED): _S.UNPAID,
        (_S.UNPAID, _E.CANCEL): _S.CANCELED,
        (_S.PAUSED, _E.RESUME): _S.ACTIVE,
        (_S.PAUSED, _E.CANCEL): _S.CANCELED,
        # a payment for an invoice issued before the pause (or the cancellation) may still land
        (_S.PAUSED, _E.PAYMENT_SUCCEEDED): _S.PAUSED,
        (_S.PAUSED, _E.PAYMENT_FAILED): _S.PAUSED,
    },
    terminal=frozenset({_S.CANCELED}),
)

#: statuses the billing run invoices
BILLABLE_STATUSES: tuple[SubscriptionStatus, ...] = tuple(
    state for state in SubscriptionStatus if SUBSCRIPTION_LIFECYCLE.can(state, _E.RENEW)
)


class SubscriptionItem(NamedTuple):
    id: int
    price_id: int
    quantity: int


class Subscription(NamedTuple):
    """A subscription as stored (immutable; use cases write changes back as new rows/values)."""

    id: int
    customer_id: int
    status: SubscriptionStatus
    currency: str
    tz_name: str
    months_per_period: int
    started_at: datetime
    anchor_at: datetime
    next_period_index: int
    next_invoice_at: datetime
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    paused_at: datetime | None
    coupon_id: int | None
    discounted_invoices: int
    usage_billed_until: datetime
    items: tuple[SubscriptionItem, ...]
