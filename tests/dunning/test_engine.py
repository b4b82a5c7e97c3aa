"""The engine's guarantees: bad input refused, exactly once under concurrency, the feed and the scans."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError

from billing_core.dunning.lifecycle import Action, Channel
from billing_core.dunning.policy import Decision, DunningState, StaticPolicy
from billing_core.errors import InvalidInput
from billing_core.payments import DeclineCode, SimulatedGateway
from billing_core.services import run_dunning as run_dunning_module
from billing_core.services.run_dunning import run_dunning
from tests.dunning.conftest import Dunning

D = DeclineCode
DAY = timedelta(days=1)


def test_bad_arguments_are_refused_naming_the_field(dunning: Dunning) -> None:
    for kwargs, field in (
        ({"as_of": datetime(2026, 1, 2)}, "as_of"),  # noqa: DTZ001 - naive on purpose
        ({"as_of": "2026-01-02"}, "as_of"),
        ({"as_of": dunning.clock.now(), "chunk_size": 0}, "chunk_size"),
        ({"as_of": dunning.clock.now(), "max_passes": 0}, "max_passes"),
    ):
        with pytest.raises(InvalidInput) as info:
            run_dunning(dunning.ctx, **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field


class _Stubborn:
    """A policy that wants a final notice even from a suspended process (the engine refuses it)."""

    name = "stubborn"

    def decide(self, states: Sequence[DunningState]) -> list[Decision]:
        return [Decision(Action.FINAL_NOTICE, Channel.EMAIL, s.now) for s in states]


def test_a_policy_answer_the_engine_cannot_carry_out_writes_nothing(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _c, _s, invoice = dunning.failing_subscription(D.INSUFFICIENT_FUNDS)
    dunning.run(start)
    dunning.query("SELECT 1")
    with dunning.ctx.transaction() as tx:
        tx.bulk.execute("UPDATE dunning_processes SET status = 'suspended' WHERE invoice_id = ?", (invoice,))
    with pytest.raises(InvalidInput) as info:
        dunning.run(start + DAY, policy=_Stubborn())
    assert info.value.field == "stubborn.decide[0].action"
    assert dunning.actions(invoice) == []
    assert dunning.process(invoice)["step"] == 0


def test_a_custom_policy_is_recorded_with_the_actions_it_chose(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _c, _s, invoice = dunning.failing_subscription(D.LOST_CARD)
    texting = StaticPolicy(name="sms-first", reminders=((1, Channel.SMS), (2, Channel.CALL)))
    dunning.run_days(start, range(0, 3), policy=texting)
    assert dunning.actions(invoice) == [(1, "remind", "sms", "queued"), (2, "remind", "call", "queued")]
    assert dunning.query("SELECT DISTINCT policy FROM dunning_actions") == [("sms-first",)]
    process = dunning.process(invoice)
    assert (process["reminders"], process["reminders_sms"], process["reminders_call"]) == (2, 1, 1)
    assert process["decided_by"] == "sms-first"


def test_a_card_changed_behind_the_feed_is_found_by_a_full_scan(dunning: Dunning) -> None:
    start = dunning.clock.now()
    customer, _s, invoice = dunning.failing_subscription(D.FRAUDULENT)
    dunning.run(start)
    dunning.run(start + DAY)  # day 1: a reminder; the next one is due on day 3
    with dunning.ctx.transaction() as tx:  # a card set without the use case (no event)
        bulk = tx.bulk
        (card,) = bulk.reserve_ids("payment_methods", 1)
        bulk.insert(
            "payment_methods",
            [
                "id",
                "customer_id",
                "brand",
                "bin",
                "last4",
                "exp_month",
                "exp_year",
                "fingerprint",
                "created_at",
            ],
            [(card, customer, "visa", "411111", "1111", 4, 2031, "fp-direct", bulk.instant(tx.now))],
        )
        bulk.execute("UPDATE customers SET default_payment_method_id = ? WHERE id = ?", (card, customer))
    assert dunning.run(start + DAY + timedelta(hours=1)).actions == 0  # the feed named nothing
    result = dunning.run(start + DAY + timedelta(hours=2), full_scan=True)
    assert result.count("retry", "succeeded") == 1
    assert dunning.invoice(invoice)["status"] == "paid"


def test_a_new_card_the_feed_missed_is_still_tried_at_the_next_wake_up(dunning: Dunning) -> None:
    start = dunning.clock.now()
    customer, _s, invoice = dunning.failing_subscription(D.EXPIRED_CARD)
    dunning.run_days(start, range(0, 2))
    with dunning.ctx.transaction() as tx:
        (card,) = tx.bulk.reserve_ids("payment_methods", 1)
        tx.bulk.insert(
            "payment_methods",
            [
                "id",
                "customer_id",
                "brand",
                "bin",
                "last4",
                "exp_month",
                "exp_year",
                "fingerprint",
                "created_at",
            ],
            [(card, customer, "visa", "411111", "1111", 4, 2031, "fp-direct", tx.bulk.instant(tx.now))],
        )
        tx.bulk.execute("UPDATE customers SET default_payment_method_id = ? WHERE id = ?", (card, customer))
    dunning.run_days(start, range(2, 4))
    assert dunning.actions(invoice) == [(1, "remind", "email", "queued"), (3, "retry", None, "succeeded")]


@pytest.fixture
def no_second_try(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write transaction tried once: a deadlock fails the test instead of being run again.

    The runs' lock order alone must keep them apart; the bounded retry of a deadlock victim is
    only a second line of defence (tested on its own below).
    """
    monkeypatch.setattr(run_dunning_module, "_ATTEMPTS", 1)


@pytest.mark.usefixtures("no_second_try")
def test_two_runs_at_once_share_the_work_and_do_each_action_once(dunning: Dunning) -> None:
    """Two engines in two threads, on the same day's work: every step is done exactly once."""
    ctx = dataclasses.replace(dunning.ctx, gateway=SimulatedGateway(3, soft_decline_rate=0.7))
    start = dunning.clock.now()
    invoices = [dunning.failing_subscription(D.INSUFFICIENT_FUNDS)[2] for _ in range(12)]
    run_dunning(ctx, as_of=start)
    errors: list[BaseException] = []
    for day in range(1, 8):
        dunning.clock.set(start + day * DAY)
        barrier = threading.Barrier(2)

        def work(ctx: object = ctx, day: int = day, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                run_dunning(ctx, as_of=start + day * DAY, chunk_size=5, pipelined=False)  # type: ignore[arg-type]
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    rows = dunning.query(
        "SELECT process_id, COUNT(*), COUNT(DISTINCT step), MAX(step) FROM dunning_actions GROUP BY process_id"
    )
    assert len(rows) == len(invoices)
    assert all(count == distinct == last for _p, count, distinct, last in rows)
    # every retry is one attempt with its own key, recorded once
    attempts = dunning.query(
        "SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM payment_attempts WHERE source = 'dunning'"
    )[0]
    retries = dunning.query("SELECT COUNT(*) FROM dunning_actions WHERE action = 'retry'")[0][0]
    assert attempts == (retries, retries)
    assert dunning.query("SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending'") == [(0,)]
    # the same history as one engine alone would have written: a retry on days 1, 2, 4, 6 until paid
    for invoice in invoices:
        days = [d for d, action, _c, _o in dunning.actions(invoice) if action == "retry"]
        assert days == [1, 2, 4, 6][: len(days)]


def _at_once(ctx: object, as_of: datetime, runs: int = 2, **kw: object) -> list[BaseException]:
    """``runs`` engines started together in threads on the same work; the errors they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(runs)

    def work() -> None:
        try:
            barrier.wait()
            run_dunning(ctx, as_of=as_of, **kw)  # type: ignore[arg-type]
        except BaseException as error:  # pragma: no cover - reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.usefixtures("no_second_try")
def test_two_runs_at_once_open_each_process_once(dunning: Dunning) -> None:
    """Both runs find the same invoices newly in collections: one process each, started once."""
    start = dunning.clock.now()
    invoices: list[int] = []
    for day in range(3):  # the first runs scan everything; the later ones follow the feed
        dunning.clock.set(start + day * DAY)
        invoices += [dunning.failing_subscription(D.DO_NOT_HONOR)[2] for _ in range(8)]
        assert _at_once(dunning.ctx, start + day * DAY, chunk_size=3, pipelined=False) == []
    assert dunning.query("SELECT COUNT(*), COUNT(DISTINCT invoice_id) FROM dunning_processes") == [
        (len(invoices), len(invoices))
    ]
    started = dunning.query("SELECT COUNT(*) FROM outbox WHERE event_type = 'dunning.started'")
    assert started == [(len(invoices),)]
    assert dunning.query("SELECT COUNT(*) FROM dunning_watch") == [(0,)]


@pytest.mark.usefixtures("no_second_try")
def test_three_runs_at_once_do_each_action_once(dunning: Dunning) -> None:
    """More runs than cores, every kind of step (retries, reminders, suspension, write-off)."""
    ctx = dataclasses.replace(dunning.ctx, gateway=SimulatedGateway(5, soft_decline_rate=0.9))
    start = dunning.clock.now()
    codes = [D.INSUFFICIENT_FUNDS, D.DO_NOT_HONOR, D.EXPIRED_CARD, D.TRY_AGAIN_LATER]
    for n in range(16):
        dunning.failing_subscription(codes[n % len(codes)], amount_minor=20_00 + n)
    for day in (0, 1, 2, 3, 4, 6, 7, 8, 14, 18, 21, 60):
        dunning.clock.set(start + day * DAY)
        assert _at_once(ctx, start + day * DAY, runs=3, chunk_size=4, pipelined=False) == []
    rows = dunning.query(
        "SELECT process_id, COUNT(*), COUNT(DISTINCT step), MAX(step) FROM dunning_actions GROUP BY process_id"
    )
    assert len(rows) == 16
    assert all(count == distinct == last for _p, count, distinct, last in rows)
    assert dunning.query("SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending'") == [(0,)]
    attempts = dunning.query(
        "SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM payment_attempts WHERE source = 'dunning'"
    )[0]
    retries = dunning.query("SELECT COUNT(*) FROM dunning_actions WHERE action = 'retry'")[0][0]
    assert attempts == (retries, retries)
    live = dunning.query("SELECT COUNT(*) FROM dunning_processes WHERE ended_at IS NULL")
    assert live == [(0,)]  # by day 60 every process was paid or written off
    with dunning.ctx.read() as conn:
        from billing_core.audit import verify

        verify(conn)


class _Victim(Exception):
    """What the driver raises when PostgreSQL rolls a transaction back to break a deadlock."""

    sqlstate = "40P01"


def test_a_write_chosen_as_a_deadlock_victim_is_run_again_a_bounded_number_of_times() -> None:
    retrying = run_dunning_module._retrying
    calls: list[int] = []

    def twice_a_victim(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise _Victim("deadlock detected")
        return value

    assert retrying(twice_a_victim, 7) == 7
    assert calls == [7, 7, 7]

    def always_a_victim() -> None:
        calls.append(0)
        raise _Victim("deadlock detected")

    calls.clear()
    with pytest.raises(_Victim):
        retrying(always_a_victim)
    assert len(calls) == run_dunning_module._ATTEMPTS == 3

    def wrapped() -> None:  # as SQLAlchemy raises it, the driver's error in ``orig``
        calls.append(1)
        if len(calls) < 2:
            raise OperationalError("SELECT 1", {}, _Victim("deadlock detected"))

    calls.clear()
    retrying(wrapped)
    assert calls == [1, 1]

    def unique_violation() -> None:  # any other error goes up at once
        calls.append(2)
        error = RuntimeError("duplicate key")
        error.sqlstate = "23505"  # type: ignore[attr-defined]
        raise error

    calls.clear()
    with pytest.raises(RuntimeError):
        retrying(unique_violation)
    assert calls == [2]


def test_nothing_dangles_after_a_run(dunning: Dunning) -> None:
    start = dunning.clock.now()
    for code in (D.INSUFFICIENT_FUNDS, D.DO_NOT_HONOR, D.EXPIRED_CARD):
        dunning.failing_subscription(code)
    dunning.gateway.push(*[D.INSUFFICIENT_FUNDS] * 20)
    dunning.run_days(start, range(0, 61, 3))
    with dunning.ctx.read() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        from billing_core.audit import verify

        verify(conn)
    statuses = dunning.query("SELECT status, COUNT(*) FROM dunning_processes GROUP BY status")
    assert statuses == [("written_off", 3)]
    assert dunning.query("SELECT COUNT(*) FROM dunning_watch") == [(0,)]


def _history(dunning: Dunning) -> list[tuple[object, ...]]:
    return dunning.query(
        "SELECT a.invoice_id, a.step, a.day, a.action, a.channel, a.outcome, a.decline_code, a.amount_minor"
        " FROM dunning_actions a ORDER BY a.invoice_id, a.step"
    )


def test_the_pipelined_run_writes_the_same_history_as_one_process(dunning: Dunning) -> None:
    """A helper process plans ahead and asks the gateway; what is written does not change."""
    start = dunning.clock.now()
    codes = [D.INSUFFICIENT_FUNDS, D.STOLEN_CARD, D.PROCESSING_ERROR, D.EXPIRED_CARD, D.TRY_AGAIN_LATER]
    for n in range(15):
        dunning.failing_subscription(codes[n % len(codes)], amount_minor=10_00 + n)
    gateway = SimulatedGateway(11, soft_decline_rate=0.6)
    histories = []
    for pipelined in (False, True):
        ctx = dataclasses.replace(dunning.ctx, gateway=gateway)
        with ctx.transaction() as tx:  # start again from the same failed invoices
            for table in ("dunning_actions", "dunning_watch", "dunning_processes"):
                tx.bulk.execute(f"DELETE FROM {table}")
            tx.bulk.execute("DELETE FROM consumer_offsets WHERE consumer = 'dunning'")
            tx.bulk.execute(
                "DELETE FROM payments WHERE attempt_id IN (SELECT id FROM payment_attempts WHERE source = 'dunning')"
            )
            tx.bulk.execute("DELETE FROM payment_attempts WHERE source = 'dunning'")
            tx.bulk.execute(
                "UPDATE invoices SET status = 'open', amount_paid_minor = 0, amount_remaining_minor = amount_due_minor, paid_at = NULL, marked_uncollectible_at = NULL"
            )
            tx.bulk.execute(
                "UPDATE subscriptions SET status = 'past_due', canceled_at = NULL, ended_at = NULL"
            )
        for day in range(0, 61, 2):
            dunning.clock.set(start + day * DAY)
            run_dunning(ctx, as_of=start + day * DAY, chunk_size=4, pipelined=pipelined)
        histories.append(_history(dunning))
    assert histories[0] == histories[1]
    assert len(histories[0]) > 15
    assert {row[5] for row in histories[0]} >= {"declined", "succeeded", "queued", "written_off"}


class _VoidsWhileCharging:
    """The card network answers while an operator voids one of the invoices being retried."""

    def __init__(self, dunning: Dunning, invoice_id: int) -> None:
        self.dunning = dunning
        self.invoice_id = invoice_id
        self.inner = dunning.gateway

    def charge_many(self, requests):  # type: ignore[no-untyped-def]
        from billing_core.services.void_invoice import void_invoice

        answers = self.inner.charge_many(requests)
        void_invoice(self.dunning.ctx, invoice_id=self.invoice_id)
        return answers

    def refund(self, request):  # type: ignore[no-untyped-def]
        return self.inner.refund(request)


def test_an_invoice_voided_while_its_retry_is_out_is_closed_not_charged(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _c, _s, kept = dunning.failing_subscription(D.INSUFFICIENT_FUNDS)
    _c, _s, voided = dunning.failing_subscription(D.INSUFFICIENT_FUNDS)
    dunning.run(start)
    dunning.clock.set(start + DAY)
    ctx = dataclasses.replace(dunning.ctx, gateway=_VoidsWhileCharging(dunning, voided))
    run_dunning(ctx, as_of=start + DAY)  # the rows built before the void are refused; recorded again
    assert dunning.actions(kept)[0] == (1, "retry", None, "succeeded")
    assert dunning.actions(voided) == [(1, "retry", None, "canceled")]
    assert dunning.process(voided)["status"] == "closed"
    assert dunning.query(
        "SELECT status FROM payment_attempts WHERE invoice_id = ? ORDER BY attempt_number", voided
    ) == [
        ("failed",),
        ("canceled",),
    ]
    assert dunning.query("SELECT COUNT(*) FROM payments WHERE invoice_id = ?", voided) == [(0,)]


def test_a_refused_policy_answer_is_reported_the_same_from_the_helper_process(dunning: Dunning) -> None:
    start = dunning.clock.now()
    invoices = [dunning.failing_subscription(D.INSUFFICIENT_FUNDS)[2] for _ in range(6)]
    ctx = dataclasses.replace(dunning.ctx, gateway=SimulatedGateway(5))
    run_dunning(ctx, as_of=start)
    with ctx.transaction() as tx:
        tx.bulk.execute("UPDATE dunning_processes SET status = 'suspended'")
    dunning.clock.set(start + DAY)
    with pytest.raises(InvalidInput) as info:
        run_dunning(ctx, as_of=start + DAY, policy=_Stubborn(), chunk_size=2, pipelined=True)
    assert info.value.field == "stubborn.decide[0].action"
    assert all(dunning.actions(invoice) == [] for invoice in invoices)
