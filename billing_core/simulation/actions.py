"""What many customers do on one day, written in bulk exactly as the use cases would leave it.

The runner acts for thousands of customers a day: cards added after a reminder (or by an account
updater, or by an attacker), invoices paid, subscriptions canceled at the period end, plan changes
scheduled after a price increase. Calling a use case per customer costs a transaction each; these
functions write the same rows and the same outbox events, in the same order, inside the caller's
transaction:

======================  ====================================================================
function                the use case it writes as
======================  ====================================================================
:func:`add_cards`       ``add_payment_method`` (the card as the default, or kept aside)
:func:`schedule_payments`  ``pay_invoice``'s first half (``schedule_attempt``, source ``manual``);
                        send the attempts after the commit with ``collect_payments``
:func:`schedule_cancels`   ``cancel_subscription(at_period_end=True)``
:func:`schedule_plan_changes`  ``change_plan(effective="period_end")``
:func:`open_disputes`   ``open_dispute`` (against a payment)
:func:`resolve_disputes`  ``resolve_dispute``
:func:`record_chargebacks`  ``record_chargeback``
:func:`close_chargebacks`  ``close_chargeback``
======================  ====================================================================

Where a use case would refuse (an invoice already paid, a subscription the lifecycle does not let
be canceled), the row is skipped rather than the whole batch refused: the customer finds nothing
to do. ``tests/simulation/test_signups.py`` compares each function with its use case.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from billing_core.context import Tx
from billing_core.customers import validate_card
from billing_core.db.types import parse_instant_column
from billing_core.disputes import (
    DISPUTE_LIFECYCLE,
    MAX_MESSAGE_LENGTH,
    DisputeEvent,
    DisputeOutcome,
    DisputeStatus,
)
from billing_core.errors import InvalidInput, NotFound
from billing_core.invoice_writer import attempt_key
from billing_core.invoices import InvoiceStatus
from billing_core.money import check_minor
from billing_core.payments import ChargebackStatus
from billing_core.subscriptions import SUBSCRIPTION_LIFECYCLE, SubscriptionEvent, SubscriptionStatus

_CHUNK = 500


class CardToAdd(NamedTuple):
    customer_id: int
    brand: str
    bin: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str | None = None
    make_default: bool = True


class Scheduled(NamedTuple):
    """An attempt queued by :func:`schedule_payments`."""

    attempt_id: int
    invoice_id: int
    attempt_number: int
    idempotency_key: str


class Payment(NamedTuple):
    """An invoice to pay now, with the customer's default card or the card given."""

    invoice_id: int
    payment_method_id: int | None = None


def _rows_by_id(tx: Tx, query: str, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    found: dict[int, tuple[Any, ...]] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row in tx.bulk.query(query.format(marks=marks), chunk):
            found[row[0]] = row
    return found


def add_cards(tx: Tx, cards: Sequence[CardToAdd]) -> list[int]:
    """Attach ``cards`` (in order) as ``add_payment_method`` would; returns their ids."""
    if not cards:
        return []
    for index, card in enumerate(cards):
        try:
            validate_card(
                brand=card.brand,
                bin=card.bin,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
            )
        except InvalidInput as error:
            raise InvalidInput(f"cards[{index}].{error.field}", error.expected, error.got) from error
    known = _rows_by_id(tx, "SELECT id FROM customers WHERE id IN ({marks})", [c.customer_id for c in cards])
    for index, card in enumerate(cards):
        if card.customer_id not in known:
            raise NotFound(f"cards[{index}].customer_id", "customer", card.customer_id)
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    ids = bulk.reserve_ids("payment_methods", len(cards))
    rows: list[tuple[Any, ...]] = []
    defaults: list[tuple[Any, ...]] = []
    for pm_id, card in zip(ids, cards, strict=True):
        fingerprint = (
            card.fingerprint
            or hashlib.sha256(
                f"{card.customer_id}:{card.bin}:{card.last4}:{card.exp_month}:{card.exp_year}".encode()
            ).hexdigest()[:32]
        )
        rows.append(
            (pm_id, card.customer_id, card.brand, card.bin, card.last4, card.exp_month, card.exp_year,
             fingerprint, now_s)
        )  # fmt: skip
        if card.make_default:
            defaults.append((pm_id, now_s, card.customer_id))
        tx.emit(
            "payment_method.attached", "customer", card.customer_id, customer_id=card.customer_id,
            payment_method_id=pm_id, brand=card.brand, bin=card.bin, last4=card.last4,
            exp_month=card.exp_month, exp_year=card.exp_year, default=card.make_default,
        )  # fmt: skip
    bulk.insert(
        "payment_methods",
        ("id", "customer_id", "brand", "bin", "last4", "exp_month", "exp_year", "fingerprint", "created_at"),
        rows,
    )
    bulk.executemany(
        "UPDATE customers SET default_payment_method_id = ?, updated_at = ? WHERE id = ?", defaults
    )
    return ids


_PAYABLE = (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value)


def schedule_payments(
    tx: Tx, payments: Sequence[Payment], *, source: str = "manual"
) -> list[Scheduled | None]:
    """Queue an attempt for each invoice's remaining amount, as ``pay_invoice`` does before it
    sends it; returns the attempts (None where there was nothing to pay: the invoice is not open
    or uncollectible, owes nothing, has an attempt pending, or the customer has no card).

    Send them after the commit: ``collect_payments(ctx, attempt_ids=[...])``. An invoice named
    twice is scheduled once.
    """
    if not payments:
        return []
    invoices = _rows_by_id(
        tx,
        "SELECT i.id, i.status, i.amount_remaining_minor, i.currency, i.customer_id, c.default_payment_method_id,"
        " (SELECT COUNT(*) FROM payment_attempts a WHERE a.invoice_id = i.id AND a.status = 'pending'),"
        " (SELECT COALESCE(MAX(a.attempt_number), 0) FROM payment_attempts a WHERE a.invoice_id = i.id)"
        " FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE i.id IN ({marks})",
        [p.invoice_id for p in payments],
    )
    given = [p.payment_method_id for p in payments if p.payment_method_id is not None]
    owners = {pm: row[1] for pm, row in _rows_by_id(tx, "SELECT id, customer_id FROM payment_methods WHERE id IN ({marks})", given).items()}  # fmt: skip
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    plan: list[tuple[int, int, int, int, int, str] | None] = []
    seen: set[int] = set()
    for payment in payments:
        row = invoices.get(payment.invoice_id)
        if row is None:
            raise NotFound("payments.invoice_id", "invoice", payment.invoice_id)
        invoice_id, status, remaining, code, customer_id, default_pm, pending, last = row
        pm_id = payment.payment_method_id if payment.payment_method_id is not None else default_pm
        if (
            invoice_id in seen
            or status not in _PAYABLE
            or remaining <= 0
            or pending
            or pm_id is None
            or owners.get(pm_id, customer_id) != customer_id
        ):
            plan.append(None)
            continue
        seen.add(invoice_id)
        plan.append((invoice_id, customer_id, pm_id, last + 1, remaining, code))
    wanted = [p for p in plan if p is not None]
    ids = iter(bulk.reserve_ids("payment_attempts", len(wanted)))
    rows: list[tuple[Any, ...]] = []
    result: list[Scheduled | None] = []
    for item in plan:
        if item is None:
            result.append(None)
            continue
        invoice_id, customer_id, pm_id, number, remaining, code = item
        attempt_id = next(ids)
        key = attempt_key(invoice_id, number)
        rows.append(
            (
                attempt_id,
                invoice_id,
                customer_id,
                pm_id,
                number,
                remaining,
                code,
                "pending",
                key,
                source,
                now_s,
            )
        )
        tx.emit(
            "payment.scheduled", "payment_attempt", attempt_id, attempt_id=attempt_id, invoice_id=invoice_id,
            customer_id=customer_id, attempt_number=number, amount_minor=remaining, currency=code,
            source=source, scheduled_at=tx.now.isoformat(),
        )  # fmt: skip
        result.append(Scheduled(attempt_id, invoice_id, number, key))
    bulk.insert(
        "payment_attempts",
        ("id", "invoice_id", "customer_id", "payment_method_id", "attempt_number", "amount_minor", "currency",
         "status", "idempotency_key", "source", "scheduled_at"),
        rows,
    )  # fmt: skip
    return result


def schedule_cancels(tx: Tx, subscription_ids: Sequence[int]) -> list[int]:
    """Cancel at the period end, as ``cancel_subscription(at_period_end=True)`` does; returns the
    subscriptions done (a status the lifecycle does not allow it from is skipped)."""
    if not subscription_ids:
        return []
    subs = _rows_by_id(
        tx, "SELECT id, status, next_invoice_at FROM subscriptions WHERE id IN ({marks})", subscription_ids
    )
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    done: list[int] = []
    seen: set[int] = set()
    for sub_id in subscription_ids:
        row = subs.get(sub_id)
        if row is None:
            raise NotFound("subscription_ids", "subscription", sub_id)
        if sub_id in seen or not SUBSCRIPTION_LIFECYCLE.can(
            SubscriptionStatus(row[1]), SubscriptionEvent.SCHEDULE_CANCEL
        ):
            continue
        seen.add(sub_id)
        ends = parse_instant_column(row[2]) if row[2] is not None else None
        done.append(sub_id)
        tx.emit(
            "subscription.cancel_scheduled", "subscription", sub_id, subscription_id=sub_id,
            ends_at=ends.isoformat() if ends else None,
        )  # fmt: skip
    bulk.executemany(
        "UPDATE subscriptions SET cancel_at_period_end = ?, canceled_at = ?, updated_at = ? WHERE id = ?",
        [(bulk.boolean(True), now_s, now_s, sub_id) for sub_id in done],
    )
    bulk.executemany(
        "DELETE FROM subscription_pending_changes WHERE subscription_id = ?", [(s,) for s in done]
    )
    return done


def schedule_plan_changes(tx: Tx, changes: Sequence[tuple[int, Sequence[tuple[int, int]]]]) -> list[int]:
    """Schedule new items ``[(price_id, quantity)]`` for each subscription's next renewal, as
    ``change_plan(effective="period_end")`` does; returns the subscriptions done (skipped: a status
    that does not allow a plan change, a cancellation at period end, no next renewal).

    The items must be valid for the subscription (its currency and interval): they are written
    as given.
    """
    if not changes:
        return []
    subs = _rows_by_id(
        tx,
        "SELECT id, status, cancel_at_period_end, next_invoice_at FROM subscriptions WHERE id IN ({marks})",
        [sub_id for sub_id, _ in changes],
    )
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    done: list[int] = []
    rows: list[tuple[Any, ...]] = []
    for sub_id, items in changes:
        row = subs.get(sub_id)
        if row is None:
            raise NotFound("changes.subscription_id", "subscription", sub_id)
        _, status, ending, next_at = row
        if (
            sub_id in done
            or not SUBSCRIPTION_LIFECYCLE.can(SubscriptionStatus(status), SubscriptionEvent.CHANGE_PLAN)
            or ending
            or next_at is None
        ):
            continue
        effective = parse_instant_column(next_at)
        listed = [{"price_id": price_id, "quantity": quantity} for price_id, quantity in items]
        done.append(sub_id)
        rows.append((sub_id, bulk.instant(effective), json.dumps(listed), now_s))
        tx.emit(
            "subscription.plan_change_scheduled", "subscription", sub_id, subscription_id=sub_id,
            effective_at=effective.isoformat(), items=listed,
        )  # fmt: skip
    bulk.executemany(
        "DELETE FROM subscription_pending_changes WHERE subscription_id = ?", [(s,) for s in done]
    )
    bulk.insert(
        "subscription_pending_changes", ("subscription_id", "effective_at", "items", "created_at"), rows
    )
    return done


class DisputeToOpen(NamedTuple):
    customer_id: int
    payment_id: int
    amount_minor: int
    message: str


def open_disputes(tx: Tx, disputes: Sequence[DisputeToOpen]) -> list[int]:
    """Open disputes against payments, as ``open_dispute(payment_id=...)`` does; returns their ids.

    Checked as the use case checks them (a message, an amount between 1 and the payment's, the
    payment's own customer); the first culprit is named (``disputes[2].amount_minor``).
    """
    if not disputes:
        return []
    payments = _rows_by_id(
        tx, "SELECT id, customer_id, amount_minor, currency FROM payments WHERE id IN ({marks})",
        [d.payment_id for d in disputes],
    )  # fmt: skip
    for index, d in enumerate(disputes):
        where = f"disputes[{index}]"
        if not isinstance(d.message, str) or not d.message.strip():
            raise InvalidInput(f"{where}.message", "the customer's message, not empty", d.message)
        if len(d.message) > MAX_MESSAGE_LENGTH:
            raise InvalidInput(f"{where}.message", f"at most {MAX_MESSAGE_LENGTH} characters", len(d.message))
        payment = payments.get(d.payment_id)
        if payment is None:
            raise NotFound(f"{where}.payment_id", "payment", d.payment_id)
        if payment[1] != d.customer_id:
            raise InvalidInput(f"{where}.payment_id", f"one of customer {d.customer_id}'s", d.payment_id)
        if not 0 < check_minor(d.amount_minor, f"{where}.amount_minor") <= payment[2]:
            raise InvalidInput(
                f"{where}.amount_minor", f"an amount between 1 and {payment[2]}", d.amount_minor
            )
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    ids = bulk.reserve_ids("disputes", len(disputes))
    rows = []
    for dispute_id, d in zip(ids, disputes, strict=True):
        currency_code = payments[d.payment_id][3]
        rows.append(
            (dispute_id, d.customer_id, None, d.payment_id, d.amount_minor, currency_code, d.message,
             DisputeStatus.OPEN.value, now_s, now_s)
        )  # fmt: skip
        tx.emit(
            "dispute.opened", "dispute", dispute_id, dispute_id=dispute_id, customer_id=d.customer_id,
            invoice_id=None, payment_id=d.payment_id, amount_minor=d.amount_minor, currency=currency_code,
            message=d.message,
        )  # fmt: skip
    bulk.insert(
        "disputes",
        ("id", "customer_id", "invoice_id", "payment_id", "amount_minor", "currency", "message", "status",
         "opened_at", "updated_at"),
        rows,
    )  # fmt: skip
    return ids


def resolve_disputes(tx: Tx, resolutions: Sequence[tuple[int, str, str]]) -> list[int]:
    """Resolve disputes ``(dispute_id, outcome, note)`` as ``resolve_dispute`` does; returns the ones
    done (a dispute already resolved or withdrawn is skipped)."""
    if not resolutions:
        return []
    found = _rows_by_id(
        tx, "SELECT id, status, customer_id, amount_minor, currency, category FROM disputes WHERE id IN ({marks})",
        [r[0] for r in resolutions],
    )  # fmt: skip
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    done: list[int] = []
    updates = []
    for index, (dispute_id, outcome, note) in enumerate(resolutions):
        try:
            result = DisputeOutcome(outcome)
        except ValueError as exc:
            raise InvalidInput(
                f"resolutions[{index}].outcome", "one of " + ", ".join(DisputeOutcome), outcome
            ) from exc
        row = found.get(dispute_id)
        if row is None:
            raise NotFound(f"resolutions[{index}].dispute_id", "dispute", dispute_id)
        status = DisputeStatus(row[1])
        if dispute_id in done or not DISPUTE_LIFECYCLE.can(status, DisputeEvent.RESOLVE):
            continue
        target = DISPUTE_LIFECYCLE.next(status, DisputeEvent.RESOLVE, entity_id=dispute_id)
        done.append(dispute_id)
        updates.append((target.value, result.value, note, note, now_s, now_s, dispute_id))
        tx.emit(
            f"dispute.{target.value}", "dispute", dispute_id, dispute_id=dispute_id, customer_id=row[2],
            amount_minor=row[3], currency=row[4], **{"from": status.value, "to": target.value},
            category=row[5], outcome=result.value,
        )  # fmt: skip
    bulk.executemany(
        "UPDATE disputes SET status = ?, outcome = ?, resolution_note = CASE WHEN ? <> '' THEN ? ELSE"
        " resolution_note END, updated_at = ?, resolved_at = ? WHERE id = ?",
        updates,
    )
    return done


class ChargebackToRecord(NamedTuple):
    payment_id: int
    network_reference: str
    amount_minor: int
    reason_code: str
    fee_minor: int = 0


def record_chargebacks(tx: Tx, chargebacks: Sequence[ChargebackToRecord]) -> list[int]:
    """Record chargebacks as ``record_chargeback`` does; returns their ids (a network reference
    already on file returns that chargeback, as the use case does, and writes nothing)."""
    if not chargebacks:
        return []
    bulk = tx.bulk
    references = [c.network_reference for c in chargebacks]
    known: dict[str, int] = {}
    for start in range(0, len(references), _CHUNK):
        chunk = references[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        known.update(
            (ref, cid)
            for cid, ref in bulk.query(
                f"SELECT id, network_reference FROM chargebacks WHERE network_reference IN ({marks})", chunk
            )
        )
    payments = _rows_by_id(
        tx, "SELECT id, amount_minor, currency, invoice_id, customer_id FROM payments WHERE id IN ({marks})",
        [c.payment_id for c in chargebacks],
    )  # fmt: skip
    fresh = [c for c in chargebacks if c.network_reference not in known]
    ids = iter(bulk.reserve_ids("chargebacks", len({c.network_reference for c in fresh})))
    now_s = bulk.instant(tx.now)
    rows = []
    out: list[int] = []
    for index, c in enumerate(chargebacks):
        if c.network_reference in known:
            out.append(known[c.network_reference])
            continue
        payment = payments.get(c.payment_id)
        if payment is None:
            raise NotFound(f"chargebacks[{index}].payment_id", "payment", c.payment_id)
        if not 0 < check_minor(c.amount_minor, f"chargebacks[{index}].amount_minor") <= payment[1]:
            raise InvalidInput(
                f"chargebacks[{index}].amount_minor", f"an amount between 1 and {payment[1]}", c.amount_minor
            )
        if check_minor(c.fee_minor, f"chargebacks[{index}].fee_minor") < 0:
            raise InvalidInput(
                f"chargebacks[{index}].fee_minor", "an amount of minor units >= 0", c.fee_minor
            )
        chargeback_id = next(ids)
        known[c.network_reference] = chargeback_id
        out.append(chargeback_id)
        rows.append(
            (chargeback_id, c.payment_id, c.network_reference, c.amount_minor, c.fee_minor, payment[2],
             c.reason_code, ChargebackStatus.OPEN.value, now_s)
        )  # fmt: skip
        tx.emit(
            "chargeback.opened", "payment", c.payment_id, chargeback_id=chargeback_id, payment_id=c.payment_id,
            invoice_id=payment[3], customer_id=payment[4], amount_minor=c.amount_minor, fee_minor=c.fee_minor,
            currency=payment[2], reason_code=c.reason_code, network_reference=c.network_reference,
        )  # fmt: skip
    bulk.insert(
        "chargebacks",
        ("id", "payment_id", "network_reference", "amount_minor", "fee_minor", "currency", "reason_code", "status",
         "opened_at"),
        rows,
    )  # fmt: skip
    return out


def close_chargebacks(tx: Tx, closes: Sequence[tuple[int, bool]]) -> list[int]:
    """Close chargebacks ``(chargeback_id, won)`` as ``close_chargeback`` does; returns the ones done
    (a chargeback no longer open is skipped)."""
    if not closes:
        return []
    found = _rows_by_id(
        tx, "SELECT id, payment_id, amount_minor, currency, status FROM chargebacks WHERE id IN ({marks})",
        [c[0] for c in closes],
    )  # fmt: skip
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    done: list[int] = []
    updates = []
    for index, (chargeback_id, won) in enumerate(closes):
        row = found.get(chargeback_id)
        if row is None:
            raise NotFound(f"closes[{index}].chargeback_id", "chargeback", chargeback_id)
        if chargeback_id in done or row[4] != ChargebackStatus.OPEN.value:
            continue
        target = ChargebackStatus.WON if won else ChargebackStatus.LOST
        done.append(chargeback_id)
        updates.append((target.value, now_s, chargeback_id))
        tx.emit(
            "chargeback.closed", "payment", row[1], chargeback_id=chargeback_id, payment_id=row[1],
            amount_minor=row[2], currency=row[3], outcome=target.value, amount_returned_minor=row[2] if won else 0,
        )  # fmt: skip
    bulk.executemany("UPDATE chargebacks SET status = ?, closed_at = ? WHERE id = ?", updates)
    return done
