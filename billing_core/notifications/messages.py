"""What each outbox event says to the customer: pure planning, no I/O.

==================  ==========================================  =========================================
event               condition                                   message
==================  ==========================================  =========================================
payment.failed      every failed attempt                        email ``payment_failed``: what to do
                                                                depends on the decline (below)
payment.succeeded   the invoice had a failed attempt before     email ``payment_recovered``: a receipt,
                                                                the account is in good standing again
dunning.action      ``remind`` / ``final_notice``               ``dunning_reminder`` /
                                                                ``dunning_final_notice`` on the action's
                                                                channel: email; SMS (email when the
                                                                customer gave no phone number); call
                                                                (a call task for a person)
dunning.action      ``suspend`` (outcome ``suspended``)         email ``subscription_suspended``
dunning.action      ``write_off``                               email ``invoice_written_off``
dunning.action      ``retry``                                   nothing: the payment events cover it
invoice.finalized   only when configured; amount due > 0        email ``invoice_finalized``
==================  ==========================================  =========================================

What a failed payment asks of the customer: ``expired_card`` (and any ``needs_new_card``
decline) asks for a new card (``update_card``); a soft decline such as ``insufficient_funds``
says that the payment will be tried again (``will_retry``); a hard decline asks for another card
or another way to pay (``use_another_card``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from billing_core.notifications.render import Formatter

SUPPORTED_EVENTS = ("dunning.action", "payment.failed", "payment.succeeded", "invoice.finalized")
#: ``invoice.finalized`` is left out: a billing run must not queue an email per invoice unless asked
DEFAULT_EVENTS = frozenset({"dunning.action", "payment.failed", "payment.succeeded"})


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    CALL = "call"


class Kind(StrEnum):
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_RECOVERED = "payment_recovered"
    DUNNING_REMINDER = "dunning_reminder"
    DUNNING_FINAL_NOTICE = "dunning_final_notice"
    SUBSCRIPTION_SUSPENDED = "subscription_suspended"
    INVOICE_WRITTEN_OFF = "invoice_written_off"
    INVOICE_FINALIZED = "invoice_finalized"


_DUNNING_KINDS = {
    "remind": Kind.DUNNING_REMINDER,
    "final_notice": Kind.DUNNING_FINAL_NOTICE,
    "suspend": Kind.SUBSCRIPTION_SUSPENDED,
    "write_off": Kind.INVOICE_WRITTEN_OFF,
}
#: outcomes of a dunning action that changed nothing the customer needs to hear about: the
#: subscription was suspended earlier (and they were told then), or cannot be suspended
_NOTHING_HAPPENED = frozenset({"already_suspended", "not_suspended"})
#: kinds that go on the channel the dunning engine chose; the others are always emails
_ON_CHOSEN_CHANNEL = {Kind.DUNNING_REMINDER, Kind.DUNNING_FINAL_NOTICE}

#: which payload field holds the amount a message quotes
_AMOUNT_FIELD = {
    "payment.failed": "amount_minor",
    "payment.succeeded": "amount_minor",
    "dunning.action": "amount_remaining_minor",
    "invoice.finalized": "amount_due_minor",
}

_CARD_BRANDS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "jcb": "JCB",
    "unionpay": "UnionPay",
}


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    seq: int
    occurred_at: datetime
    event_type: str
    payload: dict[str, Any]

    @property
    def customer_id(self) -> int | None:
        return _int(self.payload.get("customer_id"))

    @property
    def invoice_id(self) -> int | None:
        return _int(self.payload.get("invoice_id"))


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    id: int
    email: str
    name: str
    language: str
    timezone: str
    country: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    id: int
    number: str | None
    currency: str
    due_at: datetime | None
    amount_remaining_minor: int


@dataclass(slots=True)
class Facts:
    """What the events of a page refer to, read in one query per table."""

    customers: dict[int, CustomerFacts] = field(default_factory=dict)
    invoices: dict[int, InvoiceFacts] = field(default_factory=dict)
    cards: dict[int, tuple[str, str]] = field(default_factory=dict)  # payment method: (brand, last4)
    invoices_with_failures: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Planned:
    """One message (or call task) an event asks for."""

    event: OutboxEvent
    kind: Kind
    channel: Channel
    customer: CustomerFacts
    invoice_id: int | None
    amount_minor: int
    currency: str

    @classmethod
    def of(
        cls, event: OutboxEvent, kind: Kind, channel: Channel, customer: CustomerFacts, facts: Facts
    ) -> Planned:
        payload = event.payload
        amount = payload.get(_AMOUNT_FIELD.get(event.event_type, "amount_minor"))
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError(f"event {event.seq}: no integer amount in {event.event_type}")
        code = payload.get("currency")
        if not isinstance(code, str):
            raise ValueError(f"event {event.seq}: no currency in {event.event_type}")
        invoice_id = event.invoice_id
        # a reference the database does not know is dropped rather than refused by a foreign key
        known_invoice = invoice_id if invoice_id in facts.invoices else None
        return cls(event, kind, channel, customer, known_invoice, amount, code)


def needs_failure_history(event: OutboxEvent) -> bool:
    """A success is news only after a failure: attempt 1 cannot follow one on its invoice."""
    number = event.payload.get("attempt_number")
    return event.event_type == "payment.succeeded" and isinstance(number, int) and number > 1


def plan(event: OutboxEvent, facts: Facts) -> list[Planned]:
    """The messages ``event`` asks for (none when it asks for none or its customer is unknown).

    Raises ``ValueError`` (or ``KeyError``, ``TypeError``) for a payload that breaks its
    contract; the dispatcher counts such events as skipped.
    """
    customer_id = event.customer_id
    customer = facts.customers.get(customer_id) if customer_id is not None else None
    if customer is None:
        return []
    payload = event.payload
    if event.event_type == "payment.failed":
        return [Planned.of(event, Kind.PAYMENT_FAILED, Channel.EMAIL, customer, facts)]
    if event.event_type == "payment.succeeded":
        if needs_failure_history(event) and event.invoice_id in facts.invoices_with_failures:
            return [Planned.of(event, Kind.PAYMENT_RECOVERED, Channel.EMAIL, customer, facts)]
        return []
    if event.event_type == "invoice.finalized":
        if int(payload.get("amount_due_minor") or 0) > 0:
            return [Planned.of(event, Kind.INVOICE_FINALIZED, Channel.EMAIL, customer, facts)]
        return []
    if event.event_type == "dunning.action":
        kind = _DUNNING_KINDS.get(str(payload.get("action")))
        if kind is None or payload.get("outcome") in _NOTHING_HAPPENED:
            return []
        channel = Channel.EMAIL
        if kind in _ON_CHOSEN_CHANNEL and payload.get("channel") is not None:
            channel = Channel(payload["channel"])
            if channel is Channel.SMS and not customer.phone:
                channel = Channel.EMAIL
        return [Planned.of(event, kind, channel, customer, facts)]
    return []


def decline_reason(decline_code: object, decline_type: object) -> str:
    """What a failed payment asks of the customer: update_card, will_retry or use_another_card."""
    if decline_code == "expired_card" or decline_type == "needs_new_card":
        return "update_card"
    if decline_type == "soft":
        return "will_retry"
    return "use_another_card"


def card_label(card: tuple[str, str] | None) -> str | None:
    """``("visa", "4242")`` as ``Visa •••• 4242``."""
    if card is None:
        return None
    brand, last4 = card
    name = _CARD_BRANDS.get(brand)
    return f"{name} •••• {last4}" if name else f"•••• {last4}"


def message_values(
    planned: Planned, fmt: Formatter, facts: Facts, *, company: str, name: str | None = None
) -> dict[str, Any]:
    """The values a template of ``planned.kind`` may use, formatted for the customer."""
    event, payload = planned.event, planned.event.payload
    invoice = facts.invoices.get(planned.invoice_id) if planned.invoice_id is not None else None
    number = payload.get("invoice_number") or (invoice.number if invoice else None)
    values: dict[str, Any] = {
        "dir": fmt.direction,
        "company": company,
        "name": name if name is not None else planned.customer.name,
        "amount": fmt.money(planned.amount_minor, planned.currency),
        "invoice_number": number,
        "date": fmt.date(event.occurred_at),
        "due_date": fmt.date(invoice.due_at) if invoice and invoice.due_at else None,
    }
    if planned.kind is Kind.PAYMENT_FAILED:
        values["reason"] = decline_reason(payload.get("decline_code"), payload.get("decline_type"))
        values["decline_code"] = payload.get("decline_code")
        values["attempt_number"] = _int(payload.get("attempt_number")) or 1
        method = _int(payload.get("payment_method_id"))
        values["card"] = card_label(facts.cards.get(method) if method is not None else None)
    elif planned.kind is Kind.PAYMENT_RECOVERED:
        values["attempt_number"] = _int(payload.get("attempt_number")) or 1
    elif event.event_type == "dunning.action":
        values["action"] = payload.get("action")
        values["day"] = _int(payload.get("day"))
    return values


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def payload_ids(events: Iterable[OutboxEvent], key: str, *, types: Collection[str] | None = None) -> set[int]:
    """The integer ids under ``key`` in the payloads of ``events`` (of the given types, if any)."""
    ids = set()
    for event in events:
        if types is not None and event.event_type not in types:
            continue
        value = _int(event.payload.get(key))
        if value is not None:
            ids.add(value)
    return ids
