"""Use case: the dunning run. Execute every dunning action due by ``as_of``, exactly once, in bulk.

``recoup dunning run --as-of 2026-03-08`` does, in order:

1. **settle** retries an interrupted run left in flight: their attempts are sent again with the
   same idempotency keys (the gateway answers as it did the first time, so no card is charged
   twice) and the answers recorded;
2. **open** a process for every invoice newly in collections: a payment failed (and none is
   pending), or the invoice is open past its due date; the policy decides each first action;
3. **sync** processes with the world: an invoice paid, voided or written off by other means ends
   its process (a subscription left with nothing open returns to active); a customer's new
   default card asks the policy again (by default: retry on it at once). Steps 2 and 3 look
   at what the outbox named since the last run (:mod:`billing_core.dunning.feed`);
4. **execute** the actions due by ``as_of``, pass after pass, until none is due (a late run
   catches up one step per pass; the policy skips the backlog of messages).

Set-based like the billing run: each chunk of processes (5,000 by default) is read with a couple
of queries, planned by pure code (the policy is asked once per chunk, outside any transaction),
and written with ``executemany`` in one short transaction that first checks, under the write
lock, that every process is still as it was read. Retries follow
:mod:`billing_core.services.collect_payments`: the chunk's attempts are committed as
``pending`` (with keys derived from the invoice and the attempt number) in that transaction, the
gateway is asked for all of them at once after the commit, and the answers are recorded, with
the retries' action rows, in a second transaction. Where the platform can fork, a helper process
reads and plans the chunks ahead and asks the gateway while this process checks and writes.

Exactly once: an action is a row of ``dunning_actions`` whose key ``(process_id, step)`` is
unique, written in the same transaction as the process's new step; a rerun finds nothing due
that was done, and a crash between the two transactions of a retry leaves the attempt pending
and the process waiting on it (``attempt_id``), which step 1 of the next run settles.

Two runs at once (PostgreSQL) share the work: each checks, under row locks, that what it planned
is still as read, and leaves the rest. Every write transaction takes its locks in one order,
processes before invoices before attempts before subscriptions, each by id (see
:mod:`billing_core.dunning.engine`), so the runs queue behind each other rather than deadlock.
Recording a retry's answer locks the retry's processes before the payment rows touch their
invoices; it used to lock the invoices first, and a deadlock followed whenever the other run was
checking a plan with the same processes. As a second line of defence, a write transaction that
PostgreSQL nevertheless chose as a deadlock victim (or that failed to serialize) is run again
from the start, a few times at most (:func:`_retrying`): each one checks again under the lock
what it writes, so running it again is safe.
"""

from __future__ import annotations

import gc
import multiprocessing
import time as _time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple, NoReturn, TypeVar

from billing_core.audit import Event
from billing_core.clock import utc
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.types import InstantTexts, ParsedInstants
from billing_core.dunning.engine import (
    Answer,
    Opening,
    Plan,
    Process,
    Retry,
    Snapshot,
    Tally,
    Writer,
    candidate_ids,
    decide,
    due_ids,
    in_flight_ids,
    lock_processes,
    out_of_step_ids,
    plan_due,
    plan_settlement,
    plan_sync,
    read_openings,
    read_retries,
    read_snapshots,
    retry_of,
    verify,
    verify_retries,
    write_openings,
    write_plan,
    write_settlement,
)
from billing_core.dunning.feed import (
    finish,
    open_unmanaged_ids,
    read_feed,
    touched_process_ids,
    watched_ids,
)
from billing_core.dunning.policy import DunningPolicy, StaticPolicy
from billing_core.errors import InvalidInput
from billing_core.invoice_writer import StaleBatch
from billing_core.payments import ChargeResult, DeclineCode
from billing_core.services.collect_payments import (
    CollectionResult,
    Pending,
    ResultBatch,
    build_results,
    open_invoice_counts,
    record,
    send,
    write_results,
)

#: ``on_progress(stage, done, total)``: stage is settle, open, sync or "pass N"
Progress = Callable[[str, int, int], None]


@dataclass
class DunningRunResult:
    as_of: datetime
    policy: str
    passes: int = 0
    postponed: int = 0  # due retries left for a later run: no card, or a payment already pending
    stale: int = 0  # steps not written because their process moved meanwhile (done by a later pass)
    complete: bool = True  # False if max_passes stopped the run with actions still due
    tally: Tally = field(default_factory=Tally)
    payments: CollectionResult = field(default_factory=CollectionResult)
    seconds: float = 0.0

    @property
    def opened(self) -> int:
        return self.tally.opened

    @property
    def actions(self) -> int:
        return self.tally.executed

    def count(self, action: str, outcome: str | None = None) -> int:
        return sum(
            n
            for key, n in self.tally.actions.items()
            if key.split("/")[0] == action and (outcome is None or key.split("/")[1] == outcome)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "policy": self.policy,
            "opened": self.opened,
            "actions": self.actions,
            "actions_by_outcome": dict(sorted(self.tally.actions.items())),
            "ended": dict(sorted(self.tally.ended.items())),
            "recovered_minor": dict(sorted(self.tally.recovered_minor.items())),
            "subscriptions_suspended": self.tally.subscriptions_suspended,
            "subscriptions_canceled": self.tally.subscriptions_canceled,
            "subscriptions_restored": self.tally.subscriptions_restored,
            "payments_attempted": self.payments.attempted,
            "payments_succeeded": self.payments.succeeded,
            "passes": self.passes,
            "postponed": self.postponed,
            "stale": self.stale,
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
        }


def run_dunning(
    ctx: BillingContext,
    *,
    as_of: datetime,
    policy: DunningPolicy | None = None,
    chunk_size: int = 5_000,
    max_passes: int = 20,
    write_off_cancels: bool = True,
    full_scan: bool = False,
    pipelined: bool = True,
    on_progress: Progress | None = None,
) -> DunningRunResult:
    """Settle, open, sync, then execute every dunning action due by ``as_of``.

    ``write_off_cancels``: a write-off also cancels the invoice's subscription if it is still in
    collections (``past_due`` or ``unpaid``): involuntary churn. ``full_scan``: look at every
    open invoice and every process, not only those the outbox named since the last run (the
    first run always does; see :mod:`billing_core.dunning.feed`). ``pipelined``: where the
    platform can fork and a pass has more than one chunk, a helper process reads and plans the
    chunks ahead and asks the gateway while this process writes.
    """
    when = utc(as_of, "as_of")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidInput("chunk_size", "a whole number >= 1", chunk_size)
    if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
        raise InvalidInput("max_passes", "a whole number >= 1", max_passes)
    chosen = policy if policy is not None else StaticPolicy()
    started = _time.perf_counter()
    result = DunningRunResult(as_of=when, policy=chosen.name)
    pipelined = pipelined and "fork" in multiprocessing.get_all_start_methods()
    run = _Run(ctx, chosen, result, chunk_size, write_off_cancels, pipelined, on_progress)
    collecting_garbage = gc.isenabled()
    gc.disable()  # many short-lived tuples per chunk: the cyclic collector would only scan them
    try:
        run.settle_in_flight()
        run.open_and_sync(when, full_scan)
        run.execute(when, max_passes)
    finally:
        if collecting_garbage:
            gc.enable()
    result.seconds = _time.perf_counter() - started
    return result


class _Run:
    """One run's steps, and what they did (``result``)."""

    def __init__(
        self,
        ctx: BillingContext,
        policy: DunningPolicy,
        result: DunningRunResult,
        chunk_size: int,
        write_off_cancels: bool,
        pipelined: bool,
        on_progress: Progress | None,
    ) -> None:
        self.pipelined = pipelined
        self.ctx = ctx
        self.policy = policy
        self.result = result
        self.chunk_size = chunk_size
        self.write_off_cancels = write_off_cancels
        self.on_progress = on_progress

    def _chunks(self, ids: Sequence[int]) -> list[Sequence[int]]:
        size = self.chunk_size
        return [ids[start : start + size] for start in range(0, len(ids), size)]

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.on_progress:
            self.on_progress(stage, done, total)

    # -- 1. retries left in flight ------------------------------------------------------------
    def settle_in_flight(self) -> None:
        with self.ctx.read() as conn:
            ids = in_flight_ids(Bulk(conn))
        done = 0
        for chunk in self._chunks(ids):
            self._settle_again(chunk, again=False)
            done += len(chunk)
            self._progress("settle", done, len(ids))

    def _settle_again(self, process_ids: Sequence[int], *, again: bool) -> None:
        """Settle the retries these processes wait on, reading them (and any answer recorded) afresh."""
        with self.ctx.read() as conn:
            bulk = Bulk(conn)
            snapshots = read_snapshots(bulk, process_ids, ParsedInstants())
            retries, recorded = read_retries(bulk, snapshots)
        self._settle(retries, recorded, again=again)

    # -- 2 and 3. new processes; processes out of step with their invoice or card -------------
    def open_and_sync(self, as_of: datetime, full_scan: bool) -> None:
        with self.ctx.read() as conn:
            bulk = Bulk(conn)
            feed = read_feed(bulk)
            watched = watched_ids(bulk)
            scan = full_scan or feed.after is None
            examine = sorted((open_unmanaged_ids(bulk) if scan else feed.examine) | watched)
            touched = (
                out_of_step_ids(bulk) if scan else touched_process_ids(bulk, feed.settled, feed.customers)
            )
            candidates = candidate_ids(bulk, as_of, only=examine) if examine else []
        self.open(as_of, candidates)
        self.sync(touched)

        def finished() -> None:
            with self.ctx.transaction() as tx:
                finish(tx.bulk, feed, examine, watched, tx.now)

        _retrying(finished)

    def open(self, as_of: datetime, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self.ctx.transaction() as tx:  # one short write: an id for every process this run may open
            process_ids = iter(tx.bulk.reserve_ids("dunning_processes", len(ids)))
        done = 0
        for chunk in self._chunks(ids):
            now = self.ctx.clock.now()
            texts = InstantTexts()
            with self.ctx.read() as conn:
                openings = read_openings(Bulk(conn), chunk, process_ids, ParsedInstants(texts))
            decided = decide(self.policy, [(o.process, o.world, None) for o in openings], now)
            openings = [Opening(p, o.world) for o, p in zip(openings, decided, strict=True)]
            self.result.tally.add(_retrying(self._write_openings, as_of, chunk, openings, now, texts))
            done += len(chunk)
            self._progress("open", done, len(ids))

    def _write_openings(
        self,
        as_of: datetime,
        chunk: Sequence[int],
        openings: list[Opening],
        now: datetime,
        texts: InstantTexts,
    ) -> Tally:
        """Open the processes of the invoices still not in dunning once locked (another run may have)."""
        with self.ctx.transaction(checked_references=False) as tx:
            still = set(candidate_ids(tx.bulk, as_of, only=chunk, lock=True))
            writer = Writer(tx, now, texts)
            write_openings(writer, [o for o in openings if o.process.invoice_id in still])
            return writer.flush()

    def sync(self, ids: Sequence[int]) -> None:
        done = 0
        for chunk in self._chunks(ids):
            now = self.ctx.clock.now()
            texts = InstantTexts()
            with self.ctx.read() as conn:
                snapshots = read_snapshots(Bulk(conn), chunk, ParsedInstants(texts))
            plan = plan_sync(snapshots, now=now, policy=self.policy)
            plan.texts = texts
            self._write(plan, now)
            done += len(chunk)
            self._progress("sync", done, len(ids))

    # -- 4. due actions -----------------------------------------------------------------------
    def execute(self, as_of: datetime, max_passes: int) -> None:
        postponed: set[int] = set()
        result = self.result
        with ExitStack() as stack:
            helper: ProcessPoolExecutor | None = None
            for _ in range(max_passes):
                with self.ctx.read() as conn:
                    due = [i for i in due_ids(Bulk(conn), as_of) if i not in postponed]
                if not due:
                    return
                result.passes += 1
                chunks = self._chunks(due)
                if self.pipelined and len(chunks) > 1 and helper is None:
                    helper = stack.enter_context(self._helper())
                if helper is not None and len(chunks) > 1:
                    self._pass_pipelined(helper, chunks, as_of, postponed, len(due))
                else:
                    self._pass(chunks, as_of, postponed, len(due))
            with self.ctx.read() as conn:
                result.complete = not [i for i in due_ids(Bulk(conn), as_of) if i not in postponed]

    def _pass(self, chunks: list[Sequence[int]], as_of: datetime, postponed: set[int], total: int) -> None:
        done = 0
        for chunk in chunks:
            now = self.ctx.clock.now()
            plan = _plan_chunk(self.ctx, self.policy, chunk, now, as_of)
            self._postpone(plan, postponed)
            claims, payment_ids = self._write(plan, now)
            if claims:
                retries = [retry_of(claim) for claim in claims]
                self._record(retries, _answer(self.ctx, self.policy, retries, {}, payment_ids))
            done += len(chunk)
            self._progress(f"pass {self.result.passes}", done, total)

    def _pass_pipelined(
        self,
        helper: ProcessPoolExecutor,
        chunks: list[Sequence[int]],
        as_of: datetime,
        postponed: set[int],
        total: int,
    ) -> None:
        """Write here while the helper process reads and plans the chunks ahead and asks the gateway.

        The helper runs its tasks in the order given: it plans chunk k+2 while this process
        writes chunk k, then asks the gateway for chunk k's retries (their attempts committed as
        pending by then), whose answers this process records after writing chunk k+1. A gateway
        whose answers live in this process's memory (a scripted test double) is asked from here.
        """
        remote = bool(getattr(self.ctx.gateway, "process_safe", False))
        clock = self.ctx.clock
        planned = deque(helper.submit(_plan_remote, i, chunks[i], clock.now(), as_of) for i in range(2))
        answering: deque[tuple[list[Retry], Future[tuple[Any, ...] | _RemoteError] | _Answered]] = deque()
        done = 0
        for index, chunk in enumerate(chunks):
            plan = Plan.unpack(_from_helper(planned.popleft().result()))
            if index + 2 < len(chunks):
                planned.append(helper.submit(_plan_remote, index + 2, chunks[index + 2], clock.now(), as_of))
            self._postpone(plan, postponed)
            claims, payment_ids = self._write(plan, clock.now())
            retries = [retry_of(claim) for claim in claims]
            if remote:
                # the helper kept the chunk's claims: it needs only the attempt ids just written
                sent = [(r.snapshot.process.id, r.attempt.attempt_id) for r in retries]
                answering.append((retries, helper.submit(_answer_remote, index, sent, payment_ids)))
            elif retries:
                answering.append((retries, _answer(self.ctx, self.policy, retries, {}, payment_ids)))
            while len(answering) > 1:
                self._record(*_resolved(answering.popleft()))
            done += len(chunk)
            self._progress(f"pass {self.result.passes}", done, total)
        while answering:
            self._record(*_resolved(answering.popleft()))

    def _postpone(self, plan: Plan, postponed: set[int]) -> None:
        postponed.update(plan.postponed)
        self.result.postponed += len(plan.postponed)

    @contextmanager
    def _helper(self) -> Iterator[ProcessPoolExecutor]:
        """A forked helper process that inherits the context and the policy (nothing is pickled)."""
        url = self.ctx.engine.url.render_as_string(hide_password=False)
        with ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_start_helper,
            initargs=(url, self.ctx, self.policy),
        ) as helper:
            yield helper

    # -- writing ------------------------------------------------------------------------------
    def _write(self, plan: Plan, now: datetime) -> tuple[list[Any], list[int]]:
        """Write a plan; returns its retries' claims and ids reserved for the payments they may bring."""
        if not len(plan):
            return [], []
        planned = len(plan)

        def write() -> tuple[list[Any], list[int], Tally]:
            with self.ctx.transaction(checked_references=False) as tx:
                # locks the plan's processes, then their invoices (the lock order: see the module's doc)
                current = verify(tx.bulk, plan.snapshots(), [claim.snapshot for claim in plan.claims])
                plan.keep(current)  # only ever drops steps: run again, it checks the rest again
                writer = Writer(tx, now, plan.texts)
                claims = write_plan(writer, plan, write_off_cancels=self.write_off_cancels)
                tally = writer.flush()
                payment_ids = tx.bulk.reserve_ids("payments", len(claims))
            return claims, payment_ids, tally

        claims, payment_ids, tally = _retrying(write)
        self.result.stale += planned - len(plan)
        self.result.tally.add(tally)
        return claims, payment_ids

    def _settle(self, retries: Sequence[Retry], recorded: dict[int, Answer], *, again: bool = True) -> None:
        """Ask the gateway for the retries not answered yet (outside any transaction), then record."""
        if not retries:
            return
        with self.ctx.transaction() as tx:
            payment_ids = tx.bulk.reserve_ids("payments", len(retries))
        self._record(retries, _answer(self.ctx, self.policy, retries, recorded, payment_ids), again=again)

    def _record(self, retries: Sequence[Retry], answered: _Answered, *, again: bool = True) -> None:
        """Record the gateway's answers and each retry's action, in one transaction.

        The rows that record the payments were built on what was read before the gateway was
        asked; if any of it moved meanwhile, they are built again under the lock. A retry whose
        attempt ended otherwise meanwhile (canceled with its voided invoice, say) is read again and
        settled as it ended (``again``: once; after that, the next run does it).
        """
        if not retries:
            return
        planned = []
        for retry, (answer, after) in zip(retries, answered.outcomes, strict=True):
            if after.id != retry.snapshot.process.id:  # pragma: no cover - outcomes keep the retries' order
                raise RuntimeError(f"dunning process {after.id} answered for {retry.snapshot.process.id}")
            planned.append((retry, answer, after))
        try:
            moved = _retrying(self._write_settlement, planned, answered, True)
        except StaleBatch:
            moved = _retrying(self._write_settlement, planned, answered, False)
        if moved and again:
            self._settle_again(moved, again=False)

    def _write_settlement(
        self, planned: list[tuple[Retry, Answer, Process]], answered: _Answered, built: bool
    ) -> list[int]:
        """Returns the processes whose retry was not as planned any more (they were left as they are)."""
        with self.ctx.transaction(checked_references=False) as tx:
            # the processes first: recording the payments locks their invoices and attempts, and
            # the other run, checking a plan, locks a process before its invoice (see the module's doc)
            lock_processes(tx.bulk, [retry.snapshot.process.id for retry, _a, _p in planned])
            payments = CollectionResult()
            if answered.batch is not None and built:
                payments = write_results(tx, answered.batch, verify=True)
            elif answered.sent:
                payments = record(tx, answered.sent, answered.charges)
            kept = verify_retries(tx.bulk, planned)
            writer = Writer(tx, answered.now)
            write_settlement(writer, planned, kept)
            tally = writer.flush()
        self.result.payments.add(payments)
        self.result.stale += len(planned) - len(kept)
        self.result.tally.add(tally)
        return [
            retry.snapshot.process.id for retry, _a, _p in planned if retry.snapshot.process.id not in kept
        ]


#: SQLSTATEs of a transaction PostgreSQL rolled back so that another could go on: it may simply
#: be run again (deadlock_detected, serialization_failure)
_RETRYABLE = frozenset({"40P01", "40001"})
#: how many times a write transaction is tried in all; the lock order makes a second rarely needed
_ATTEMPTS = 3
_T = TypeVar("_T")


def _retrying(write: Callable[..., _T], *args: Any) -> _T:
    """Run ``write(*args)`` (one whole transaction) again if PostgreSQL rolled it back as a deadlock victim.

    A second line of defence: the run takes its locks in one order, so two runs do not deadlock
    each other; a writer elsewhere in the billing core that locks in another order still might.
    Each of the run's write transactions checks under its locks what it is about to write, so a
    rolled-back one can run again from the start; its results are counted only once it commits.
    Bounded: after ``_ATTEMPTS`` the error goes up, as any other.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return write(*args)
        except Exception as error:
            if attempt == _ATTEMPTS or _sqlstate(error) not in _RETRYABLE:
                raise
        _time.sleep(0.01 * attempt)  # let the transaction that won finish
    raise AssertionError("unreachable")  # pragma: no cover


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error, raw (``Bulk`` uses the driver) or wrapped by SQLAlchemy."""
    code = getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None)
    return code if isinstance(code, str) else None


class _Answered(NamedTuple):
    """What became of a chunk's retries: the attempts sent, the gateway's answers, and each outcome."""

    now: datetime
    sent: list[int]  # attempt ids asked of the gateway now (the others were answered before)
    charges: list[ChargeResult]
    outcomes: list[tuple[Answer, Process]]  # per retry, in order: its answer and the process after it
    batch: ResultBatch | None  # the rows that record the charges, built on what was read before

    def pack(self) -> tuple[Any, ...]:
        """Plain tuples, to cross from the helper process cheaply."""
        batch = self.batch
        packed_batch = None
        if batch is not None:
            r = batch.result
            packed_batch = (
                batch.attempt_updates, batch.payments, batch.invoice_updates, batch.balance_credits,
                batch.status_updates, [tuple(e) for e in batch.events], batch.expected_invoices,
                batch.expected_subscriptions, (r.attempted, r.succeeded, r.failed, r.collected_minor, r.decline_codes),
            )  # fmt: skip
        return (
            self.now,
            self.sent,
            [(c.idempotency_key, c.succeeded, c.gateway_reference, c.decline_code.value if c.decline_code else None)
             for c in self.charges],
            [(answer.status, answer.decline_code, tuple(after)) for answer, after in self.outcomes],
            packed_batch,
        )  # fmt: skip

    @classmethod
    def unpack(cls, packed: tuple[Any, ...]) -> _Answered:
        now, sent, charges, outcomes, packed_batch = packed
        batch = None
        if packed_batch is not None:
            (attempt_updates, payments, invoice_updates, balance_credits, status_updates, events,
             expected_invoices, expected_subscriptions, result) = packed_batch  # fmt: skip
            batch = ResultBatch(
                attempt_updates, payments, invoice_updates, balance_credits, status_updates,
                [tuple.__new__(Event, e) for e in events], expected_invoices, expected_subscriptions,
                CollectionResult(*result),
            )  # fmt: skip
        return cls(
            now,
            sent,
            [
                ChargeResult(key, ok, ref, DeclineCode(code) if code else None)
                for key, ok, ref, code in charges
            ],
            [(Answer(status, code), tuple.__new__(Process, after)) for status, code, after in outcomes],
            batch,
        )


def _plan_chunk(
    ctx: BillingContext, policy: DunningPolicy, ids: Sequence[int], now: datetime, as_of: datetime
) -> Plan:
    texts = InstantTexts()
    with ctx.read() as conn:
        snapshots = read_snapshots(Bulk(conn), ids, ParsedInstants(texts), retries_due_by=as_of)
    plan = plan_due(snapshots, now=now, as_of=as_of, policy=policy)
    plan.texts = texts
    return plan


def _answer(
    ctx: BillingContext,
    policy: DunningPolicy,
    retries: Sequence[Retry],
    recorded: dict[int, Answer],
    payment_ids: Sequence[int],
) -> _Answered:
    """Ask the gateway (outside any transaction) for the retries not answered yet; decide what follows.

    Also builds, on a read snapshot, the rows that record the charges (as the billing run does), so
    that the writer only checks and writes them.
    """
    to_send = [r for r in retries if r.attempt.attempt_id not in recorded]
    charges = send(
        ctx, [Pending(r.attempt, r.card, "open", 0, r.attempt.amount_minor) for r in to_send]
    ) if to_send else []  # fmt: skip
    by_key = {charge.idempotency_key: charge for charge in charges}
    answered: list[tuple[Retry, Answer]] = []
    for retry in retries:
        answer = recorded.get(retry.attempt.attempt_id)
        if answer is None:
            charge = by_key[retry.attempt.idempotency_key]
            if charge.succeeded:
                answer = Answer("succeeded", None)
            else:
                answer = Answer("failed", charge.decline_code.value if charge.decline_code else "unknown")
        answered.append((retry, answer))
    now = ctx.clock.now()
    planned = plan_settlement(answered, now=now, policy=policy)
    batch = _result_batch(ctx, to_send, charges, payment_ids, now) if to_send else None
    return _Answered(
        now,
        [r.attempt.attempt_id for r in to_send],
        charges,
        [(answer, after) for _r, answer, after in planned],
        batch,
    )


def _result_batch(
    ctx: BillingContext,
    retries: Sequence[Retry],
    charges: Sequence[ChargeResult],
    payment_ids: Sequence[int],
    now: datetime,
) -> ResultBatch:
    """The rows recording ``charges``, from the retries' invoices and subscriptions as read."""
    pending = []
    statuses: dict[int, str] = {}
    for retry in retries:
        world = retry.snapshot.world
        pending.append(
            Pending(
                retry.attempt,
                retry.card,
                world.invoice_status,
                world.amount_paid_minor,
                world.amount_remaining_minor,
            )
        )
        sub_id = retry.attempt.subscription_id
        if sub_id is not None and world.subscription_status is not None:
            statuses[sub_id] = world.subscription_status
    not_active = {sub_id for sub_id, status in statuses.items() if status != "active"}
    with ctx.read() as conn:
        bulk = Bulk(conn)
        counts = open_invoice_counts(bulk, not_active)
        subscriptions: dict[int, tuple[str, int | None]] = {
            sub_id: (status, counts.get(sub_id, 0) if sub_id in not_active else None)
            for sub_id, status in statuses.items()
        }
        return build_results(
            pending, charges, payment_ids=iter(payment_ids), subscriptions=subscriptions, now=now, bulk=bulk
        )


def _resolved(
    item: tuple[list[Retry], Future[tuple[Any, ...] | _RemoteError] | _Answered],
) -> tuple[list[Retry], _Answered]:
    retries, answered = item
    if isinstance(answered, Future):
        return retries, _Answered.unpack(_from_helper(answered.result()))
    return retries, answered


# The helper process's state, set once when it starts (see ``_Run._helper``).
_REMOTE: dict[str, Any] = {}


def _start_helper(url: str, ctx: BillingContext, policy: DunningPolicy) -> None:
    from billing_core.db.engine import create_engine

    ctx.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    gc.disable()
    _REMOTE.update(ctx=replace(ctx, engine=create_engine(url)), policy=policy)


class _RemoteError(NamedTuple):
    """An :class:`InvalidInput` raised in the helper (its signature does not survive pickling)."""

    field: str
    expected: str
    got: Any
    hint: str | None

    def raise_(self) -> NoReturn:
        raise InvalidInput(self.field, self.expected, self.got, hint=self.hint)


def _plan_remote(
    index: int, ids: Sequence[int], now: datetime, as_of: datetime
) -> tuple[Any, ...] | _RemoteError:
    """Plan chunk ``index``; keep its retries here (the gateway is asked from here), send the plan."""
    try:
        plan = _plan_chunk(_REMOTE["ctx"], _REMOTE["policy"], ids, now, as_of)
    except InvalidInput as error:  # a policy's answer the engine refuses
        return _RemoteError(error.field, error.expected, repr(error.got), error.hint)
    _REMOTE.setdefault("claims", {})[index] = {claim.snapshot.process.id: claim for claim in plan.claims}
    return plan.pack()


def _answer_remote(
    index: int, written: Sequence[tuple[int, int]], payment_ids: Sequence[int]
) -> tuple[Any, ...] | _RemoteError:
    """Ask the gateway for chunk ``index``'s retries the writer committed: ``(process id, attempt id)``."""
    claims = _REMOTE["claims"].pop(index)
    retries = []
    for process_id, attempt_id in written:
        claim = claims[process_id]
        p, world = claim.snapshot
        retries.append(retry_of(claim._replace(snapshot=Snapshot(p._replace(attempt_id=attempt_id), world))))
    try:
        return _answer(_REMOTE["ctx"], _REMOTE["policy"], retries, {}, payment_ids).pack()
    except InvalidInput as error:
        return _RemoteError(error.field, error.expected, repr(error.got), error.hint)


def _from_helper(packed: tuple[Any, ...] | _RemoteError) -> tuple[Any, ...]:
    if isinstance(packed, _RemoteError):
        packed.raise_()
    return packed
