"""Use case: the billing run. Invoice every subscription period due by ``as_of``, in bulk.

``recoup bill --as-of 2026-03-01`` renews every trialing, active or past-due subscription whose
next period starts on or before ``as_of``: it charges the licensed prices for the new period and
the usage of the one just ended, applies discounts, the customer's credit balance and taxes,
finalizes the invoice, and attempts the payment. A subscription several periods behind is caught
up period by period (one pass per period).

How it scales
-------------
The run is set-based. Due subscriptions are taken in chunks (5,000 by default), in id order;
the due index is keyed by day on SQLite (:mod:`billing_core.db.due`) so that renewing them in
that order rewrites few of its pages.
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
the planner, its pricing caches and the reserved ids) plans the next chunks on its own read
snapshot while this process writes, and this process plans a chunk itself whenever the helper
has not finished the next one. Chunks are disjoint sets of subscriptions, written in order,
each with its own block of the reserved ids; a customer balance that an earlier chunk changed
is caught by the version check below.

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
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine

from billing_core.audit import Event, canonical_json
from billing_core.catalog import Aggregation, Price, UsageType
from billing_core.context import BillingContext, Tx
from billing_core.customers import CardBrand, PaymentMethod
from billing_core.db import repository
from billing_core.db.bulk import Bulk
from billing_core.db.due import due_condition
from billing_core.db.types import InstantTexts, ParsedInstants
from billing_core.db.usage_queries import aggregate_windows, metered_windows
from billing_core.discounts import Coupon
from billing_core.invoice_writer import Attempt, InvoiceBatch, StaleBatch, Written, build_batch, write_batch
from billing_core.invoicing import InvoicePlan, OneTimeCharge, PricingCache, Renewal, plan_renewal
from billing_core.services.collect_payments import (
    CollectionResult,
    Pending,
    ResultBatch,
    build_results,
    collect_payments,
    open_invoice_counts,
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
    chunks: int = 0
    chunks_by_helper: int = 0  # planned (and collected) by the helper process
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
            "chunks": self.chunks,
            "chunks_by_helper": self.chunks_by_helper,
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
        catalog, cache = _catalog_of(ctx.engine, conn)
        planner = _Planner(ctx, catalog, as_of, cache)
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
    due, params = due_condition(bulk, as_of)
    where = f"{due} AND status IN ({_BILLABLE})"
    if subscription_ids is not None:
        bulk.temp_ids("tmp_only", subscription_ids)
        where += " AND id IN (SELECT id FROM tmp_only)"
    ids = [row[0] for row in bulk.query(f"SELECT id FROM subscriptions WHERE {where}", params)]
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


#: a run's pricing memo is dropped at the start of a run once it holds this many entries
_PRICING_CACHE_ENTRIES = 200_000


@dataclass
class _CachedCatalog:
    fingerprint: tuple[Any, ...]
    catalog: _Catalog
    cache: PricingCache


_CATALOGS: weakref.WeakKeyDictionary[Engine, _CachedCatalog] = weakref.WeakKeyDictionary()


def _catalog_of(engine: Engine, conn: Any) -> tuple[_Catalog, PricingCache]:
    """The catalog and the pricing memo for a run, kept from the previous run on the same engine.

    Catalog rows (prices and their tiers, coupons, tax rates, metrics) are only ever inserted, never
    updated: a changed price is a new price. So what earlier runs loaded and priced still holds as
    long as no row was added, which one query of counts and highest ids tells. A simulation that
    bills every day thus loads the catalog once and prices each case once, not once per run.
    """
    fingerprint = repository.catalog_fingerprint(conn)
    cached = _CATALOGS.get(engine)
    if cached is None or cached.fingerprint != fingerprint:
        cached = _CATALOGS[engine] = _CachedCatalog(fingerprint, _Catalog.load(conn), PricingCache())
    elif cached.cache.size() > _PRICING_CACHE_ENTRIES:  # usage amounts vary without end: bound the memo
        cached.cache.clear()
    return cached.catalog, cached.cache


@dataclass
class _Ids:
    """Ids for one chunk, handed out in order."""

    invoices: Iterator[int]
    attempts: Iterator[int]
    payments: Iterator[int]


@dataclass
class _Reservation:
    """Ids reserved for a pass: chunk k always gets the k-th block of each, whoever plans it.

    A chunk has at most ``chunk_size`` invoices, attempts and payments, so the run's ids (and
    the gateway's answers, which follow the attempts' keys) do not depend on which process
    planned which chunk.
    """

    invoices: list[int]
    attempts: list[int]
    payments: list[int]
    chunk_size: int

    def chunk(self, index: int) -> _Ids:
        block = slice(index * self.chunk_size, (index + 1) * self.chunk_size)
        return _Ids(iter(self.invoices[block]), iter(self.attempts[block]), iter(self.payments[block]))


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
    to_collect: int = 0  # pending attempts among the rows

    def collection(self) -> _Collection:
        return _Collection(self.batch.queued, self.cards, self.statuses)


_SUB_COLUMNS = (
    "id, customer_id, status, currency, tz_name, months_per_period, started_at, anchor_at,"
    " next_period_index, next_invoice_at, current_period_start, current_period_end, trial_end,"
    " cancel_at_period_end, canceled_at, paused_at, coupon_id, discounted_invoices, usage_billed_until,"
    " updated_at"
)


class _Planner:
    """Reads a chunk's inputs and plans its invoices; works on any connection."""

    def __init__(self, ctx: BillingContext, catalog: _Catalog, as_of: datetime, cache: PricingCache) -> None:
        self.ctx = ctx
        self.catalog = catalog
        self.as_of = as_of
        self.cache = cache

    def plan(self, bulk: Bulk, sub_ids: Sequence[int], ids: _Ids, now: datetime) -> _Chunk:
        table = bulk.temp_ids("tmp_subs", sub_ids)
        rows = bulk.query(
            f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE id IN (SELECT id FROM {table})"
            f" AND next_invoice_at <= ? AND status IN ({_BILLABLE}) ORDER BY id",
            (bulk.instant(self.as_of),),
        )
        items = _items(bulk, table)
        texts = InstantTexts()  # the chunk's instants, parsed and formatted once each
        parsed = ParsedInstants(texts)
        subs = [_subscription(row, items.get(row[0], ()), parsed) for row in rows]
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
            days_until_due=self.ctx.days_until_due, source="billing_run", bulk=bulk, texts=texts,
        )  # fmt: skip
        chunk = _Chunk(
            list(versions), versions, batch, [], [], [], [], {}, 0, cards=cards, to_collect=len(batch.queued)
        )
        self._subscription_rows(bulk.instant_formatter(texts), renewals, now, chunk)
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
        self,
        instant: Callable[[datetime | None], Any],
        renewals: Sequence[tuple[Subscription, Renewal]],
        now: datetime,
        chunk: _Chunk,
    ) -> None:
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


_Required = Callable[[Any], datetime]
_STATUSES = {status.value: status for status in SubscriptionStatus}  # faster than SubscriptionStatus(value)


def _subscription(
    row: tuple[Any, ...], items: Sequence[SubscriptionItem], instant: ParsedInstants
) -> Subscription:
    (sid, customer_id, status, code, tz_name, months, started_at, anchor_at, n, next_at,
     period_start, period_end, trial_end, cancel_at_end, canceled_at, paused_at, coupon_id,
     discounted, usage_until, _updated) = row  # fmt: skip
    required = cast(_Required, instant.__getitem__)  # these columns are NOT NULL
    return Subscription(
        sid, customer_id, _STATUSES[status], code, tz_name, months, required(started_at),
        required(anchor_at), n, required(next_at), instant[period_start], instant[period_end], instant[trial_end],
        bool(cancel_at_end), instant[canceled_at], instant[paused_at], coupon_id, discounted,
        required(usage_until), tuple(items),
    )  # fmt: skip


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


# The helper process's state, set once when it starts (see ``_Pass._run_pipelined``).
_REMOTE: dict[str, Any] = {}


def _start_helper(url: str, parent_engine: Engine, planner: _Planner, ids: _Reservation) -> None:
    from billing_core.db.engine import create_engine

    parent_engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    gc.disable()
    _REMOTE.update(engine=create_engine(url), planner=planner, ids=ids)


def _plan_in_helper(index: int, sub_ids: list[int], now: datetime) -> _Chunk:
    """Plan a chunk; keep what collecting it needs here, and send back only the rows to write."""
    engine: Engine = _REMOTE["engine"]
    with engine.connect().execution_options(read_only=True) as conn, conn.begin():
        chunk: _Chunk = _REMOTE["planner"].plan(Bulk(conn), sub_ids, _REMOTE["ids"].chunk(index), now)
    _REMOTE.setdefault("collections", {})[index] = chunk.collection()
    chunk.batch.queued, chunk.cards = [], {}  # cards and attempts stay here: pickling them is costly
    return chunk


def _collect_in_helper(index: int, replanned: _Collection | None, now: datetime) -> _Collected:
    """Collect chunk ``index`` as planned here, or as the writer planned it again under the lock."""
    request: _Collection = _REMOTE["collections"].pop(index)
    if replanned is not None:
        request = replanned
    planner: _Planner = _REMOTE["planner"]
    return request.send_and_build(planner.ctx, _REMOTE["engine"], _REMOTE["ids"].chunk(index).payments, now)


def _take_collection(index: int) -> _Collection:
    """Hand chunk ``index``'s collection to the writer (for gateways it must ask itself)."""
    collection: _Collection = _REMOTE["collections"].pop(index)
    return collection


def _pending(*futures: Future[Any] | None) -> bool:
    return any(future is not None and not future.done() for future in futures)


class _Collected(NamedTuple):
    attempt_ids: list[int]
    batch: ResultBatch


@dataclass
class _Collection:
    """A planned chunk's pending attempts, with what building their results needs."""

    queued: list[Attempt]
    cards: dict[int, PaymentMethod]
    statuses: dict[int, str]  # each subscription's status as the chunk wrote it

    def send_and_build(
        self, ctx: BillingContext, engine: Engine, payment_ids: Iterator[int], now: datetime
    ) -> _Collected:
        """Ask the gateway (outside any transaction), then build the rows that record its answers."""
        cards, statuses = self.cards, self.statuses
        pending = [Pending(a, cards[a.payment_method_id], "open", 0, a.amount_minor) for a in self.queued]
        answers = send(ctx, pending)
        # a success changes the status of a subscription that is not active, once nothing else is open
        not_active = {
            p.attempt.subscription_id for p in pending
            if p.attempt.subscription_id is not None and statuses[p.attempt.subscription_id] != "active"
        }  # fmt: skip
        with engine.connect().execution_options(read_only=True) as conn, conn.begin():
            bulk = Bulk(conn)
            counts = open_invoice_counts(bulk, not_active)
            subscriptions = {
                sub_id: (statuses[sub_id], counts.get(sub_id, 0) if sub_id in not_active else None)
                for sub_id in {p.attempt.subscription_id for p in pending}
                if sub_id is not None
            }
            batch = build_results(
                pending, answers, payment_ids=payment_ids, subscriptions=subscriptions, now=now, bulk=bulk
            )
        return _Collected([a.attempt_id for a in self.queued], batch)


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
        # a helper process plans the chunks ahead and collects those written while this process
        # writes (fork only: the planner, its caches and the id reservation are inherited, not pickled)
        self.pipelined = pipelined and "fork" in multiprocessing.get_all_start_methods()

    def run(self, due: list[int], chunk_size: int) -> None:
        with self.ctx.transaction() as tx:  # one short write: reserve every id the pass may use
            ids = _Reservation(
                tx.bulk.reserve_ids("invoices", len(due)),
                tx.bulk.reserve_ids("payment_attempts", len(due)),
                tx.bulk.reserve_ids("payments", len(due)),
                chunk_size,
            )
        slices = [due[start : start + chunk_size] for start in range(0, len(due), chunk_size)]
        if self.pipelined and len(slices) > 1:
            self._run_pipelined(slices, ids)
            return
        for index, sub_ids in enumerate(slices):
            chunk_ids = ids.chunk(index)
            chunk = self._write(self._plan_here(sub_ids, chunk_ids))
            self._count(chunk)
            if self.collect and chunk.to_collect:
                self._record(self._send_here(chunk.collection(), chunk_ids.payments))

    def _run_pipelined(self, slices: list[list[int]], ids: _Reservation) -> None:
        """Write here while a helper process plans the chunks ahead and collects those written.

        Chunks are written in order. The helper runs its tasks in the order they are given and
        is kept two chunks ahead. After chunk k is written it is asked to collect chunk k (whose
        invoices are committed); those answers are written in the same transaction as chunk k+2,
        by which time the helper has long sent them: one commit per chunk, and only writing
        holds the lock. Cards and pending attempts stay in the helper, which planned them; only
        rows to write cross between the processes.

        When the next chunk to write is not planned yet, or the answers to write with it are not
        ready, this process does not wait: it plans (and later collects) the first chunk nobody
        has taken, so the work balances itself between the two processes on any machine. Ids
        come from each chunk's own block, so who planned what changes nothing in what is
        written. A gateway whose answers live in this process's memory (a scripted test double)
        is always asked from here.
        """
        remote = bool(getattr(self.ctx.gateway, "process_safe", False))
        clock = self.ctx.clock
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=1, mp_context=fork, initializer=_start_helper,
            initargs=(self.ctx.engine.url.render_as_string(hide_password=False), self.ctx.engine, self.planner, ids),
        ) as helper:  # fmt: skip
            by_helper: dict[int, Future[_Chunk]] = {}
            here: dict[int, _Chunk] = {}
            taken = 0  # chunks below this index are being planned (or written) by someone

            def keep_helper_ahead() -> None:
                nonlocal taken
                while len(by_helper) < 2 and taken < len(slices):
                    by_helper[taken] = helper.submit(_plan_in_helper, taken, slices[taken], clock.now())
                    taken += 1

            keep_helper_ahead()
            collecting: deque[Future[_Collected] | None] = deque()
            for index in range(len(slices)):
                answers = collecting.popleft() if len(collecting) == 2 else None
                # the chunk to write, or the answers to write with it, still with the helper?
                while _pending(by_helper.get(index), answers) and taken < len(slices) and len(here) < 2:
                    here[taken] = self._plan_here(slices[taken], ids.chunk(taken))  # rather than wait
                    taken += 1
                planned_here = index in here
                planned_chunk = here.pop(index) if planned_here else by_helper.pop(index).result()
                self.result.chunks_by_helper += not planned_here
                keep_helper_ahead()
                chunk = self._write(planned_chunk, answers.result() if answers is not None else None)
                self._count(chunk)
                replanned = chunk is not planned_chunk
                if not (self.collect and chunk.to_collect):
                    collecting.append(None)
                elif planned_here:  # collected here, recorded with a later chunk like the helper's
                    collected: Future[_Collected] = Future()
                    collected.set_result(self._send_here(chunk.collection(), ids.chunk(index).payments))
                    collecting.append(collected)
                elif remote:
                    request = chunk.collection() if replanned else None
                    collecting.append(helper.submit(_collect_in_helper, index, request, clock.now()))
                else:
                    request = (
                        chunk.collection() if replanned else helper.submit(_take_collection, index).result()
                    )
                    self._record(self._send_here(request, ids.chunk(index).payments))
                    collecting.append(None)
            for answers in collecting:
                if answers is not None:
                    self._record(answers.result())

    def _plan_here(self, sub_ids: list[int], ids: _Ids) -> _Chunk:
        with self.ctx.read() as conn:
            return self.planner.plan(Bulk(conn), sub_ids, ids, self.ctx.clock.now())

    def _send_here(self, request: _Collection, payment_ids: Iterator[int]) -> _Collected:
        return request.send_and_build(self.ctx, self.ctx.engine, payment_ids, self.ctx.clock.now())

    def _write(self, chunk: _Chunk, answers: _Collected | None = None) -> _Chunk:
        """Write a planned chunk, and earlier answers with it; plan it again under the lock if stale."""
        prefix = self.ctx.invoice_prefix
        if answers is not None:
            try:
                with self.ctx.transaction(checked_references=False) as tx:
                    payments = write_results(tx, answers.batch)
                    chunk.written = _write_chunk(tx, chunk, prefix)
                self.result.payments.add(payments)
                return chunk
            except StaleBatch:  # one of the two moved: record the answers alone, then the chunk
                self._record(answers)
        try:
            with self.ctx.transaction(checked_references=False) as tx:
                chunk.written = _write_chunk(tx, chunk, prefix)
                return chunk
        except StaleBatch:
            self.result.chunks_replanned += 1
            with self.ctx.transaction() as tx:  # plan again under the lock, where nothing moves
                bulk = tx.bulk
                ids = _Ids(
                    iter(bulk.reserve_ids("invoices", len(chunk.subscription_ids))),
                    iter(bulk.reserve_ids("payment_attempts", len(chunk.subscription_ids))),
                    iter(()),
                )
                fresh = self.planner.plan(bulk, chunk.subscription_ids, ids, tx.now)
                fresh.written = _write_chunk(tx, fresh, prefix)
                return fresh

    def _count(self, chunk: _Chunk) -> None:
        result = self.result
        result.chunks += 1
        result.invoices += len(chunk.written)
        result.subscriptions_canceled += chunk.canceled
        for code, amount in chunk.invoiced_minor.items():
            result.invoiced_minor[code] = result.invoiced_minor.get(code, 0) + amount
        if self.on_progress:
            self.on_progress(result.invoices, max(self.total, result.invoices))

    def _record(self, collected: _Collected) -> None:
        """Write the answers; if what they were built from moved, ask again and record under the lock.

        Asking again is safe: the gateway answers a repeated idempotency key as it did the first time.
        """
        try:
            with self.ctx.transaction(checked_references=False) as tx:
                self.result.payments.add(write_results(tx, collected.batch))
        except StaleBatch:
            self.result.payments.add(collect_payments(self.ctx, attempt_ids=collected.attempt_ids))
