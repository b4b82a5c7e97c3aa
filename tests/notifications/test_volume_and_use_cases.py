"""A billing run's worth of events in pages; broken templates; call tasks and SMS consent."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from billing_core.book import build_book
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.errors import InvalidInput, InvalidTransition, NotFound
from billing_core.notifications import (
    DispatchOptions,
    RecordingEmailSender,
    RecordingSmsSender,
    Renderer,
    complete_call_task,
    dispatch,
    open_call_tasks,
    set_sms_phone,
)
from billing_core.notifications.render import TEMPLATES
from billing_core.payments import DeclineCode, SimulatedGateway
from billing_core.services.billing_run import run_billing
from tests.notifications.conftest import Shop, SmtpServer, run

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_billing_run_is_announced_page_by_page(engine: Engine, smtp: SmtpServer) -> None:
    ctx = BillingContext(engine, clock=FrozenClock(AS_OF), gateway=SimulatedGateway(11))
    build_book(ctx, subscriptions=400, as_of=AS_OF, seed=11)
    run_billing(ctx, as_of=AS_OF, chunk_size=150)
    with ctx.read() as conn:
        bulk = Bulk(conn)
        failed = {seq for (seq,) in bulk.query("SELECT seq FROM outbox WHERE event_type = 'payment.failed'")}
        [(payment_events,)] = bulk.query(
            "SELECT COUNT(*) FROM outbox WHERE event_type IN ('payment.failed', 'payment.succeeded')"
        )
        (head,) = bulk.query("SELECT last_seq FROM outbox_head")[0]
        languages = dict(bulk.query("SELECT id, language FROM customers"))
    assert failed  # the simulated gateway declines some cards
    pages: list[tuple[int, int]] = []

    result = dispatch(
        ctx,
        email=smtp.sender(),
        sms=RecordingSmsSender(),
        options=DispatchOptions(chunk_size=7),
        on_progress=lambda done, total: pages.append((done, total)),
    )

    # first payments that succeed are read (in SQL pages of 7) but ask for no message
    assert (result.events, result.notifications, result.sent) == (payment_events, len(failed), len(failed))
    assert (result.offset, result.head) == (head, head)
    assert len(pages) == payment_events // 7 + 1
    assert pages[-1] == (head, head)  # full pages, then the rest up to the head
    assert len(smtp.inbox.messages) == len(failed)
    with ctx.read() as conn:
        rows = Bulk(conn).query("SELECT event_seq, customer_id, language, status FROM notifications")
    assert {seq for seq, *_ in rows} == failed
    assert {status for *_, status in rows} == {"sent"}
    for _, customer_id, language, _ in rows:  # French and Japanese customers read English
        assert language == (
            languages[customer_id] if languages[customer_id] in ("en", "de", "es", "ar") else "en"
        )


def test_a_broken_template_makes_its_messages_undeliverable_and_spares_the_rest(
    shop: Shop, smtp: SmtpServer, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "de" / "payment_failed.txt").write_text("{{ no_such_value }}\n")
    german, german_email = shop.customer(language="de", currency="EUR", country="DE")
    english, english_email = shop.customer()
    shop.invoice(german, 10_00, "EUR", decline=DeclineCode.EXPIRED_CARD)
    shop.invoice(english, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)

    result = dispatch(shop.ctx, email=smtp.sender(), sms=RecordingSmsSender(), renderer=Renderer(templates))

    assert (result.sent, result.undeliverable) == (1, 1)
    rows = {row["recipient"]: row for row in shop.notifications()}
    assert rows[german_email]["status"] == "undeliverable"
    assert "no_such_value" in rows[german_email]["last_error"]
    assert rows[english_email]["status"] == "sent"
    assert shop.offset() == shop.head()


def test_call_tasks_are_worked_by_people(shop: Shop, smtp: SmtpServer, clock: FrozenClock) -> None:
    customer, _ = shop.customer(card=False, currency="JPY", country="JP", language="ja")
    invoice = shop.invoice(customer, 12_000, "JPY")
    shop.dunning_action(invoice, "remind", "call")
    run(shop.ctx, smtp)
    [task] = open_call_tasks(shop.ctx)
    assert (task.customer_id, task.invoice_id, task.amount_minor, task.currency) == (
        customer, invoice["id"], 12_000, "JPY"
    )  # fmt: skip

    with pytest.raises(InvalidInput) as caught:
        complete_call_task(shop.ctx, task_id=task.id, outcome="  ")
    assert caught.value.field == "outcome"
    with pytest.raises(NotFound):
        complete_call_task(shop.ctx, task_id=task.id + 100, outcome="reached")
    done = complete_call_task(shop.ctx, task_id=task.id, outcome="promised_to_pay")
    assert (done.status, done.outcome, done.done_at) == ("done", "promised_to_pay", clock.now())
    assert open_call_tasks(shop.ctx) == []
    with pytest.raises(InvalidTransition):
        complete_call_task(shop.ctx, task_id=task.id, outcome="reached")
    with shop.ctx.read() as conn:
        [(payload,)] = Bulk(conn).query("SELECT payload FROM outbox WHERE event_type = 'call_task.completed'")
    assert '"outcome":"promised_to_pay"' in payload
    # the completion event is not a message: a second run sends nothing
    assert run(shop.ctx, smtp).notifications == 0


def test_sms_consent(shop: Shop) -> None:
    customer, _ = shop.customer()
    for bad in ("015112345678", "+0123456", "+49 151 1234", "+1234567890123456"):
        with pytest.raises(InvalidInput) as caught:
            set_sms_phone(shop.ctx, customer_id=customer, phone=bad)
        assert caught.value.field == "phone"
    with pytest.raises(NotFound):
        set_sms_phone(shop.ctx, customer_id=customer + 50, phone="+4915112345678")
    assert set_sms_phone(shop.ctx, customer_id=customer, phone="+4915112345678") == "+4915112345678"
    assert set_sms_phone(shop.ctx, customer_id=customer, phone="+4915199999999") == "+4915199999999"
    with shop.ctx.read() as conn:
        bulk = Bulk(conn)
        assert bulk.query("SELECT phone FROM notification_phones") == [("+4915199999999",)]
        events = bulk.query("SELECT payload FROM outbox WHERE event_type = 'customer.sms_consent_changed'")
    assert len(events) == 2
    assert all("+49" not in payload for (payload,) in events)  # no number in the audit log
    set_sms_phone(shop.ctx, customer_id=customer, phone=None)
    with shop.ctx.read() as conn:
        assert Bulk(conn).query("SELECT phone FROM notification_phones") == []


def test_fakes_record_what_the_dispatcher_sends(shop: Shop) -> None:
    customer, email = shop.customer(card=False)
    set_sms_phone(shop.ctx, customer_id=customer, phone="+14155550100")
    invoice = shop.invoice(customer, 9_99, "USD")
    shop.dunning_action(invoice, "remind", "sms")
    shop.dunning_action(invoice, "final_notice", "email")
    emails, texts = RecordingEmailSender(), RecordingSmsSender()

    dispatch(shop.ctx, email=emails, sms=texts)

    [sent] = emails.sent
    assert (sent.recipient, sent.subject, sent.language) == (email, "Final notice: $9.99 is overdue", "en")
    assert sent.sender == "Recoup Billing <billing@recoup.invalid>"
    assert sent.message_id.endswith("@recoup.invalid>")
    [text] = texts.sent
    assert text.phone == "+14155550100"
    assert "$9.99" in text.text
