"""Rendering without a database: every template in every language, money and dates per locale."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from billing_core.errors import InvalidInput
from billing_core.notifications import DispatchOptions, Kind, Renderer, RenderError
from billing_core.notifications.messages import (
    Channel,
    CustomerFacts,
    Facts,
    InvoiceFacts,
    OutboxEvent,
    Planned,
    decline_reason,
    message_values,
    plan,
)
from billing_core.notifications.render import TEMPLATES, Formatter, babel_locale, format_money

LANGUAGES = ("en", "de", "es", "ar")
AT = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount_minor", "currency", "locale", "expected"),
    [
        (1_234_50, "USD", "en_US", "$1,234.50"),
        (1_234_50, "EUR", "de_DE", "1.234,50\u00a0€"),
        (1_234_50, "EUR", "es_ES", "1.234,50\u00a0€"),
        (12_345, "KWD", "es_MX", "KWD\u00a012.345"),
        (12_345, "CHF", "de_CH", "CHF\u00a0123.45"),
        (1_500, "JPY", "en_US", "¥1,500"),
        (1_500, "JPY", "de_DE", "1.500\u00a0¥"),
        (12_345, "KWD", "en_US", "KWD\u00a012.345"),
        (12_345, "KWD", "de_DE", "12,345\u00a0KWD"),
        (12_345, "KWD", "ar_KW", "\u200f12.345\u00a0د.ك.\u200f"),
        # CLDR gives the Iraqi dinar no decimals; ISO 4217 (and the billing core) gives it three
        (1_500, "IQD", "en_US", "IQD\u00a01.500"),
        (-5_00, "USD", "en_US", "-$5.00"),
    ],
)
def test_money_uses_the_currencys_own_exponent(
    amount_minor: int, currency: str, locale: str, expected: str
) -> None:
    language, country = locale.split("_")
    assert format_money(amount_minor, currency, babel_locale(language, country)) == expected


def test_locales_fall_back_from_country_to_language_to_english() -> None:
    assert str(babel_locale("es", "MX")) == "es_MX"
    assert str(babel_locale("de", "US")) == "de"  # Babel has no de_US
    assert str(babel_locale("xx", "US")) == "en"


def test_dates_are_the_customers_local_dates() -> None:
    # 23:30 UTC on 4 March is already 5 March in Kuwait and still 4 March in Mexico City
    assert Formatter("ar", "KW", "Asia/Kuwait").date(AT) == "5 مارس 2026"
    assert Formatter("es", "MX", "America/Mexico_City").date(AT) == "4 de marzo de 2026"
    assert Formatter("de", "DE", "Europe/Berlin").date(AT) == "5. März 2026"
    assert Formatter("en", "US", "Nowhere/Atlantis").date(AT) == "March 4, 2026"  # unknown zone: UTC
    assert Formatter("ar", "KW", "UTC").direction == "rtl"
    assert Formatter("de", "DE", "UTC").direction == "ltr"


def test_every_language_has_every_template() -> None:
    names = {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*") if p.is_file()}
    for language in LANGUAGES:
        for kind in Kind:
            for suffix in ("subject.txt", "txt", "html"):
                assert f"{language}/{kind.value}.{suffix}" in names
        for kind in (Kind.DUNNING_REMINDER, Kind.DUNNING_FINAL_NOTICE):
            assert f"{language}/{kind.value}.sms.txt" in names
        assert {f"{language}/_footer.txt", f"{language}/_footer.html"} <= names
    assert Renderer().languages == set(LANGUAGES)


def _customer(language: str) -> CustomerFacts:
    return CustomerFacts(7, "ada@example.com", "Ada", language, "UTC", "US", "+14155550100")


def _payload(event_type: str, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {"customer_id": 7, "invoice_id": 3, "currency": "USD", "payment_method_id": 5}
    if event_type == "dunning.action":
        base |= {"invoice_number": "INV-000003", "amount_remaining_minor": 42_00, "day": 9}
    elif event_type == "invoice.finalized":
        base |= {"amount_due_minor": 42_00}
    else:
        base |= {"amount_minor": 42_00, "attempt_number": 2}
    return base | extra


CASES = [
    ("payment.failed", {"decline_code": "expired_card", "decline_type": "needs_new_card"}),
    ("payment.failed", {"decline_code": "insufficient_funds", "decline_type": "soft"}),
    ("payment.failed", {"decline_code": "stolen_card", "decline_type": "hard"}),
    ("payment.succeeded", {}),
    ("invoice.finalized", {}),
    ("dunning.action", {"action": "remind", "channel": "email"}),
    ("dunning.action", {"action": "remind", "channel": "sms"}),
    ("dunning.action", {"action": "final_notice", "channel": "email"}),
    ("dunning.action", {"action": "final_notice", "channel": "sms"}),
    ("dunning.action", {"action": "suspend", "channel": None}),
    ("dunning.action", {"action": "write_off", "channel": None}),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("event_type", "extra"), CASES)
def test_every_message_renders_in_every_language(
    language: str, event_type: str, extra: dict[str, object]
) -> None:
    renderer = Renderer()
    facts = Facts(
        customers={7: _customer(language)},
        invoices={3: InvoiceFacts(3, "INV-000003", "USD", AT, 42_00)},
        cards={5: ("visa", "4242")},
        invoices_with_failures={3},
    )
    [planned] = plan(OutboxEvent(11, AT, event_type, _payload(event_type, **extra)), facts)
    fmt = Formatter(language, "US", "UTC")
    values = message_values(planned, fmt, facts, company="Recoup Billing")
    if planned.channel is Channel.SMS:
        text = renderer.sms(planned.kind, language, values)
        assert "Recoup Billing" in text
        assert "INV-000003" in text
        assert "\n" not in text
        return
    email = renderer.email(planned.kind, language, values)
    assert email.subject
    assert "\n" not in email.subject
    assert "{" not in email.subject
    assert "Ada" in email.text
    assert "Recoup Billing" in email.text
    assert fmt.money(42_00, "USD") in email.text.replace("\n", " ")
    assert f'<html lang="{language}" dir="{"rtl" if language == "ar" else "ltr"}">' in email.html
    assert "{{" not in email.text + email.html
    assert "{%" not in email.text + email.html
    assert max(len(line) for line in email.text.splitlines()) <= 90


def test_decline_reasons() -> None:
    assert decline_reason("expired_card", "needs_new_card") == "update_card"
    assert decline_reason("insufficient_funds", "soft") == "will_retry"
    assert decline_reason("processing_error", "soft") == "will_retry"
    assert decline_reason("do_not_honor", "hard") == "use_another_card"
    assert decline_reason("unknown", None) == "use_another_card"


def test_which_events_ask_for_what() -> None:
    customer = _customer("en")
    facts = Facts(customers={7: customer}, invoices={3: InvoiceFacts(3, "INV-3", "USD", None, 1)})

    def kinds(event_type: str, **extra: object) -> list[tuple[str, str]]:
        event = OutboxEvent(1, AT, event_type, _payload(event_type, **extra))
        return [(p.channel.value, p.kind.value) for p in plan(event, facts)]

    assert kinds("dunning.action", action="retry", channel=None) == []
    assert kinds("dunning.action", action="remind", channel=None) == [("email", "dunning_reminder")]
    assert kinds("dunning.action", action="remind", channel="call") == [("call", "dunning_reminder")]
    assert kinds("dunning.action", action="suspend", channel="sms") == [("email", "subscription_suspended")]
    assert kinds("dunning.action", action="suspend", channel=None, outcome="suspended") == [
        ("email", "subscription_suspended")
    ]
    assert kinds("dunning.action", action="suspend", channel=None, outcome="already_suspended") == []
    assert kinds("dunning.action", action="suspend", channel=None, outcome="not_suspended") == []
    assert kinds("dunning.action", action="something_new", channel="email") == []
    assert kinds("payment.succeeded") == []  # invoice 3 had no failed attempt
    assert kinds("payment.succeeded", attempt_number=1) == []
    assert kinds("invoice.finalized", amount_due_minor=0) == []
    assert kinds("customer.created") == []
    assert kinds("payment.failed", customer_id=999) == []  # an unknown customer: nobody to tell
    with pytest.raises(ValueError, match="pigeon"):
        kinds("dunning.action", action="remind", channel="pigeon")


def test_a_template_that_uses_an_unknown_value_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "payment_failed.subject.txt").write_text("Hello {{ nickname }}\n")
    renderer = Renderer(tmp_path)
    with pytest.raises(RenderError, match="nickname"):
        renderer.email("payment_failed", "en", {"name": "Ada"})
    with pytest.raises(RenderError, match=r"payment_failed\.txt"):
        renderer.email("payment_failed", "en", {"nickname": "Ada"})


def test_planned_amount_must_be_an_integer_of_minor_units() -> None:
    facts = Facts(customers={7: _customer("en")})
    event = OutboxEvent(1, AT, "payment.failed", _payload("payment.failed", amount_minor=12.5))
    with pytest.raises(ValueError, match="integer amount"):
        Planned.of(event, Kind.PAYMENT_FAILED, Channel.EMAIL, facts.customers[7], facts)


def test_options_are_validated() -> None:
    with pytest.raises(InvalidInput) as caught:
        DispatchOptions(events=frozenset({"payment.failed", "invoice.created"}))
    assert caught.value.field == "events"
    assert caught.value.got == ["invoice.created", "payment.failed"]
    with pytest.raises(InvalidInput) as caught:
        DispatchOptions(events="payment.failed")  # type: ignore[arg-type]
    assert caught.value.field == "events"
    with pytest.raises(InvalidInput) as caught:
        DispatchOptions(sender="billing")
    assert caught.value.field == "sender"
    with pytest.raises(InvalidInput) as caught:
        DispatchOptions(chunk_size=0)
    assert caught.value.field == "chunk_size"
    options = DispatchOptions(events={"invoice.finalized"})  # type: ignore[arg-type]
    assert options.events == frozenset({"invoice.finalized"})
    assert (options.domain, options.company) == ("recoup.invalid", "Recoup Billing")
    assert [DispatchOptions().backoff(n).total_seconds() / 60 for n in (1, 2, 3, 7, 8, 20)] == [
        5,
        10,
        20,
        320,
        360,
        360,
    ]


def test_options_from_settings() -> None:
    from types import SimpleNamespace

    from billing_core.notifications import DEFAULT_EVENTS

    plain = SimpleNamespace(smtp_sender="Acme <billing@acme.example>")
    assert DispatchOptions.from_settings(plain).events == DEFAULT_EVENTS
    assert DispatchOptions.from_settings(plain).company == "Acme"
    configured = SimpleNamespace(
        smtp_sender="billing@acme.example", notify_events="payment.failed, invoice.finalized"
    )
    options = DispatchOptions.from_settings(configured, chunk_size=50)
    assert options.events == frozenset({"payment.failed", "invoice.finalized"})
    assert (options.chunk_size, options.company) == (50, "acme.example")
