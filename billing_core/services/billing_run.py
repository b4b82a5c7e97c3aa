"""Use case: the billing run. Invoice every subscription period due by ``as_of``, in bulk.

``recoup bill --as-of 2026-03-01`` renews every trialing, active or past-due subscription whose
next period starts on or before ``as_of``: it charges the licensed prices for the new period and
the usage of the one just ended, applies discounts, the customer's credit balance and taxes,
finalizes the invoice, and attempts the payment. A subscription several periods behind is caught
up period by period (one pass per period).

How it scales
-------------
The run is set-based. Due subscriptions are taken in chunks (5,000 by default), in id order.
For each chunk the *planner* reads every input with a handful of queries (subscriptions, items,
customers, usage aggregated in SQL, scheduled plan changes, one-time charges) from a read
snapshot, prices the invoices with the pure planning code
(:func:`billing_core.invoicing.plan_renewal`, which remembers every distinct pricing case, so a
million subscriptions on a few hundred plans are priced a few thousand times), and builds every
row to write as plain tuples. Only then does the run take the write lock, check that the chunk's
subscriptions (and the credit balances it used) are still as planned, and write everything with
``executemany`` (``COPY`` on PostgreSQL) in one short transaction. The chunk's pending payment
attempts then go to the gateway in one batch, and the answers are recorded in bulk the same way.
The write lock is held only while rows are written, never while Python prices.

Planning and writing overlap: where the platform can fork, a planner process (which inherits
the planner, its pricing caches and the reserved ids) plans chunk k+1 on its own read snapshot
while this process writes and collects chunk k. Chunks are disjoint sets of subscriptions; a
customer balance that an earlier chunk changed is caught by the version check below.

Exactly once
------------
Every period invoice has the unique key ``(subscription_id, period_start)``. A chunk is written
only if, under the write lock, its subscriptions are still at the period the planner saw
(``next_period_index``, ``status``, ``updated_at``); otherwise (another run or a plan change got
there first) the chunk is planned again under the lock, where nothing can move. Two runs at the
same moment therefore share the work instead of doubling it, and if they ever collided, the
unique key would refuse the second invoice and roll back its whole chunk.

Payments follow :mod:`billing_core.services.collect_payments`: the attempt is committed as
``pending`` before the gateway is asked, with an idempotency key that a retry reuses. Attempts
left pending by an interrupted run are sent first by the next run.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import time as _time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from billing_core.audit import Event, canonical_json
from billing_core.catalog import Aggregation, Price, UsageType
from billing_core.context import BillingContext, Tx
from billing_core.customers import CardBrand, PaymentMethod
from billing_core.db import repository
from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.db.usage_queries import aggregate_windows, metered_windows
from billing_core.discounts import Coupon
from billing_core.invoice_writer import InvoiceBatch, StaleBatch, Written, build_batch, write_batch
from billing_core.invoicing import InvoicePlan, OneTimeCharge, PricingCache, Renewal, plan_renewal
from billing_core.services.collect_payments import (
    CollectionResult,
    Pending,
    build_results,
    collect_payments,
    open_invoice_counts,
    record,
    send,
    write_results,
)
from billing_core.subscriptions import BILLABLE_STATUSES, Subscription, SubscriptionItem, SubscriptionStatus
from billing_core.tax import TaxRate

_BILLABLE = ", ".join(f"'{s.value}'" for s in BILLABLE_STATUSES)


@dataclass
class BillingRunResult:
    as_of: datetime
    invoices: int = 0
    passes: int = 0
    chunks_replanned: int = 0
    subscriptions_canceled: int = 0
    invoiced_minor: dict[str, int] = field(default_factory=dict)
    payments: CollectionResult = field(default_factory=CollectionResult)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "invoices": self.invoices,
            "passes": self.passes,
            "chunks_replanned": self.chunks_replanned,
            "subscriptions_canceled": self.subscriptions_canceled,
            "invoiced_minor": self.invoiced_minor,
            "payments_attempted": self.payments.attempted,
            "payments_succeeded": self.payments.succeeded,
            "payments_failed": self.payments.failed,
            "collected_minor": self.payments.collected_minor,
            "decline_codes": self.payments.decline_codes,
            "seconds": round(self.seconds, 3),
        }


def run_billing(
    ctx: BillingContext,
    *,
    as_of: datetime,
    subscription_ids: Sequence[int] | None = None,
    chunk_size: int = 5_000,
    collect: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    pipelined: bool = True,
) -> BillingRunResult:
    """Invoice every period due by ``as_of`` (of the given subscriptions, or of all).

    With ``pipelined`` (the default, where the platform can fork) a planner process prepares the
    next chunk while this process writes the current one.
    """
    started = _time.perf_counter()
    result = BillingRunResult(as_of=as_of)
    if collect and subscription_ids is None:
        # attempts left pending by an interrupted run go first, with their original keys
        result.payments.add(collect_payments(ctx, due_by=ctx.clock.now()))
    with ctx.read() as conn:
        planner = _Planner(ctx, _Catalog.load(conn), as_of)
    collecting_garbage = gc.isenabled()
    gc.disable()  # millions of short-lived rows: the cyclic collector would only scan them
    try:
        while True:
            with ctx.read() as conn:
                due = _due_ids(Bulk(conn), as_of, subscription_ids)
            if not due:
                break
            result.passes += 1
            _Pass(ctx, planner, result, collect, on_progress, len(due), pipelined).run(due, chunk_size)
    finally:
        if collecting_garbage:
            gc.enable()
    result.seconds = _time.perf_counter() - started
    return result


def _due_ids(bulk: Bulk, as_of: datetime, subscription_ids: Sequence[int] | None) -> list[int]:
    where = f"next_invoice_at <= ? AND status IN ({_BILLABLE})"
    if subscription_ids is not None:
        bulk.temp_ids("tmp_only", subscription_ids)
        where += " AND id IN (SELECT id FROM tmp_only)"
    ids = [
        row[0] for row in bulk.query(f"SELECT id FROM subscriptions WHERE {where}", (bulk.instant(as_of),))
    ]
    return sorted(ids)


@dataclass
class _Catalog:
    prices: dict[int, Price]
    coupons: dict[int, Coupon]
    tax_rates: dict[int, TaxRate]
    aggregations: dict[str, Aggregation]
    metered: dict[int, bool] = field(init=False)

    def __post_init__(self) -> None:
        self.metered = {pid: p.usage_type is UsageType.METERED for pid, p in self.prices.items()}

    @classmethod
    def load(cls, conn: Any) -> _Catalog:
        return cls(
            repository.load_prices(conn),
            repository.load_coupons(conn),
            repository.load_tax_rates(conn),
            {code: metric.aggregation for code, metric in repository.all_metrics(conn).items()},
        )


@dataclass
class _Reservation:
    """Ids reserved for a pass, handed out by the planner."""

    invoices: Iterator[int]
    attempts: Iterator[int]
    payments: Iterator[int]


@dataclass
class _Chunk:
    """A planned chunk: what it was planned from, and every row to write."""

    subscription_ids: list[int]
    versions: dict[int, tuple[int, str, Any]]  # sub: (next_period_index, status, updated_at)
    batch: InvoiceBatch
    subscription_updates: list[tuple[Any, ...]]
    status_updates: list[tuple[Any, ...]]
    item_changes: list[tuple[int, tuple[SubscriptionItem, ...]]]
    events: list[Event]
    invoiced_minor: dict[str, int]
    canceled: int
    cards: dict[int, PaymentMethod] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)  # each subscription's status once written
    written: list[Written] = field(default_factory=list)


_SUB_COLUMNS = (
    "id, customer_id, status, currency, tz_name, months_per_period, started_at, anchor_at,"
    " next_period_index, next_invoice_at, current_period_start, current_period_end, trial_end,"
    " cancel_at_period_end, canceled_at, paused_at, coupon_id, discounted_invoices, usage_billed_until,"
    " updated_at"
)


class _Planner:
    """Reads a chunk's inputs and plans its invoices; works on any connection."""

    def __init__(self, ctx: BillingContext, catalog: _Catalog, as_of: datetime) -> None:
        self.ctx = ctx
        self.catalog = catalog
        self.as_of = as_of
        self.cache = PricingCache()

    def plan(self, bulk: Bulk, sub_ids: Sequence[int], ids: _Reservation, now: datetime) -> _Chunk:
        table = bulk.temp_ids("tmp_subs", sub_ids)
        rows = bulk.query(
            f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE id IN (SELECT id FROM {table})"
            f" AND next_invoice_at <= ? AND status IN ({_BILLABLE}) ORDER BY id",
            (bulk.instant(self.as_of),),
        )
        items = _items(bulk, table)
        subs = [_subscription(row, items.get(row[0], ())) for row in rows]
        versions = {row[0]: (row[8], row[2], row[19]) for row in rows}
        customers: dict[int, tuple[int | None, int, int | None]] = {}
        cards: dict[int, PaymentMethod] = {}
        for cid, tax_rate_id, balance, pm, brand, bin_, last4, exp_month, exp_year, fingerprint in bulk.query(
            "SELECT c.id, c.tax_rate_id, c.balance_minor, c.default_payment_method_id, m.brand, m.bin, m.last4,"
            " m.exp_month, m.exp_year, m.fingerprint FROM customers c"
            " LEFT JOIN payment_methods m ON m.id = c.default_payment_method_id"
            f" WHERE c.id IN (SELECT customer_id FROM subscriptions WHERE id IN (SELECT id FROM {table}))"
        ):
            customers[cid] = (tax_rate_id, balance, pm)
            if pm is not None:
                cards[pm] = PaymentMethod(
                    pm, cid, CardBrand(brand), bin_, last4, exp_month, exp_year, fingerprint
                )
        pending = {
            sub_id: tuple(
                SubscriptionItem(0, int(i["price_id"]), int(i["quantity"])) for i in json.loads(raw)
            )
            for sub_id, raw in bulk.query(
                "SELECT subscription_id, items FROM subscription_pending_changes"
                f" WHERE subscription_id IN (SELECT id FROM {table})"
            )
        }
        one_time: dict[int, list[OneTimeCharge]] = {}
        for charge_id, sub_id, description, quantity, unit, code in bulk.query(
            "SELECT id, subscription_id, description, quantity, unit_amount_minor, currency FROM one_time_charges"
            f" WHERE invoice_id IS NULL AND subscription_id IN (SELECT id FROM {table}) ORDER BY id"
        ):
            one_time.setdefault(sub_id, []).append(
                OneTimeCharge(charge_id, description, quantity, unit, code)
            )
        usage = self._usage(bulk, subs)
        bulk.execute(f"DROP TABLE IF EXISTS {table}")

        catalog = self.catalog
        balances = {cid: values[1] for cid, values in customers.items()}
        start_balances = dict(balances)
        plans: list[InvoicePlan] = []
        renewals: list[tuple[Subscription, Renewal]] = []
        for sub in subs:
            tax_rate_id, _balance, pm = customers[sub.customer_id]
            renewal = plan_renewal(
                sub,
                prices=catalog.prices,
                coupon=catalog.coupons.get(sub.coupon_id) if sub.coupon_id else None,
                tax_rate=catalog.tax_rates.get(tax_rate_id) if tax_rate_id else None,
                usage=usage.get(sub.id, {}),
                one_time=one_time.get(sub.id, ()),
                pending_items=pending.get(sub.id),
                balance_minor=balances[sub.customer_id],
                payment_method_id=pm,
                cache=self.cache,
            )
            totals = renewal.invoice.totals
            if totals.credit_applied_minor or totals.credit_to_balance_minor:
                balances[sub.customer_id] += totals.credit_to_balance_minor - totals.credit_applied_minor
            plans.append(renewal.invoice)
            renewals.append((sub, renewal))
        batch = build_batch(
            plans, invoice_ids=ids.invoices, attempt_ids=ids.attempts, balances=start_balances, now=now,
            days_until_due=self.ctx.days_until_due, source="billing_run", bulk=bulk,
        )  # fmt: skip
        chunk = _Chunk(list(versions), versions, batch, [], [], [], [], {}, 0, cards=cards)
        self._subscription_rows(bulk, renewals, now, chunk)
        return chunk

    def _usage(self, bulk: Bulk, subs: Sequence[Subscription]) -> dict[int, dict[str, int]]:
        """Usage per subscription and metric since ``usage_billed_until``, aggregated in SQL."""
        metered = self.catalog.metered
        windows = []
        for sub in subs:
            if sub.next_invoice_at is not None and any(metered[i.price_id] for i in sub.items):
                windows += metered_windows(
                    sub.id, sub.customer_id, sub.items, self.catalog.prices, self.catalog.aggregations,
                    sub.usage_billed_until, sub.next_invoice_at,
                )  # fmt: skip
        return aggregate_windows(bulk, windows)

    def _subscription_rows(
        self, bulk: Bulk, renewals: Sequence[tuple[Subscription, Renewal]], now: datetime, chunk: _Chunk
    ) -> None:
        instant = bulk.instant_formatter()
        now_s = instant(now)
        reasons = {
            SubscriptionStatus.CANCELED: "canceled_at_period_end",
            SubscriptionStatus.ACTIVE: "nothing_due",
            SubscriptionStatus.PAST_DUE: "no_payment_method",
        }
        for sub, renewal in renewals:
            invoice = renewal.invoice
            due = invoice.totals.amount_due_minor
            code = invoice.currency.code
            chunk.invoiced_minor[code] = chunk.invoiced_minor.get(code, 0) + invoice.totals.total_minor
            status = renewal.status
            chunk.statuses[sub.id] = status.value
            if status is SubscriptionStatus.CANCELED:
                chunk.canceled += 1
            elif status is SubscriptionStatus.TRIALING and due == 0:
                status = SubscriptionStatus.ACTIVE
            elif due > 0 and invoice.payment_method_id is None and status is not SubscriptionStatus.PAST_DUE:
                status = SubscriptionStatus.PAST_DUE
            chunk.statuses[sub.id] = status.value
            chunk.subscription_updates.append(
                (renewal.next_period_index, instant(renewal.next_invoice_at), instant(renewal.current_period_start),
                 instant(renewal.current_period_end), instant(renewal.usage_billed_until),
                 renewal.discounted_invoices, now_s, sub.id)
            )  # fmt: skip
            if status is not sub.status:
                chunk.status_updates.append((status.value, instant(renewal.ended_at), sub.id))
                chunk.events.append(Event(now, "subscription.status_changed", "subscription", str(sub.id),
                    canonical_json({"subscription_id": sub.id, "from": sub.status.value, "to": status.value,
                                    "reason": reasons[status]})))  # fmt: skip
            if renewal.items_changed:
                chunk.item_changes.append((sub.id, renewal.items))
                chunk.events.append(Event(now, "subscription.plan_changed", "subscription", str(sub.id),
                    canonical_json({"subscription_id": sub.id, "effective": "period_end",
                                    "items": [{"price_id": i.price_id, "quantity": i.quantity} for i in renewal.items]})))  # fmt: skip


def _items(bulk: Bulk, table: str) -> dict[int, list[SubscriptionItem]]:
    items: dict[int, list[SubscriptionItem]] = {}
    for sub_id, item_id, price_id, quantity in bulk.query(
        "SELECT subscription_id, id, price_id, quantity FROM subscription_items"
        f" WHERE subscription_id IN (SELECT id FROM {table}) ORDER BY subscription_id, id"
    ):
        items.setdefault(sub_id, []).append(SubscriptionItem(item_id, price_id, quantity))
    return items


def _subscription(row: tuple[Any, ...], items: Sequence[SubscriptionItem]) -> Subscription:
    (sid, customer_id, status, code, tz_name, months, started_at, anchor_at, n, next_at,
     period_start, period_end, trial_end, cancel_at_end, canceled_at, paused_at, coupon_id,
     discounted, usage_until, _updated) = row  # fmt: skip
    instant = parse_instant_column
    return Subscription(
        sid, customer_id, SubscriptionStatus(status), code, tz_name, months, instant(started_at),
        instant(anchor_at), n, instant(next_at), _maybe(period_start), _maybe(period_end), _maybe(trial_end),
        bool(cancel_at_end), _maybe(canceled_at), _maybe(paused_at), coupon_id, discounted,
        instant(usage_until), tuple(items),
    )  # fmt: skip


def _maybe(value: Any) -> datetime | None:
    return None if value is None else parse_instant_column(value)


def _write_chunk(tx: Tx, chunk: _Chunk, prefix: str) -> list[Written]:
    """Write a planned chunk under the lock; :class:`StaleBatch` if its subscriptions moved."""
    bulk = tx.bulk
    table = bulk.temp_ids("tmp_verify_subs", chunk.subscription_ids)
    lock = "" if bulk.sqlite else " FOR UPDATE"
    current = {
        sub_id: (n, status, updated)
        for sub_id, n, status, updated in bulk.query(
            f"SELECT id, next_period_index, status, updated_at FROM subscriptions WHERE id IN (SELECT id FROM {table})"
            f" ORDER BY id{lock}"
        )
    }
    bulk.execute(f"DROP TABLE IF EXISTS {table}")
    if current != chunk.versions:
        moved = sum(1 for k, v in chunk.versions.items() if current.get(k) != v)
        raise StaleBatch(f"{moved} subscriptions changed since the chunk was planned")
    written = write_batch(tx, chunk.batch, prefix=prefix)
    bulk.executemany(
        "UPDATE subscriptions SET next_period_index = ?, next_invoice_at = ?, current_period_start = ?,"
        " current_period_end = ?, usage_billed_until = ?, discounted_invoices = ?, updated_at = ? WHERE id = ?",
        chunk.subscription_updates,
    )
    bulk.executemany(
        "UPDATE subscriptions SET status = ?, ended_at = COALESCE(?, ended_at) WHERE id = ?",
        chunk.status_updates,
    )
    for sub_id, new_items in chunk.item_changes:
        bulk.execute("DELETE FROM subscription_items WHERE subscription_id = ?", (sub_id,))
        bulk.insert(
            "subscription_items", ["subscription_id", "price_id", "quantity"],
            [(sub_id, item.price_id, item.quantity) for item in new_items],
        )  # fmt: skip
        bulk.execute("DELETE FROM subscription_pending_changes WHERE subscription_id = ?", (sub_id,))
    tx.events.extend(chunk.events)
    return written


# The planner process's state, set once when it starts (see ``_Pass._planned``).
_REMOTE: dict[str, Any] = {}


def _start_planner(url: str, parent_engine: Engine, planner: _Planner, ids: _Reservation) -> None:
    from billing_core.db.engine import create_engine

    parent_engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    gc.disable()
    _REMOTE.update(engine=create_engine(url), planner=planner, ids=ids)


def _plan_in_process(sub_ids: list[int], now: datetime) -> _Chunk:
    engine: Engine = _REMOTE["engine"]
    with engine.connect().execution_options(read_only=True) as conn, conn.begin():
        chunk: _Chunk = _REMOTE["planner"].plan(Bulk(conn), sub_ids, _REMOTE["ids"], now)
        return chunk


class _Pass:
    """One pass over the subscriptions due: plan, write, collect, record, chunk after chunk.

    Planning and building rows happen on a read snapshot, outside the write lock; each write
    checks under the lock that what was planned still holds (see the module's docstring).
    """

    def __init__(
        self,
        ctx: BillingContext,
        planner: _Planner,
        result: BillingRunResult,
        collect: bool,
        on_progress: Callable[[int, int], None] | None,
        total: int,
        pipelined: bool = True,
    ) -> None:
        self.ctx = ctx
        self.planner = planner
        self.result = result
        self.collect = collect
        self.on_progress = on_progress
        self.total = total
        # a planner process prepares chunk k+1 while this process writes chunk k (fork only:
        # the planner, its caches and the id reservation are inherited, not pickled)
        self.pipelined = pipelined and "fork" in multiprocessing.get_all_start_methods()

    def run(self, due: list[int], chunk_size: int) -> None:
        with self.ctx.transaction() as tx:  # one short write: reserve every id the pass may use
            ids = _Reservation(
                iter(tx.bulk.reserve_ids("invoices", len(due))),
                iter(tx.bulk.reserve_ids("payment_attempts", len(due))),
                iter(tx.bulk.reserve_ids("payments", len(due))),
            )
        slices = [due[start : start + chunk_size] for start in range(0, len(due), chunk_size)]
        for chunk in self._planned(slices, ids):
            chunk = self._write(chunk)
            self._count(chunk)
            if self.collect and chunk.batch.queued:
                self.result.payments.add(self._collect(chunk, ids))

    def _planned(self, slices: list[list[int]], ids: _Reservation) -> Iterator[_Chunk]:
        """The chunks, planned in order: by a planner process while this one writes, when it can fork."""
        if len(slices) < 2 or not self.pipelined:
            for sub_ids in slices:
                with self.ctx.read() as conn:
                    yield self.planner.plan(Bulk(conn), sub_ids, ids, self.ctx.clock.now())
            return
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=1, mp_context=fork, initializer=_start_planner,
            initargs=(self.ctx.engine.url.render_as_string(hide_password=False), self.ctx.engine, self.planner, ids),
        ) as planner:  # fmt: skip
            ahead = planner.submit(_plan_in_process, slices[0], self.ctx.clock.now())
            for index in range(len(slices)):
                chunk = ahead.result()
                if index + 1 < len(slices):
                    ahead = planner.submit(_plan_in_process, slices[index + 1], self.ctx.clock.now())
                yield chunk

    def _write(self, chunk: _Chunk) -> _Chunk:
        prefix = self.ctx.invoice_prefix
        try:
            with self.ctx.transaction(checked_references=False) as tx:
                chunk.written = _write_chunk(tx, chunk, prefix)
                return chunk
        except StaleBatch:
            self.result.chunks_replanned += 1
            with self.ctx.transaction() as tx:  # plan again under the lock, where nothing moves
                bulk = tx.bulk
                ids = _Reservation(
                    iter(bulk.reserve_ids("invoices", len(chunk.subscription_ids))),
                    iter(bulk.reserve_ids("payment_attempts", len(chunk.subscription_ids))),
                    iter(()),
                )
                fresh = self.planner.plan(bulk, chunk.subscription_ids, ids, tx.now)
                fresh.written = _write_chunk(tx, fresh, prefix)
                return fresh

    def _count(self, chunk: _Chunk) -> None:
        result = self.result
        result.invoices += len(chunk.written)
        result.subscriptions_canceled += chunk.canceled
        for code, amount in chunk.invoiced_minor.items():
            result.invoiced_minor[code] = result.invoiced_minor.get(code, 0) + amount
        if self.on_progress:
            self.on_progress(result.invoices, max(self.total, result.invoices))

    def _collect(self, chunk: _Chunk, ids: _Reservation) -> CollectionResult:
        cards = chunk.cards
        pending = [
            Pending(a, cards[a.payment_method_id], "open", 0, a.amount_minor) for a in chunk.batch.queued
        ]
        answers = send(self.ctx, pending)
        statuses = chunk.statuses
        # a success changes the status of a subscription that is not active, once nothing else is open
        not_active = {
            p.attempt.subscription_id for p in pending
            if p.attempt.subscription_id is not None and statuses[p.attempt.subscription_id] != "active"
        }  # fmt: skip
        with self.ctx.read() as conn:
            bulk = Bulk(conn)
            counts = open_invoice_counts(bulk, not_active)
            subscriptions = {
                p.attempt.subscription_id: (
                    statuses[p.attempt.subscription_id],
                    counts.get(p.attempt.subscription_id, 0)
                    if p.attempt.subscription_id in not_active
                    else None,
                )
                for p in pending
                if p.attempt.subscription_id is not None
            }
            batch = build_results(
                pending, answers, payment_ids=ids.payments, subscriptions=subscriptions,
                now=self.ctx.clock.now(), bulk=bulk,
            )  # fmt: skip
        try:
            with self.ctx.transaction(checked_references=False) as tx:
                return write_results(tx, batch)
        except StaleBatch:
            with self.ctx.transaction() as tx:
                return record(tx, [p.attempt.attempt_id for p in pending], answers)
