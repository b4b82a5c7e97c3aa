"""Writing planned invoices, set-based, for one invoice or a million.

Two steps, so that the expensive one can run outside the database's write lock:

* :func:`build_batch` turns :class:`~billing_core.invoicing.InvoicePlan` objects into ready rows
  (invoices, lines, pending payment attempts, balance movements, events), given ids reserved
  beforehand and the credit balances the plans assumed. It touches no database.
* :func:`write_batch`, inside the caller's transaction, checks that those balances still hold,
  gives each invoice its gapless number, inserts everything and queues the events.

:func:`write_invoices` does both inside one transaction, for use cases that finalize a handful of
invoices. Invoices that owe nothing are paid at once; the others get a ``pending`` attempt when a
card is on file, which :mod:`billing_core.services.collect_payments` sends after the commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from billing_core.audit import Event, canonical_json
from billing_core.context import Tx
from billing_core.credit_notes import BalanceReason
from billing_core.db.bulk import Bulk
from billing_core.db.types import InstantTexts
from billing_core.errors import InvalidInput, RecoupError
from billing_core.invoices import InvoiceStatus, LineKind
from billing_core.invoicing import InvoicePlan

#: stands for the invoice number in a finalized event until the number is assigned
NUMBER_PLACEHOLDER = "#INVOICE-NUMBER#"

INVOICE_COLUMNS = (
    "id", "number", "customer_id", "subscription_id", "status", "billing_reason", "currency",
    "period_start", "period_end", "subtotal_minor", "discount_minor", "tax_minor", "tax_inclusive",
    "total_minor", "credit_applied_minor", "amount_due_minor", "amount_paid_minor",
    "amount_credited_minor", "amount_remaining_minor", "created_at", "finalized_at", "due_at", "paid_at",
)  # fmt: skip
LINE_COLUMNS = (
    "invoice_id", "position", "kind", "description", "price_id", "subscription_id", "quantity",
    "period_start", "period_end", "amount_minor", "discount_minor", "tax_minor", "taxable",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "id", "invoice_id", "customer_id", "payment_method_id", "attempt_number", "amount_minor",
    "currency", "status", "idempotency_key", "source", "scheduled_at",
)  # fmt: skip
BALANCE_COLUMNS = (
    "customer_id",
    "amount_minor",
    "currency",
    "reason",
    "invoice_id",
    "balance_after_minor",
    "created_at",
)


class StaleBatch(RecoupError):
    """What a batch was built from changed before it could be written: build it again."""

    code = "stale_batch"


class Written(NamedTuple):
    invoice_id: int
    number: str
    amount_due_minor: int
    attempt_id: int | None


class Attempt(NamedTuple):
    """A pending attempt as queued: what the collector needs to send it and record the answer."""

    attempt_id: int
    invoice_id: int
    customer_id: int
    payment_method_id: int
    attempt_number: int
    amount_minor: int
    currency: str
    idempotency_key: str
    subscription_id: int | None


@dataclass
class InvoiceBatch:
    """Rows for a batch of finalized invoices; numbers are filled in by :func:`write_batch`."""

    invoices: list[list[Any]] = field(default_factory=list)
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    attempts: list[tuple[Any, ...]] = field(default_factory=list)
    balance_moves: list[tuple[Any, ...]] = field(default_factory=list)
    balances: dict[int, tuple[int, int]] = field(default_factory=dict)  # customer: (assumed, after)
    charges: list[tuple[int, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    finalized_events: list[int] = field(default_factory=list)  # per invoice, its event's index
    due: list[int] = field(default_factory=list)  # per invoice, the amount due
    queued: list[Attempt] = field(default_factory=list)
    attempt_of: dict[int, int] = field(default_factory=dict)  # invoice id: attempt id

    def __len__(self) -> int:
        return len(self.invoices)


def attempt_key(invoice_id: int, attempt_number: int) -> str:
    """The idempotency key sent to the gateway for an attempt: the same on every retry of a run."""
    return f"in_{invoice_id}_attempt_{attempt_number}"


def build_batch(
    plans: Sequence[InvoicePlan],
    *,
    invoice_ids: Iterator[int],
    attempt_ids: Iterator[int],
    balances: dict[int, int],
    now: datetime,
    days_until_due: int,
    source: str,
    bulk: Bulk,
    texts: InstantTexts | None = None,
) -> InvoiceBatch:
    """Rows for ``plans``. ``balances`` are the credit balances the plans' totals assumed.

    ``texts`` shares the instants already formatted (SQLite) with the caller.
    """
    batch = InvoiceBatch()
    instant = bulk.instant_formatter(texts)
    true, false = bulk.boolean(True), bulk.boolean(False)
    due_at = now + timedelta(days=days_until_due)
    now_s, due_s = instant(now), instant(due_at)
    running: dict[int, int] = {}
    paid, opened = InvoiceStatus.PAID.value, InvoiceStatus.OPEN.value
    for plan in plans:
        invoice_id = next(invoice_ids)
        totals = plan.totals
        amount_due = totals.amount_due_minor
        code = plan.currency.code
        sub_id = plan.subscription_id
        customer_id = plan.customer_id
        start_s, end_s = instant(plan.period_start), instant(plan.period_end)
        batch.invoices.append([
            invoice_id, None, customer_id, sub_id, opened if amount_due else paid, plan.reason.value, code,
            start_s, end_s, totals.subtotal_minor, totals.discount_minor, totals.tax_minor,
            true if totals.tax_inclusive else false, totals.total_minor, totals.credit_applied_minor,
            amount_due, 0, 0, amount_due, now_s, now_s, due_s, None if amount_due else now_s,
        ])  # fmt: skip
        discounts, taxes = totals.line_discounts_minor, totals.line_taxes_minor
        usage_from = instant(plan.usage_from)
        for position, line in enumerate(plan.lines):
            kind = line.kind
            if line.period_start is not None:
                line_start, line_end = instant(line.period_start), instant(line.period_end)
            elif kind is LineKind.SUBSCRIPTION:
                line_start, line_end = start_s, end_s
            elif kind is LineKind.USAGE:
                line_start, line_end = usage_from, start_s
            else:
                line_start = line_end = None
            batch.lines.append((
                invoice_id, position, kind.value, line.description, line.price_id,
                line.subscription_id if line.subscription_id is not None else sub_id, line.quantity,
                line_start, line_end, line.amount_minor, discounts[position], taxes[position],
                true if line.taxable else false,
            ))  # fmt: skip
        batch.finalized_events.append(len(batch.events))
        batch.events.append(Event(now, "invoice.finalized", "invoice", str(invoice_id), canonical_json({
            "invoice_id": invoice_id, "number": NUMBER_PLACEHOLDER, "customer_id": customer_id,
            "subscription_id": sub_id, "billing_reason": plan.reason.value, "currency": code,
            "period_start": plan.period_start, "period_end": plan.period_end,
            "subtotal_minor": totals.subtotal_minor, "discount_minor": totals.discount_minor,
            "tax_minor": totals.tax_minor, "total_minor": totals.total_minor,
            "credit_applied_minor": totals.credit_applied_minor, "amount_due_minor": amount_due,
            "due_at": due_at, "lines": len(plan.lines),
        })))  # fmt: skip
        batch.due.append(amount_due)
        if not amount_due:
            batch.events.append(Event(now, "invoice.paid", "invoice", str(invoice_id), canonical_json({
                "invoice_id": invoice_id, "customer_id": customer_id, "subscription_id": sub_id,
                "currency": code, "amount_paid_minor": 0,
                "paid_with": "credit_balance" if totals.credit_applied_minor else "nothing_due",
            })))  # fmt: skip
        elif plan.payment_method_id is not None:
            attempt_id = next(attempt_ids)
            key = attempt_key(invoice_id, 1)
            batch.attempts.append(
                (attempt_id, invoice_id, customer_id, plan.payment_method_id, 1, amount_due, code, "pending",
                 key, source, now_s)
            )  # fmt: skip
            batch.queued.append(
                Attempt(
                    attempt_id,
                    invoice_id,
                    customer_id,
                    plan.payment_method_id,
                    1,
                    amount_due,
                    code,
                    key,
                    sub_id,
                )
            )
            batch.attempt_of[invoice_id] = attempt_id
        if not (totals.credit_applied_minor or totals.credit_to_balance_minor):
            if plan.one_time_charge_ids:
                batch.charges.extend((invoice_id, charge_id) for charge_id in plan.one_time_charge_ids)
            continue
        for delta, reason in (
            (-totals.credit_applied_minor, BalanceReason.APPLIED_TO_INVOICE),
            (totals.credit_to_balance_minor, BalanceReason.PRORATION),
        ):
            if not delta:
                continue
            before = running.get(customer_id, balances.get(customer_id, 0))
            after = before + delta
            if after < 0:
                raise InvalidInput("credit_applied_minor", f"at most the customer's balance {before}", -delta)
            running[customer_id] = after
            assumed = batch.balances[customer_id][0] if customer_id in batch.balances else before
            batch.balances[customer_id] = (assumed, after)
            batch.balance_moves.append((customer_id, delta, code, reason.value, invoice_id, after, now_s))
            batch.events.append(Event(now, "customer.balance_changed", "customer", str(customer_id), canonical_json({
                "customer_id": customer_id, "amount_minor": delta, "currency": code, "reason": reason.value,
                "invoice_id": invoice_id, "balance_after_minor": after,
            })))  # fmt: skip
        batch.charges.extend((invoice_id, charge_id) for charge_id in plan.one_time_charge_ids)
    return batch


def reserve_numbers(bulk: Bulk, series: str, count: int) -> int:
    """Reserve ``count`` consecutive numbers of a gapless series; returns the first.

    The counter moves inside the caller's transaction, so a rollback gives the numbers back
    and a committed invoice never leaves a hole.
    """
    if count <= 0:
        raise InvalidInput("count", "a count >= 1", count)
    if bulk.sqlite:
        bulk.execute("INSERT OR IGNORE INTO number_sequences (name, next_value) VALUES (?, 1)", (series,))
    else:
        bulk.execute(
            "INSERT INTO number_sequences (name, next_value) VALUES (?, 1) ON CONFLICT (name) DO NOTHING",
            (series,),
        )
    rows = bulk.query(
        "UPDATE number_sequences SET next_value = next_value + ? WHERE name = ? RETURNING next_value",
        (count, series),
    )
    return int(rows[0][0]) - count


def format_number(prefix: str, value: int) -> str:
    return f"{prefix}-{value:06d}"


def write_batch(tx: Tx, batch: InvoiceBatch, *, prefix: str) -> list[Written]:
    """Number and insert a built batch inside ``tx``; :class:`StaleBatch` if a balance moved."""
    if not batch.invoices:
        return []
    bulk = tx.bulk
    if batch.balances:
        _check_balances(bulk, batch.balances)
    first = reserve_numbers(bulk, prefix, len(batch.invoices))
    written = []
    events = batch.events
    for offset, (row, event_index, due) in enumerate(
        zip(batch.invoices, batch.finalized_events, batch.due, strict=True)
    ):
        number = format_number(prefix, first + offset)
        row[1] = number
        event = events[event_index]
        events[event_index] = event._replace(payload=event.payload.replace(NUMBER_PLACEHOLDER, number, 1))
        written.append(Written(row[0], number, due, batch.attempt_of.get(row[0])))
    bulk.insert("invoices", INVOICE_COLUMNS, batch.invoices)
    bulk.insert("invoice_lines", LINE_COLUMNS, batch.lines)
    bulk.insert("payment_attempts", ATTEMPT_COLUMNS, batch.attempts)
    if batch.balance_moves:
        bulk.insert("customer_balance_transactions", BALANCE_COLUMNS, batch.balance_moves)
        now_s = bulk.instant(tx.now)
        bulk.executemany(
            "UPDATE customers SET balance_minor = ?, updated_at = ? WHERE id = ?",
            [(after, now_s, customer_id) for customer_id, (_assumed, after) in batch.balances.items()],
        )
    if batch.charges:
        bulk.executemany("UPDATE one_time_charges SET invoice_id = ? WHERE id = ?", batch.charges)
    tx.events.extend(events)
    return written


def _check_balances(bulk: Bulk, balances: dict[int, tuple[int, int]]) -> None:
    ids = sorted(balances)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        lock = "" if bulk.sqlite else " FOR UPDATE"
        for customer_id, balance in bulk.query(
            f"SELECT id, balance_minor FROM customers WHERE id IN ({marks}){lock}", chunk
        ):
            if balance != balances[customer_id][0]:
                raise StaleBatch(
                    f"customer {customer_id}'s balance moved from {balances[customer_id][0]} to {balance}"
                )


def write_invoices(
    tx: Tx, plans: Sequence[InvoicePlan], *, prefix: str, days_until_due: int, attempt_source: str
) -> list[Written]:
    """Build and write ``plans`` inside ``tx`` (whose balances the plans read in ``tx``)."""
    if not plans:
        return []
    bulk = tx.bulk
    customers = sorted(
        {p.customer_id for p in plans if p.totals.credit_applied_minor or p.totals.credit_to_balance_minor}
    )
    balances: dict[int, int] = {}
    for start in range(0, len(customers), 500):
        chunk = customers[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        balances.update(bulk.query(f"SELECT id, balance_minor FROM customers WHERE id IN ({marks})", chunk))
    attempts_needed = sum(1 for p in plans if p.totals.amount_due_minor and p.payment_method_id is not None)
    batch = build_batch(
        plans,
        invoice_ids=iter(bulk.reserve_ids("invoices", len(plans))),
        attempt_ids=iter(bulk.reserve_ids("payment_attempts", attempts_needed)),
        balances=balances,
        now=tx.now,
        days_until_due=days_until_due,
        source=attempt_source,
        bulk=bulk,
    )
    return write_batch(tx, batch, prefix=prefix)
