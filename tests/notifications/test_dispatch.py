"""The dispatcher against a real database and a real SMTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.notifications import (
    Delivery,
    DispatchOptions,
    OutgoingEmail,
    RecordingEmailSender,
    RecordingSmsSender,
    SmtpEmailSender,
    dispatch,
    notification_status,
    set_sms_phone,
)
from billing_core.payments import DeclineCode
from billing_core.services.pay_invoice import pay_invoice
from tests.notifications.conftest import Inbox, Shop, SmtpServer, free_port, run, start_smtp


class SimulatedCrash(BaseException):
    """The process dies: nothing after the send runs (not even ``except Exception``)."""


class CrashAfterSend:
    """Sends through a real sender, then dies before the dispatcher can record the answer."""

    def __init__(self, inner: SmtpEmailSender) -> None:
        self.inner = inner

    def send_many(self, messages: Sequence[OutgoingEmail]) -> list[Delivery]:
        self.inner.send_many(messages)
        raise SimulatedCrash


# --------------------------------------------------------------------------- what arrives, and how


def test_a_failed_payment_email_reaches_the_server_in_german(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(language="de", currency="EUR", timezone="Europe/Berlin", country="DE")
    invoice = shop.invoice(customer, 1_234_50, "EUR", decline=DeclineCode.EXPIRED_CARD)

    result = run(shop.ctx, smtp)

    assert (result.notifications, result.sent, result.failed) == (1, 1, 0)
    [received] = smtp.inbox.to(email)
    message = received.message
    assert received.mail_from == "billing@recoup.invalid"
    assert message["Subject"] == (
        "Ihre Karte ist abgelaufen: Bitte aktualisieren Sie sie, um 1.234,50\u00a0€ zu bezahlen"
    )
    assert message["Content-Language"] == "de"
    assert message["To"].addresses[0].display_name == "Ada Lovelace"
    text = received.part("plain")
    assert "Guten Tag Ada Lovelace," in text
    assert f"Rechnung {invoice['number']}" in text
    assert "1. Januar 2026" in " ".join(text.split())  # the customer's local date, German long format
    assert "Visa •••• 4242" in text
    html = received.part("html")
    assert 'lang="de"' in html
    assert 'dir="ltr"' in html
    [row] = shop.notifications()
    assert row["kind"] == "payment_failed"
    assert row["channel"] == "email"
    assert row["status"] == "sent"
    assert row["recipient"] == email
    assert row["language"] == "de"
    assert row["customer_id"] == customer
    assert row["invoice_id"] == invoice["id"]
    assert row["attempts"] == 1
    assert row["message_id"] == message["Message-ID"]
    assert row["provider_message_id"] == "Q1"
    assert row["subject"] == message["Subject"]
    assert row["sent_at"] == shop.ctx.clock.now()


def test_arabic_is_right_to_left_with_kuwaiti_fils(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(language="ar", currency="KWD", timezone="Asia/Kuwait", country="KW")
    shop.invoice(customer, 12_345, "KWD", decline=DeclineCode.INSUFFICIENT_FUNDS)  # 12.345 KWD

    run(shop.ctx, smtp)

    [received] = smtp.inbox.to(email)
    html = received.part("html")
    assert '<html lang="ar" dir="rtl">' in html
    assert "12.345" in html
    assert "د.ك." in html
    text = received.part("plain")
    assert text.startswith("مرحبًا Ada Lovelace،")
    assert "سنعيد المحاولة" in text  # a soft decline: we will try again
    assert "12.345" in text
    assert "123.45" not in text
    assert received.message["Subject"].startswith("لم تكتمل دفعتك")
    assert received.message["Content-Language"] == "ar"


def test_spanish_and_yen_without_decimals(shop: Shop, smtp: SmtpServer) -> None:
    spanish, es_email = shop.customer(language="es", currency="EUR", timezone="Europe/Madrid", country="ES")
    japanese, ja_email = shop.customer(language="ja", currency="JPY", timezone="Asia/Tokyo", country="JP")
    shop.invoice(spanish, 99_00, "EUR", decline=DeclineCode.DO_NOT_HONOR)
    shop.invoice(japanese, 1_500, "JPY", decline=DeclineCode.DO_NOT_HONOR)

    run(shop.ctx, smtp)

    [es] = smtp.inbox.to(es_email)
    assert es.message["Subject"] == "Su pago de 99,00\u00a0€ ha sido rechazado"
    assert "Pague con otra tarjeta" in " ".join(es.part("plain").split())
    [ja] = smtp.inbox.to(ja_email)
    # Japanese has no templates: English, with the yen's exponent of 0
    assert ja.message["Subject"] == "Your payment of ¥1,500 was declined"
    assert ja.message["Content-Language"] == "en"
    rows = {row["recipient"]: row for row in shop.notifications()}
    assert rows[ja_email]["language"] == "en"
    assert rows[es_email]["language"] == "es"


def test_an_unknown_language_falls_back_to_english(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(language="fr", currency="EUR", country="FR")
    legacy, legacy_email = shop.customer(currency="USD")
    with shop.ctx.transaction() as tx:  # a language no release knows, written by an older import
        tx.conn.execute(update(t.customers).where(t.customers.c.id == legacy).values(language="xx"))
    shop.invoice(customer, 10_00, "EUR", decline=DeclineCode.EXPIRED_CARD)
    shop.invoice(legacy, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)

    run(shop.ctx, smtp)

    for address in (email, legacy_email):
        [received] = smtp.inbox.to(address)
        assert received.message["Subject"].startswith("Your card has expired")
        assert 'lang="en"' in received.part("html")
    assert {row["language"] for row in shop.notifications()} == {"en"}


def test_html_escapes_the_customers_name_and_text_keeps_it(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(name="Smith & Sons <Ltd>")
    shop.invoice(customer, 5_00, "USD", decline=DeclineCode.EXPIRED_CARD)

    run(shop.ctx, smtp)

    [received] = smtp.inbox.to(email)
    assert "Smith &amp; Sons &lt;Ltd&gt;" in received.part("html")
    assert "<Ltd>" not in received.part("html")
    assert "Hello Smith & Sons <Ltd>," in received.part("plain")


# ------------------------------------------------------------------------------------ dunning actions


def test_dunning_actions_become_emails_texts_and_call_tasks(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(card=False, currency="USD")
    set_sms_phone(shop.ctx, customer_id=customer, phone="+14155550100")
    invoice = shop.invoice(customer, 250_00, "USD")  # no card: the invoice stays open
    shop.dunning_action(invoice, "retry", None)
    shop.dunning_action(invoice, "remind", "email")
    shop.dunning_action(invoice, "remind", "sms")
    shop.dunning_action(invoice, "final_notice", "call")
    shop.dunning_action(invoice, "suspend", None)
    shop.dunning_action(invoice, "write_off", None)
    texts = RecordingSmsSender()

    result = run(shop.ctx, smtp, texts)

    assert (result.events, result.notifications, result.call_tasks, result.sent) == (6, 4, 1, 4)
    subjects = sorted(m.message["Subject"] for m in smtp.inbox.to(email))
    assert subjects == sorted(
        [
            f"Reminder: $250.00 is still open on invoice {invoice['number']}",
            "Your subscription has been suspended",
            f"Invoice {invoice['number']} has been closed as unpaid",
        ]
    )
    [text] = texts.sent
    assert text.phone == "+14155550100"
    assert text.text == (
        f"Recoup Billing: $250.00 on invoice {invoice['number']} is still unpaid. "
        "Please pay or update your card to keep your service."
    )
    [task] = shop.call_tasks()
    assert (task["customer_id"], task["invoice_id"], task["action"]) == (
        customer,
        invoice["id"],
        "final_notice",
    )
    assert (task["amount_minor"], task["currency"], task["status"]) == (250_00, "USD", "open")
    assert task["created_at"] == shop.ctx.clock.now()
    kinds = sorted((row["channel"], row["kind"]) for row in shop.notifications())
    assert kinds == [
        ("email", "dunning_reminder"),
        ("email", "invoice_written_off"),
        ("email", "subscription_suspended"),
        ("sms", "dunning_reminder"),
    ]
    assert all(row["status"] == "sent" for row in shop.notifications())


def test_a_text_for_a_customer_without_a_phone_goes_by_email(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(card=False, language="es", currency="MXN", country="MX")
    invoice = shop.invoice(customer, 1_999_00, "MXN")
    shop.dunning_action(invoice, "final_notice", "sms")
    texts = RecordingSmsSender()

    run(shop.ctx, smtp, texts)

    assert texts.sent == []
    [received] = smtp.inbox.to(email)
    assert received.message["Subject"] == "Último aviso: $1,999.00 vencido"  # es_MX formats like this
    [row] = shop.notifications()
    assert (row["channel"], row["kind"]) == ("email", "dunning_final_notice")


def test_arabic_text_message(shop: Shop, smtp: SmtpServer) -> None:
    customer, _ = shop.customer(
        card=False, language="ar", currency="KWD", country="KW", timezone="Asia/Kuwait"
    )
    set_sms_phone(shop.ctx, customer_id=customer, phone="+96550000000")
    invoice = shop.invoice(customer, 7_500, "KWD")
    shop.dunning_action(invoice, "remind", "sms")
    texts = RecordingSmsSender()

    run(shop.ctx, smtp, texts)

    [text] = texts.sent
    assert text.language == "ar"
    assert "7.500" in text.text
    assert "لم يُسدَّد بعد" in text.text


# --------------------------------------------------------------------------------- delivery semantics


def test_rolled_back_work_is_never_announced(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(card=False)
    invoice = shop.invoice(customer, 40_00, "USD")

    def decide_then_fail() -> None:
        with shop.ctx.transaction() as tx:
            tx.emit("dunning.action", "invoice", invoice["id"], **_contract(invoice, "suspend"))
            raise RuntimeError("the dunning run failed after deciding")

    with pytest.raises(RuntimeError):
        decide_then_fail()

    result = run(shop.ctx, smtp)

    assert result.sent == 0
    assert smtp.inbox.messages == []
    assert shop.notifications() == []
    shop.dunning_action(invoice, "suspend", None)
    assert run(shop.ctx, smtp).sent == 1
    assert len(smtp.inbox.to(email)) == 1


def test_the_offset_advances_once_and_nothing_is_sent_twice(shop: Shop, smtp: SmtpServer) -> None:
    for n in range(5):
        customer, _ = shop.customer()
        shop.invoice(customer, (n + 1) * 10_00, "USD", decline=DeclineCode.INSUFFICIENT_FUNDS)
    head = shop.head()
    assert shop.offset() is None

    first = run(shop.ctx, smtp, chunk_size=2)
    second = run(shop.ctx, smtp, chunk_size=2)

    assert (first.events, first.sent, first.offset, first.head) == (5, 5, head, head)
    assert (second.events, second.notifications, second.sent, second.offset) == (0, 0, 0, head)
    assert shop.offset() == head
    assert len(smtp.inbox.messages) == 5
    assert len({m.message["Message-ID"] for m in smtp.inbox.messages}) == 5


def test_two_dispatchers_at_once_send_each_message_once(shop: Shop, smtp: SmtpServer) -> None:
    for _ in range(12):
        customer, _ = shop.customer()
        shop.invoice(customer, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)
    results = []

    def worker() -> None:
        results.append(run(shop.ctx, smtp, chunk_size=3))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.sent for r in results) == 12
    assert len(smtp.inbox.messages) == 12
    rows = shop.notifications()
    assert len(rows) == 12
    assert len({row["event_seq"] for row in rows}) == 12
    assert shop.offset() == shop.head()


def test_a_crash_between_send_and_record_resends_with_the_same_message_id(
    shop: Shop, smtp: SmtpServer, clock: FrozenClock
) -> None:
    customer, email = shop.customer(language="de", currency="EUR", country="DE")
    shop.invoice(customer, 80_00, "EUR", decline=DeclineCode.EXPIRED_CARD)

    with pytest.raises(SimulatedCrash):
        dispatch(shop.ctx, email=CrashAfterSend(smtp.sender()), sms=RecordingSmsSender())

    [row] = shop.notifications()
    assert row["status"] == "sending"
    assert row["attempts"] == 1
    assert shop.offset() == shop.head()  # the event is taken: the notification is what remains
    assert len(smtp.inbox.to(email)) == 1
    # a run while the claim holds (the first run might only be slow) sends nothing
    assert run(shop.ctx, smtp).sent == 0
    clock.advance(timedelta(minutes=10))

    result = run(shop.ctx, smtp)

    assert (result.retried, result.sent) == (1, 1)
    first, second = smtp.inbox.to(email)
    assert first.message["Message-ID"] == second.message["Message-ID"] == row["message_id"]
    assert first.message["Subject"] == second.message["Subject"]
    [row] = shop.notifications()
    assert row["status"] == "sent"
    assert row["attempts"] == 2
    assert run(shop.ctx, smtp).sent == 0


def test_an_unreachable_server_stops_the_run_and_later_runs_catch_up(shop: Shop, clock: FrozenClock) -> None:
    for _ in range(3):
        customer, _ = shop.customer()
        shop.invoice(customer, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)
    port = free_port()  # nothing listens here yet
    server = SmtpServer("127.0.0.1", port, Inbox())

    result = run(shop.ctx, server, chunk_size=1)

    assert result.stopped is not None
    assert "cannot reach SMTP server" in result.stopped
    assert (result.notifications, result.sent, result.failed) == (1, 0, 1)
    [row] = shop.notifications()
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["next_attempt_at"] == clock.now() + timedelta(minutes=5)
    assert "cannot reach SMTP server" in row["last_error"]
    offset = shop.offset()
    assert offset is not None
    assert offset < shop.head()  # the rest waits in the outbox

    controller = start_smtp(port, server.inbox)
    try:
        clock.advance(timedelta(minutes=5))
        result = run(shop.ctx, server, chunk_size=1)
    finally:
        controller.stop()

    assert (result.retried, result.notifications, result.sent, result.stopped) == (1, 2, 3, None)
    rows = shop.notifications()
    assert [row["status"] for row in rows] == ["sent"] * 3
    assert rows[0]["attempts"] == 2
    assert server.inbox.messages[0].message["Message-ID"] == rows[0]["message_id"]
    assert shop.offset() == shop.head()


def test_a_temporary_refusal_is_retried_with_back_off(
    shop: Shop, smtp: SmtpServer, clock: FrozenClock
) -> None:
    customer, email = shop.customer()
    shop.invoice(customer, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)
    smtp.inbox.data_reply = "451 4.3.0 mail server temporarily rejected message"

    result = run(shop.ctx, smtp)

    assert (result.sent, result.failed, result.stopped) == (0, 1, None)
    [row] = shop.notifications()
    assert row["status"] == "failed"
    assert "451" in row["last_error"]
    smtp.inbox.data_reply = None
    clock.advance(timedelta(minutes=4))
    assert run(shop.ctx, smtp).sent == 0  # not yet: the back-off is 5 minutes
    clock.advance(timedelta(minutes=1))
    assert run(shop.ctx, smtp).sent == 1
    [received] = smtp.inbox.to(email)
    [row] = shop.notifications()
    assert row["status"] == "sent"
    assert row["attempts"] == 2
    assert row["last_error"] is None
    assert received.message["Message-ID"] == row["message_id"]


def test_a_refused_recipient_is_undeliverable_and_others_still_go(shop: Shop, smtp: SmtpServer) -> None:
    bad, bad_email = shop.customer()
    good, good_email = shop.customer()
    smtp.inbox.refuse_recipients.add(bad_email)
    shop.invoice(bad, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)
    shop.invoice(good, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)

    result = run(shop.ctx, smtp)

    assert (result.sent, result.undeliverable, result.failed) == (1, 1, 0)
    rows = {row["recipient"]: row for row in shop.notifications()}
    assert rows[bad_email]["status"] == "undeliverable"
    assert "550" in rows[bad_email]["last_error"]
    assert rows[good_email]["status"] == "sent"
    assert len(smtp.inbox.to(good_email)) == 1


def test_attempts_run_out(shop: Shop, clock: FrozenClock) -> None:
    customer, _ = shop.customer()
    shop.invoice(customer, 10_00, "USD", decline=DeclineCode.EXPIRED_CARD)
    email = RecordingEmailSender([Delivery.failed("421 try later")] * 3)
    options = DispatchOptions(max_attempts=3, retry_base=timedelta(minutes=1))
    waits = []
    for _ in range(3):
        dispatch(shop.ctx, email=email, sms=RecordingSmsSender(), options=options)
        [row] = shop.notifications()
        if row["next_attempt_at"] is not None:
            waits.append(row["next_attempt_at"] - clock.now())
            clock.set(row["next_attempt_at"])

    [row] = shop.notifications()
    assert (row["status"], row["attempts"]) == ("undeliverable", 3)
    assert waits == [timedelta(minutes=1), timedelta(minutes=2)]
    assert len(email.attempted) == 3
    assert len({m.message_id for m in email.attempted}) == 1


# ------------------------------------------------------------------------------ payments and options


def test_a_payment_after_a_failure_gets_a_receipt(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(language="de", currency="EUR", country="DE")
    invoice = shop.invoice(customer, 20_00, "EUR", decline=DeclineCode.INSUFFICIENT_FUNDS)
    other, other_email = shop.customer()
    shop.invoice(other, 20_00, "USD")  # paid at once: no news for anyone
    pay_invoice(shop.ctx, invoice_id=invoice["id"])

    result = run(shop.ctx, smtp)

    assert result.sent == 2
    assert smtp.inbox.to(other_email) == []
    subjects = [m.message["Subject"] for m in smtp.inbox.to(email)]
    assert subjects == [
        "Ihre Zahlung über 20,00\u00a0€ ist nicht durchgegangen",
        "Zahlung erhalten: Ihr Konto ist wieder ausgeglichen",
    ]


def test_invoice_emails_only_when_configured(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(card=False)
    invoice = shop.invoice(customer, 30_00, "USD")

    assert run(shop.ctx, smtp).sent == 0
    assert smtp.inbox.messages == []

    # another consumer's view: a fresh offset, and invoice.finalized switched on
    with shop.ctx.transaction() as tx:
        tx.conn.execute(update(t.consumer_offsets).values(last_seq=0))
    result = run(shop.ctx, smtp, events=frozenset({"invoice.finalized"}))
    assert result.sent == 1
    [received] = smtp.inbox.to(email)
    assert received.message["Subject"] == f"Your invoice {invoice['number']} for $30.00"


def test_a_payload_that_breaks_the_contract_is_skipped_not_blocking(shop: Shop, smtp: SmtpServer) -> None:
    customer, email = shop.customer(card=False)
    invoice = shop.invoice(customer, 30_00, "USD")
    shop.dunning_action(invoice, "remind", "pigeon")
    shop.dunning_action(invoice, "remind", "email", amount_remaining_minor="lots")
    shop.dunning_action(invoice, "remind", "email")

    result = run(shop.ctx, smtp)

    assert (result.skipped, result.sent) == (2, 1)
    assert len(smtp.inbox.to(email)) == 1
    assert shop.offset() == shop.head()


def test_status_reports_offset_lag_and_messages(shop: Shop, smtp: SmtpServer, clock: FrozenClock) -> None:
    customer, _ = shop.customer(card=False)
    invoice = shop.invoice(customer, 30_00, "USD")
    shop.dunning_action(invoice, "remind", "email")
    shop.dunning_action(invoice, "final_notice", "call")
    before = notification_status(shop.ctx)
    assert (before.offset, before.lag, before.counts) == (0, shop.head(), {})

    smtp.inbox.data_reply = "452 4.3.1 insufficient system storage"
    run(shop.ctx, smtp)
    report = notification_status(shop.ctx)

    assert (report.lag, report.open_call_tasks, report.due) == (0, 1, 0)
    assert report.counts == {("email", "failed"): 1}
    assert report.next_attempt_at == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=5))
    assert notification_status(shop.ctx).due == 1


def test_the_recorded_subject_and_message_id_column_are_unique_per_event_and_channel(
    shop: Shop, ctx: BillingContext
) -> None:
    customer, _ = shop.customer(card=False)
    invoice = shop.invoice(customer, 30_00, "USD")
    shop.dunning_action(invoice, "remind", "email")
    dispatch(ctx, email=RecordingEmailSender(), sms=RecordingSmsSender())
    [row] = shop.notifications()
    from sqlalchemy.exc import IntegrityError

    from billing_core.db.schema_notifications import notifications

    duplicate = {k: v for k, v in row.items() if k != "id"} | {"message_id": "<other@recoup.invalid>"}
    with pytest.raises(IntegrityError), ctx.transaction() as tx:
        tx.conn.execute(notifications.insert().values(**duplicate))
    with ctx.read() as conn:
        assert conn.execute(select(notifications.c.id)).scalars().all() == [row["id"]]


def _contract(invoice: dict[str, object], action: str) -> dict[str, object]:
    return {
        "process_id": 1, "action_id": 99, "step": 4, "invoice_id": invoice["id"],
        "invoice_number": invoice["number"], "customer_id": invoice["customer_id"],
        "subscription_id": invoice["subscription_id"], "action": action, "channel": None, "day": 21,
        "amount_remaining_minor": invoice["amount_remaining_minor"], "currency": invoice["currency"],
        "outcome": "suspended", "decline_code": None, "policy": "static_schedule",
    }  # fmt: skip
