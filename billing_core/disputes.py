"""Disputes: a customer contests an invoice or a payment, in their own words.

Lifecycle (:data:`DISPUTE_LIFECYCLE`)::

    open ──review──► under_review ──resolve──► resolved
      │                   │
      ├──resolve──► resolved
      └──withdraw──► withdrawn ◄──withdraw──┘

A resolved dispute has an outcome: the customer got a refund or a credit, or the charge was
upheld; a chargeback on the payment is recorded apart (see payments).
"""

from __future__ import annotations

from enum import StrEnum

from billing_core.state_machine import StateMachine


class DisputeStatus(StrEnum):
    OPEN = "open"
    UNDER_REVIEW = "under_review"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"


class DisputeEvent(StrEnum):
    REVIEW = "review"
    RESOLVE = "resolve"
    WITHDRAW = "withdraw"


class DisputeOutcome(StrEnum):
    REFUNDED = "refunded"
    CREDITED = "credited"
    UPHELD = "upheld"  # the charge stands


class DisputeCategory(StrEnum):
    DUPLICATE_CHARGE = "duplicate_charge"
    UNRECOGNISED_OR_FRAUDULENT = "unrecognised_or_fraudulent"
    SERVICE_NOT_RECEIVED = "service_not_received"
    CANCELED_BUT_CHARGED = "canceled_but_charged"
    WRONG_AMOUNT = "wrong_amount"
    REFUND_NOT_RECEIVED = "refund_not_received"
    QUALITY = "quality"
    OTHER = "other"


DISPUTE_LIFECYCLE: StateMachine[DisputeStatus, DisputeEvent] = StateMachine(
    entity="dispute",
    states=DisputeStatus,
    events=DisputeEvent,
    transitions={
        (DisputeStatus.OPEN, DisputeEvent.REVIEW): DisputeStatus.UNDER_REVIEW,
        (DisputeStatus.OPEN, DisputeEvent.RESOLVE): DisputeStatus.RESOLVED,
        (DisputeStatus.OPEN, DisputeEvent.WITHDRAW): DisputeStatus.WITHDRAWN,
        (DisputeStatus.UNDER_REVIEW, DisputeEvent.RESOLVE): DisputeStatus.RESOLVED,
        (DisputeStatus.UNDER_REVIEW, DisputeEvent.WITHDRAW): DisputeStatus.WITHDRAWN,
    },
    terminal=frozenset({DisputeStatus.RESOLVED, DisputeStatus.WITHDRAWN}),
)

MAX_MESSAGE_LENGTH = 10_000
