"""Dated dunning stories with a frozen clock and a scripted gateway: what a customer goes through."""

from __future__ import annotations

import json
from datetime import timedelta

from billing_core.audit import verify
from billing_core.payments import DeclineCode
from billing_core.services.add_payment_method import add_payment_method
from billing_core.services.billing_run import run_billing
from billing_core.services.create_customer import create_customer
from billing_core.services.create_subscription import create_subscription
from billing_core.services.issue_credit_note import issue_credit_note
from billing_core.services.pay_invoice import pay_invoice
from billing_core.services.void_invoice import void_invoice
from tests.dunning.conftest import Dunning, at

D = DeclineCode
DAY = timedelta(days=1)

#: the payload of every ``dunning.action`` event (the notification dispatcher's contract)
ACTION_PAYLOAD = {
    "process_id", "action_id", "step", "invoice_id", "invoice_number", "customer_id", "subscription_id",
    "action", "channel", "day", "amount_remaining_minor", "currency", "outcome", "decline_code", "policy",
}  # fmt: skip


def payloads(dunning: Dunning, event_type: str) -> list[dict[str, object]]:
    return [json.loads(e["payload"]) for e in dunning.world.events(event_type)]


def test_a_soft_decline_recovered_on_the_third_retry(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _customer, sub, invoice = dunning.failing_subscription(D.INSUFFICIENT_FUNDS, amount_minor=49_00)
    assert dunning.subscription_status(sub) == "past_due"
    dunning.gateway.push(D.INSUFFICIENT_FUNDS, D.TRY_AGAIN_LATER)  # then the third retry goes through

    first = dunning.run(start)
    assert (first.opened, first.actions) == (1, 0)
    process = dunning.process(invoice)
    assert (process["reason"], process["status"], process["next_action"]) == (
        "payment_failed",
        "active",
        "retry",
    )
    assert process["next_action_at"] == start + DAY
    assert process["last_decline_code"] == "insufficient_funds"

    dunning.run_days(start, range(1, 11))
    assert dunning.actions(invoice) == [
        (1, "retry", None, "declined"),
        (1, "remind", "email", "queued"),
        (2, "retry", None, "declined"),
        (3, "remind", "email", "queued"),
        (4, "retry", None, "succeeded"),
    ]
    assert dunning.invoice(invoice)["status"] == "paid"
    assert dunning.subscription_status(sub) == "active"  # back through the subscription's lifecycle
    process = dunning.process(invoice)
    assert (process["status"], process["retries"], process["attempts"], process["step"]) == (
        "recovered",
        3,
        4,
        5,
    )
    assert process["ended_at"] == start + 4 * DAY
    assert process["next_action"] is None
    # one charge per attempt, each with its own key
    assert [r.idempotency_key for r in dunning.gateway.requests] == [
        f"in_{invoice}_attempt_{n}" for n in (1, 2, 3, 4)
    ]
    events = payloads(dunning, "dunning.action")
    assert all(set(e) == ACTION_PAYLOAD for e in events)
    last = events[-1]
    assert (last["action"], last["outcome"], last["decline_code"]) == ("retry", "succeeded", None)
    assert (last["day"], last["amount_remaining_minor"], last["currency"], last["step"]) == (
        4,
        49_00,
        "USD",
        5,
    )
    assert last["invoice_number"] == dunning.invoice(invoice)["number"]
    assert (last["policy"], last["channel"]) == ("static-v1", None)
    assert events[0]["decline_code"] == "insufficient_funds"
    reminder = events[1]
    assert (reminder["action"], reminder["channel"], reminder["decline_code"]) == (
        "remind",
        "email",
        "insufficient_funds",
    )
    ended = payloads(dunning, "dunning.ended")
    assert [(e["status"], e["reason"], e["day"]) for e in ended] == [("recovered", "paid", 4)]
    with dunning.ctx.read() as conn:
        verify(conn)


def test_a_hard_decline_is_never_retried_until_the_customer_adds_a_card(dunning: Dunning) -> None:
    start = dunning.clock.now()
    customer, sub, invoice = dunning.failing_subscription(D.STOLEN_CARD)
    dunning.run_days(start, range(0, 3))
    assert dunning.actions(invoice) == [(1, "remind", "email", "queued")]
    assert dunning.charges() == 1  # the stolen card was never tried again
    assert dunning.process(invoice)["next_action"] == "remind"

    dunning.clock.set(start + 2 * DAY + timedelta(hours=10))
    card = add_payment_method(
        dunning.ctx,
        customer_id=customer,
        brand="mastercard",
        bin="555555",
        last4="4444",
        exp_month=8,
        exp_year=2031,
    )
    result = dunning.run()  # the same day: the new card is charged at once
    assert result.count("retry", "succeeded") == 1
    assert dunning.actions(invoice)[-1] == (2, "retry", None, "succeeded")
    assert dunning.gateway.requests[-1].payment_method.id == card.id
    assert dunning.invoice(invoice)["status"] == "paid"
    assert dunning.subscription_status(sub) == "active"
    assert dunning.process(invoice)["payment_method_id"] == card.id


def test_an_invoice_is_written_off_on_day_60(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _customer, sub, invoice = dunning.failing_subscription(D.INSUFFICIENT_FUNDS, amount_minor=25_00)
    dunning.gateway.push(*[D.INSUFFICIENT_FUNDS] * 8)
    dunning.run_days(start, range(0, 22))
    assert dunning.actions(invoice)[-3:] == [
        (14, "remind", "email", "queued"),
        (18, "final_notice", "email", "queued"),
        (21, "suspend", None, "suspended"),
    ]
    assert dunning.subscription_status(sub) == "unpaid"  # service suspended
    assert dunning.process(invoice)["status"] == "suspended"
    # a suspended subscription is not renewed
    dunning.clock.set(at(2026, 2, 1))
    assert run_billing(dunning.ctx, as_of=at(2026, 2, 1)).invoices == 0

    dunning.run_days(start, range(22, 62))
    assert [(day, action) for day, action, _c, _o in dunning.actions(invoice)] == [
        (1, "retry"), (1, "remind"), (2, "retry"), (3, "remind"), (4, "retry"), (6, "retry"), (7, "remind"),
        (8, "retry"), (10, "retry"), (12, "retry"), (14, "retry"), (14, "remind"), (18, "final_notice"),
        (21, "suspend"), (60, "write_off"),
    ]  # fmt: skip
    assert dunning.actions(invoice)[-1] == (60, "write_off", None, "written_off")
    assert dunning.invoice(invoice)["status"] == "uncollectible"
    assert dunning.invoice(invoice)["marked_uncollectible_at"] == start + 60 * DAY
    assert dunning.subscription_status(sub) == "canceled"  # involuntary churn
    process = dunning.process(invoice)
    assert (process["status"], process["retries"], process["reminders"]) == ("written_off", 8, 4)
    written_off = payloads(dunning, "invoice.marked_uncollectible")
    assert [(e["invoice_id"], e["amount_written_off_minor"]) for e in written_off] == [(invoice, 25_00)]
    changes = [(e["from"], e["to"], e["reason"]) for e in payloads(dunning, "subscription.status_changed")]
    assert changes[-2:] == [
        ("past_due", "unpaid", "dunning_exhausted"),
        ("unpaid", "canceled", "written_off"),
    ]
    assert dunning.charges() == 9  # the first attempt and eight retries, no more


def test_only_the_add_on_is_suspended_while_the_paid_annual_plan_runs_on(dunning: Dunning) -> None:
    start = dunning.clock.now()
    customer = dunning.world.customer()
    annual = dunning.price(490_00, "year")
    plan = create_subscription(dunning.ctx, customer_id=customer, items=[{"price_id": annual, "quantity": 1}])
    assert dunning.world.invoices(customer)[-1]["status"] == "paid"
    _customer, add_on, invoice = dunning.failing_subscription(
        D.DO_NOT_HONOR, amount_minor=10_00, customer=customer
    )
    dunning.run_days(start, range(0, 22))
    assert dunning.actions(invoice)[-1] == (21, "suspend", None, "suspended")
    assert dunning.subscription_status(add_on) == "unpaid"
    assert dunning.subscription_status(plan.id) == "active"
    with dunning.ctx.read() as conn:
        (processes,) = conn.exec_driver_sql("SELECT COUNT(*) FROM dunning_processes").one()
    assert processes == 1  # the paid plan's invoice never entered collections
    dunning.clock.set(at(2026, 2, 1))
    run_billing(dunning.ctx, as_of=at(2026, 2, 1))
    assert [i["subscription_id"] for i in dunning.world.invoices(customer)] == [plan.id, add_on]


def test_rerunning_the_same_day_executes_nothing_twice(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _c, _s, invoice = dunning.failing_subscription(D.PROCESSING_ERROR)
    dunning.gateway.push(D.PROCESSING_ERROR)
    dunning.run(start)
    first = dunning.run(start + DAY)
    assert first.actions == 2
    head = dunning.query("SELECT last_seq FROM outbox_head")[0][0]
    charges = dunning.charges()
    for _ in range(3):
        again = dunning.run(start + DAY)
        assert (again.opened, again.actions, again.payments.attempted) == (0, 0, 0)
    assert dunning.actions(invoice) == [(1, "retry", None, "declined"), (1, "remind", "email", "queued")]
    assert dunning.charges() == charges
    assert dunning.query("SELECT last_seq FROM outbox_head")[0][0] == head


class _LostAnswers:
    """A gateway whose answers never come back: the card network charged, then the process died."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def charge_many(self, requests):  # type: ignore[no-untyped-def]
        self.inner.charge_many(requests)  # type: ignore[attr-defined]
        raise ConnectionError("the connection dropped before the answers arrived")

    def refund(self, request):  # type: ignore[no-untyped-def]
        return self.inner.refund(request)  # type: ignore[attr-defined]


def test_a_crash_between_queueing_a_retry_and_recording_it_repeats_no_charge(dunning: Dunning) -> None:
    import dataclasses

    import pytest

    from billing_core.services.run_dunning import run_dunning

    start = dunning.clock.now()
    _c, sub, invoice = dunning.failing_subscription(D.INSUFFICIENT_FUNDS)
    dunning.run(start)
    dunning.clock.set(start + DAY)
    crashing = dataclasses.replace(dunning.ctx, gateway=_LostAnswers(dunning.gateway))
    with pytest.raises(ConnectionError):
        run_dunning(crashing, as_of=start + DAY)
    assert dunning.charges() == 2  # the retry reached the card network
    assert dunning.query(
        "SELECT status FROM payment_attempts WHERE invoice_id = ? ORDER BY attempt_number", invoice
    ) == [
        ("failed",),
        ("pending",),
    ]
    process = dunning.process(invoice)
    assert process["attempt_id"] is not None
    assert process["step"] == 0
    assert dunning.actions(invoice) == []

    result = dunning.run(start + DAY)  # the next run asks again with the same key
    assert dunning.charges() == 2  # ... and the network answers as before: no second charge
    assert result.count("retry", "succeeded") == 1
    assert dunning.actions(invoice) == [(1, "retry", None, "succeeded")]
    assert dunning.query(
        "SELECT COUNT(*), SUM(amount_minor) FROM payments WHERE invoice_id = ?", invoice
    ) == [(1, 30_00)]
    assert dunning.subscription_status(sub) == "active"
    assert dunning.run(start + 2 * DAY).actions == 0


def test_paid_voided_or_written_off_elsewhere_ends_the_process(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _c1, sub1, by_credit_note = dunning.failing_subscription(D.INSUFFICIENT_FUNDS, amount_minor=20_00)
    _c2, _s2, by_card = dunning.failing_subscription(D.INSUFFICIENT_FUNDS, amount_minor=20_00)
    _c3, _s3, voided = dunning.failing_subscription(D.FRAUDULENT, amount_minor=20_00)
    dunning.run(start)
    dunning.clock.set(start + timedelta(hours=6))
    issue_credit_note(dunning.ctx, invoice_id=by_credit_note, amount_minor=20_00, reason="service_credit",
                      outcome="reduce_amount_due")  # fmt: skip
    pay_invoice(dunning.ctx, invoice_id=by_card)
    void_invoice(dunning.ctx, invoice_id=voided)
    result = dunning.run()
    assert result.tally.ended == {"recovered": 2, "closed": 1}
    assert result.actions == 0
    assert [dunning.process(i)["status"] for i in (by_credit_note, by_card, voided)] == [
        "recovered",
        "recovered",
        "closed",
    ]
    assert dunning.subscription_status(sub1) == "active"  # nothing left open: back to active
    assert result.tally.subscriptions_restored == 1  # (the card payment restored its own)
    assert dunning.run(start + 30 * DAY).actions == 0


def test_an_overdue_invoice_without_a_card_is_reminded_then_paid_with_a_new_card(dunning: Dunning) -> None:
    start = dunning.clock.now()
    customer = create_customer(dunning.ctx, email="no-card@example.com", name="No Card", currency="USD").id
    sub = create_subscription(
        dunning.ctx, customer_id=customer, items=[{"price_id": dunning.price(15_00), "quantity": 1}]
    )
    invoice = dunning.world.invoices(customer)[0]["id"]
    dunning.run_days(start, range(0, 4))
    process = dunning.process(invoice)
    assert (process["reason"], process["attempts"]) == ("overdue", 0)
    assert dunning.actions(invoice) == [(1, "remind", "email", "queued"), (3, "remind", "email", "queued")]
    dunning.clock.set(start + 5 * DAY)
    add_payment_method(dunning.ctx, customer_id=customer, brand="visa", bin="424242", last4="1111", exp_month=1,
                       exp_year=2030)  # fmt: skip
    dunning.run()
    assert dunning.actions(invoice)[-1] == (5, "retry", None, "succeeded")
    assert dunning.invoice(invoice)["status"] == "paid"
    assert dunning.subscription_status(sub.id) == "active"


def test_a_late_run_catches_up_without_a_backlog_of_messages(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _c, _s, invoice = dunning.failing_subscription(D.EXPIRED_CARD)
    dunning.run(start)
    dunning.run(start + 9 * DAY)  # nobody ran the engine for nine days
    assert dunning.actions(invoice) == [(9, "remind", "email", "queued")]
    result = dunning.run(start + 40 * DAY)  # nor for another month
    assert [(d, a) for d, a, _c, _o in dunning.actions(invoice)[1:]] == [(40, "final_notice")]
    assert result.complete
    dunning.run(start + 43 * DAY)
    assert dunning.actions(invoice)[-1] == (43, "suspend", None, "suspended")  # after the notice period


def test_a_payment_tried_by_hand_meanwhile_takes_its_own_attempt_number(dunning: Dunning) -> None:
    start = dunning.clock.now()
    _c, _s, invoice = dunning.failing_subscription(D.INSUFFICIENT_FUNDS)
    dunning.run(start)
    dunning.clock.set(start + timedelta(hours=12))
    dunning.gateway.push(D.INSUFFICIENT_FUNDS)
    pay_invoice(dunning.ctx, invoice_id=invoice)  # the customer tries from the invoice page: declined
    dunning.run(start + DAY)
    assert dunning.actions(invoice)[0] == (1, "retry", None, "succeeded")
    assert dunning.query(
        "SELECT attempt_number, source, status FROM payment_attempts WHERE invoice_id = ? ORDER BY attempt_number",
        invoice,
    ) == [(1, "billing_run", "failed"), (2, "manual", "failed"), (3, "dunning", "succeeded")]
    assert dunning.process(invoice)["attempts"] == 3
