"""Use case: send pending payment attempts to the gateway and record what it answered.

Three steps, so that no transaction waits on the network:

1. read the pending attempts (and the cards they use);
2. ask the gateway, outside any transaction, with each attempt's idempotency key;
3. record the answers in one transaction, for attempts that are still pending.

If the process dies between 2 and 3, the attempts are still pending; the next call sends them
again with the same keys and the gateway answers as it did the first time, so no card is charged
twice. If two collectors race, the second finds the attempts no longer pending and records
nothing.

A success pays the invoice (fully or in part) and brings a ``trialing``, ``past_due`` or
``unpaid`` subscription back to ``active`` once none of its invoices is left open; money that
arrives for an invoice that no longer wants it (voided meanwhile) goes to the customer's credit
balance. A decline records its code and type and moves a ``trialing`` or ``active``
subscription to ``past_due``; what to do next is the dunning engine's business.

:func:`build_results` and :func:`write_results` are the two halves of step 3, so that the billing
run can build outside the write lock what it then writes under it.

Lock order (PostgreSQL): recording answers locks the attempts' invoices first, by id, then the
attempts, by id (:func:`lock_invoices_of`), then updates subscriptions by id, then customers'
balances by id. The dunning run locks its processes before all of these
(:mod:`billing_core.dunning.engine`). Two collectors, or a collector and a dunning run, that
meet on the same invoices therefore queue behind each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from billing_core.audit import Event, canonical_json
from billing_core.context import BillingContext, Tx
from billing_core.customers import CardBrand, PaymentMethod
from billing_core.db.bulk import Bulk
from billing_core.invoice_writer import Attempt, StaleBatch
from billing_core.invoices import InvoiceStatus
from billing_core.payments import ChargeRequest, ChargeResult
from billing_core.subscriptions import SUBSCRIPTION_LIFECYCLE, SubscriptionEvent, SubscriptionStatus


@dataclass
class CollectionResult:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    collected_minor: dict[str, int] = field(default_factory=dict)
    decline_codes: dict[str, int] = field(default_factory=dict)

    def add(self, other: CollectionResult) -> None:
        self.attempted += other.attempted
        self.succeeded += other.succeeded
        self.failed += other.failed
        for code, amount in other.collected_minor.items():
            self.collected_minor[code] = self.collected_minor.get(code, 0) + amount
        for code, count in other.decline_codes.items():
            self.decline_codes[code] = self.decline_codes.get(code, 0) + count


class Pending(NamedTuple):
    """A pending attempt, its card, and the state of its invoice when it was read."""

    attempt: Attempt
    card: PaymentMethod
    invoice_status: str
    invoice_paid_minor: int
    invoice_remaining_minor: int


@dataclass
class ResultBatch:
    """The rows that record a gateway's answers, and the state they were built from."""

    attempt_updates: list[tuple[Any, ...]] = field(default_factory=list)
    payments: list[tuple[Any, ...]] = field(default_factory=list)
    invoice_updates: list[tuple[Any, ...]] = field(default_factory=list)
    balance_credits: list[tuple[int, int, str, int | None]] = field(default_factory=list)
    status_updates: list[tuple[str, Any, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    expected_invoices: dict[int, tuple[str, int]] = field(
        default_factory=dict
    )  # attempt: (status, remaining)
    # sub: (status, open invoices); the count is None where only the status mattered
    expected_subscriptions: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    result: CollectionResult = field(default_factory=CollectionResult)


def collect_payments(
    ctx: BillingContext,
    *,
    attempt_ids: Sequence[int] | None = None,
    due_by: datetime | None = None,
    chunk_size: int = 50_000,
    on_progress: Callable[[int], None] | None = None,
) -> CollectionResult:
    """Send the given pending attempts (or every pending one scheduled by ``due_by``)."""
    result = CollectionResult()
    if attempt_ids is not None:
        ids = sorted(set(attempt_ids))
        for start in range(0, len(ids), chunk_size):
            result.add(_collect(ctx, ids[start : start + chunk_size]))
            if on_progress:
                on_progress(result.attempted)
        return result
    when = due_by or ctx.clock.now()
    after = 0
    while True:
        with ctx.read() as conn:
            bulk = Bulk(conn)
            rows = bulk.query(
                "SELECT id FROM payment_attempts WHERE status = 'pending' AND scheduled_at <= ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (bulk.instant(when), after, chunk_size),
            )
        if not rows:
            return result
        ids = [row[0] for row in rows]
        after = ids[-1]
        result.add(_collect(ctx, ids))
        if on_progress:
            on_progress(result.attempted)


def _collect(ctx: BillingContext, ids: list[int]) -> CollectionResult:
    with ctx.read() as conn:
        pending = read_pending(Bulk(conn), ids)
    if not pending:
        return CollectionResult()
    answers = send(ctx, pending)
    with ctx.transaction() as tx:
        return record(tx, [p.attempt.attempt_id for p in pending], answers)


def send(ctx: BillingContext, pending: Sequence[Pending]) -> list[ChargeResult]:
    """Ask the gateway (call this outside any transaction)."""
    now = ctx.clock.now()
    return ctx.gateway.charge_many(
        [
            ChargeRequest(
                p.attempt.idempotency_key,
                p.attempt.customer_id,
                p.card,
                p.attempt.amount_minor,
                p.attempt.currency,
                now,
            )
            for p in pending
        ]
    )


def record(tx: Tx, attempt_ids: Sequence[int], answers: Sequence[ChargeResult]) -> CollectionResult:
    """Record answers for attempts still pending, reading their state inside ``tx``."""
    bulk = tx.bulk
    pending = read_pending(bulk, attempt_ids, lock=True)
    subs = {p.attempt.subscription_id for p in pending if p.attempt.subscription_id is not None}
    batch = build_results(
        pending,
        answers,
        payment_ids=iter(bulk.reserve_ids("payments", sum(1 for a in answers if a.succeeded))),
        subscriptions=subscription_state(bulk, subs),
        now=tx.now,
        bulk=bulk,
    )
    return write_results(tx, batch, verify=False)


_PENDING_QUERY = """
SELECT a.id, a.invoice_id, a.customer_id, a.payment_method_id, a.attempt_number, a.amount_minor,
       a.currency, a.idempotency_key, i.subscription_id, i.status, i.amount_paid_minor,
       i.amount_remaining_minor, m.brand, m.bin, m.last4, m.exp_month, m.exp_year, m.fingerprint
FROM payment_attempts a
JOIN invoices i ON i.id = a.invoice_id
JOIN payment_methods m ON m.id = a.payment_method_id
WHERE a.status = 'pending' AND a.id IN (SELECT id FROM {table})
ORDER BY a.id{lock}
"""


def lock_invoices_of(bulk: Bulk, table: str) -> None:
    """Lock the invoices of the attempts whose ids are in ``table``, in id order (PostgreSQL).

    Before the attempts themselves: one statement ``FOR UPDATE OF a, i`` would lock them row by
    row, in whatever order its plan yields, and two transactions could each hold an invoice the
    other waits for. An attempt never changes invoice, so these are the invoices to lock.
    """
    if bulk.sqlite:
        return  # the transaction holds the database's write lock
    bulk.query(
        "SELECT i.id FROM invoices i WHERE i.id IN"
        f" (SELECT a.invoice_id FROM payment_attempts a WHERE a.id IN (SELECT id FROM {table}))"
        " ORDER BY i.id FOR UPDATE"
    )


def read_pending(bulk: Bulk, attempt_ids: Sequence[int], *, lock: bool = False) -> list[Pending]:
    """The attempts among ``attempt_ids`` that are still pending, with cards and invoices."""
    table = bulk.temp_ids("tmp_pending", attempt_ids)
    if lock:
        lock_invoices_of(bulk, table)  # then the attempts, below: invoices first, each by id
    rows = bulk.query(
        _PENDING_QUERY.format(table=table, lock=" FOR UPDATE OF a" if lock and not bulk.sqlite else "")
    )
    bulk.execute(f"DROP TABLE IF EXISTS {table}")
    cards: dict[int, PaymentMethod] = {}
    pending = []
    for (attempt_id, invoice_id, customer_id, pm_id, number, amount, code, key, sub_id, status, paid,
         remaining, brand, bin_, last4, exp_month, exp_year, fingerprint) in rows:  # fmt: skip
        card = cards.get(pm_id)
        if card is None:
            card = cards[pm_id] = PaymentMethod(
                pm_id, customer_id, CardBrand(brand), bin_, last4, exp_month, exp_year, fingerprint
            )
        pending.append(
            Pending(Attempt(attempt_id, invoice_id, customer_id, pm_id, number, amount, code, key, sub_id),
                    card, status, paid, remaining)
        )  # fmt: skip
    return pending


def subscription_state(bulk: Bulk, subscription_ids: set[int]) -> dict[int, tuple[str, int | None]]:
    """``{subscription: (status, number of its invoices still open)}``."""
    counts = open_invoice_counts(bulk, subscription_ids)
    state: dict[int, tuple[str, int | None]] = {}
    ids = sorted(subscription_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for sub_id, status in bulk.query(
            f"SELECT id, status FROM subscriptions WHERE id IN ({marks})", chunk
        ):
            state[sub_id] = (status, counts.get(sub_id, 0))
    return state


def open_invoice_counts(bulk: Bulk, subscription_ids: set[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    ids = sorted(subscription_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        counts.update(
            bulk.query(
                f"SELECT subscription_id, COUNT(*) FROM invoices WHERE subscription_id IN ({marks})"
                " AND status IN ('open', 'uncollectible') GROUP BY subscription_id",
                chunk,
            )
        )
    return counts


def build_results(
    pending: Sequence[Pending],
    answers: Sequence[ChargeResult],
    *,
    payment_ids: Iterator[int],
    subscriptions: dict[int, tuple[str, int | None]],
    now: datetime,
    bulk: Bulk,
) -> ResultBatch:
    """Rows that record ``answers`` for ``pending`` (matched by idempotency key).

    ``subscriptions`` gives each subscription's status and how many of its invoices are open;
    the count may be None for an ``active`` subscription, which a success leaves as it is.
    """
    batch = ResultBatch()
    result = batch.result
    by_key = {answer.idempotency_key: answer for answer in answers}
    now_s = bulk.instant(now)
    invoice_state: dict[int, list[int]] = {}
    settled: dict[int, int] = {}
    failed_subs: dict[int, str] = {}
    open_statuses = (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value)
    for attempt, _card, invoice_status, paid_so_far, remaining in pending:
        answer = by_key.get(attempt.idempotency_key)
        if answer is None:
            continue
        (attempt_id, invoice_id, customer_id, pm_id, number, amount, code, _key, sub_id) = attempt
        batch.expected_invoices[attempt_id] = (invoice_status, remaining)
        result.attempted += 1
        if answer.succeeded:
            result.succeeded += 1
            result.collected_minor[code] = result.collected_minor.get(code, 0) + amount
            payment_id = next(payment_ids)
            batch.attempt_updates.append(
                ("succeeded", None, None, answer.gateway_reference, now_s, attempt_id)
            )
            batch.payments.append(
                (payment_id, invoice_id, attempt_id, customer_id, "card", pm_id, amount, code,
                 answer.gateway_reference, now_s)
            )  # fmt: skip
            state = invoice_state.setdefault(invoice_id, [paid_so_far, remaining])
            applied = min(amount, state[1]) if invoice_status in open_statuses else 0
            state[0] += applied
            state[1] -= applied
            paid_now = applied > 0 and state[1] == 0
            if applied:
                batch.invoice_updates.append(
                    ("paid" if paid_now else invoice_status, state[0], state[1], now_s if paid_now else None,
                     invoice_id)
                )  # fmt: skip
            batch.events.append(Event(now, "payment.succeeded", "payment", str(payment_id), canonical_json({
                "payment_id": payment_id, "attempt_id": attempt_id, "invoice_id": invoice_id,
                "customer_id": customer_id, "subscription_id": sub_id, "amount_minor": amount,
                "currency": code, "attempt_number": number, "payment_method_id": pm_id,
            })))  # fmt: skip
            if paid_now:
                batch.events.append(Event(now, "invoice.paid", "invoice", str(invoice_id), canonical_json({
                    "invoice_id": invoice_id, "customer_id": customer_id, "subscription_id": sub_id,
                    "currency": code, "amount_paid_minor": state[0], "paid_with": "card",
                })))  # fmt: skip
                if sub_id is not None:
                    settled[sub_id] = settled.get(sub_id, 0) + 1
            if amount > applied:
                # money arrived for an invoice that no longer wants it: it is the customer's credit
                batch.balance_credits.append((customer_id, amount - applied, code, invoice_id))
        else:
            result.failed += 1
            decline = answer.decline_code.value if answer.decline_code else "unknown"
            result.decline_codes[decline] = result.decline_codes.get(decline, 0) + 1
            decline_type = answer.decline_type.value if answer.decline_type else None
            batch.attempt_updates.append(
                ("failed", decline, decline_type, answer.gateway_reference, now_s, attempt_id)
            )
            batch.events.append(Event(now, "payment.failed", "payment_attempt", str(attempt_id), canonical_json({
                "attempt_id": attempt_id, "invoice_id": invoice_id, "customer_id": customer_id,
                "subscription_id": sub_id, "amount_minor": amount, "currency": code, "attempt_number": number,
                "decline_code": decline, "decline_type": decline_type, "payment_method_id": pm_id,
            })))  # fmt: skip
            if sub_id is not None:
                failed_subs[sub_id] = decline
    for sub_id in sorted(set(settled) | set(failed_subs)):
        status, open_count = subscriptions.get(sub_id, ("", None))
        if not status:
            continue
        if sub_id in failed_subs:
            event = SubscriptionEvent.PAYMENT_FAILED
            open_count = None  # a decline moves the status whatever else is open
        elif open_count is not None and open_count - settled[sub_id] <= 0:
            event = SubscriptionEvent.PAYMENT_SUCCEEDED
        else:
            continue
        current = SubscriptionStatus(status)
        if not SUBSCRIPTION_LIFECYCLE.can(current, event):
            continue
        target = SUBSCRIPTION_LIFECYCLE.next(current, event, entity_id=sub_id)
        if target is current:
            continue
        batch.expected_subscriptions[sub_id] = (status, open_count)
        batch.status_updates.append((target.value, now_s, sub_id))
        batch.events.append(Event(now, "subscription.status_changed", "subscription", str(sub_id), canonical_json({
            "subscription_id": sub_id, "from": status, "to": target.value, "reason": event.value,
            "decline_code": failed_subs.get(sub_id),
        })))  # fmt: skip
    return batch


def write_results(tx: Tx, batch: ResultBatch, *, verify: bool = True) -> CollectionResult:
    """Write a result batch; with ``verify``, :class:`StaleBatch` if its inputs moved meanwhile."""
    bulk = tx.bulk
    if verify:
        _verify(bulk, batch)
    bulk.executemany(
        "UPDATE payment_attempts SET status = ?, decline_code = ?, decline_type = ?,"
        " gateway_reference = ?, processed_at = ? WHERE id = ?",
        batch.attempt_updates,
    )
    bulk.insert(
        "payments",
        ["id", "invoice_id", "attempt_id", "customer_id", "method", "payment_method_id", "amount_minor",
         "currency", "gateway_reference", "created_at"],
        batch.payments,
    )  # fmt: skip
    bulk.executemany(
        "UPDATE invoices SET status = ?, amount_paid_minor = ?, amount_remaining_minor = ?,"
        " paid_at = COALESCE(?, paid_at) WHERE id = ?",
        batch.invoice_updates,
    )
    bulk.executemany("UPDATE subscriptions SET status = ?, updated_at = ? WHERE id = ?", batch.status_updates)
    tx.events.extend(batch.events)
    if batch.balance_credits:
        credit_customer_balances(tx, batch.balance_credits, reason="overpayment")
    return batch.result


def _verify(bulk: Bulk, batch: ResultBatch) -> None:
    ids = list(batch.expected_invoices)
    if ids:
        table = bulk.temp_ids("tmp_verify", ids)
        lock_invoices_of(bulk, table)  # the invoices, then the attempts: each by id
        lock = "" if bulk.sqlite else " FOR UPDATE OF a"
        found = {
            attempt_id: (status, (invoice_status, remaining))
            for attempt_id, status, invoice_status, remaining in bulk.query(
                "SELECT a.id, a.status, i.status, i.amount_remaining_minor FROM payment_attempts a"
                f" JOIN invoices i ON i.id = a.invoice_id WHERE a.id IN (SELECT id FROM {table})"
                f" ORDER BY a.id{lock}"
            )
        }
        bulk.execute(f"DROP TABLE IF EXISTS {table}")
        for attempt_id, expected in batch.expected_invoices.items():
            status, invoice = found.get(attempt_id, ("missing", None))
            if status != "pending" or invoice != expected:
                raise StaleBatch(
                    f"attempt {attempt_id} is {status}, its invoice {invoice} (expected {expected})"
                )
    if batch.expected_subscriptions:
        current = subscription_state(bulk, set(batch.expected_subscriptions))
        for sub_id, (status, open_count) in batch.expected_subscriptions.items():
            now_status, now_open = current.get(sub_id, ("missing", None))
            if now_status != status or (open_count is not None and now_open != open_count):
                raise StaleBatch(f"subscription {sub_id} is {now_status} with {now_open} open invoices")


def credit_customer_balances(
    tx: Tx, credits: Sequence[tuple[int, int, str, int | None]], *, reason: str
) -> None:
    """Add (customer_id, amount, currency, invoice_id) credits to customers' balances."""
    bulk = tx.bulk
    now_s = bulk.instant(tx.now)
    # customers in id order (the last in the lock order); a customer's own credits keep theirs
    for customer_id, amount, code, invoice_id in sorted(credits, key=lambda credit: credit[0]):
        (balance,) = bulk.query("SELECT balance_minor FROM customers WHERE id = ?", (customer_id,))[0]
        after = balance + amount
        bulk.execute(
            "UPDATE customers SET balance_minor = ?, updated_at = ? WHERE id = ?", (after, now_s, customer_id)
        )
        bulk.insert(
            "customer_balance_transactions",
            [
                "customer_id",
                "amount_minor",
                "currency",
                "reason",
                "invoice_id",
                "balance_after_minor",
                "created_at",
            ],
            [(customer_id, amount, code, reason, invoice_id, after, now_s)],
        )
        tx.emit("customer.balance_changed", "customer", customer_id, customer_id=customer_id,
                amount_minor=amount, currency=code, reason=reason, invoice_id=invoice_id,
                balance_after_minor=after)  # fmt: skip
