"""New customers in bulk, written exactly as the use cases would leave them.

A signup in the billing core is three use cases in a row: :func:`~billing_core.services.
create_customer.create_customer` (with the signup's channel, IP address and device),
:func:`~billing_core.services.add_payment_method.add_payment_method` (the card, as the default
or kept aside) and :func:`~billing_core.services.create_subscription.create_subscription` (one
subscription per interval: a monthly plan with its metered add-on, or an annual plan with the
add-on on a monthly subscription of its own). :func:`write_signups` writes thousands of them in
one transaction with the same rows, the same ids and the same outbox events, in the same order,
that those calls would have written one by one, each at its own instant (``created_at``).
``tests/simulation/test_signups.py`` compares the two paths table by table and event by event.

The one difference: ``create_subscription`` invoices the first period at once, while a signup
written here waits for the next billing run (``next_invoice_at`` is the start), which invoices
it exactly as the use case would have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from billing_core.audit import Event
from billing_core.catalog import Price, UsageType
from billing_core.context import Tx
from billing_core.customers import validate_card, validate_customer, validate_signup_context
from billing_core.errors import CurrencyMismatch, InvalidInput
from billing_core.periods import Schedule, first_anchor
from billing_core.subscriptions import SubscriptionStatus

CUSTOMER_COLUMNS = (
    "id", "email", "name", "currency", "timezone", "country", "language", "tax_rate_id",
    "balance_minor", "default_payment_method_id", "created_at", "updated_at", "signup_channel",
    "signup_ip", "signup_device_id", "signup_ip_country",
)  # fmt: skip
CARD_COLUMNS = (
    "id", "customer_id", "brand", "bin", "last4", "exp_month", "exp_year", "fingerprint", "created_at",
)  # fmt: skip
SUBSCRIPTION_COLUMNS = (
    "id", "customer_id", "status", "currency", "tz_name", "months_per_period", "started_at", "anchor_at",
    "trial_end", "next_period_index", "next_invoice_at", "current_period_start", "current_period_end",
    "cancel_at_period_end", "discounted_invoices", "usage_billed_until", "created_at", "updated_at",
)  # fmt: skip


class NewCard(NamedTuple):
    brand: str
    bin: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    default: bool = True


class NewSubscription(NamedTuple):
    """One subscription: its items as ``(price_id, quantity)``, all on one interval."""

    items: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class NewCustomer:
    """A signup: the customer, where they signed up from, their card and their subscriptions."""

    created_at: datetime
    email: str
    name: str
    currency: str
    timezone: str
    country: str
    language: str
    tax_rate_id: int | None = None
    signup_channel: str | None = None
    signup_ip: str | None = None
    signup_device_id: str | None = None
    signup_ip_country: str | None = None
    card: NewCard | None = None
    subscriptions: tuple[NewSubscription, ...] = ()


class WrittenCustomer(NamedTuple):
    customer_id: int
    payment_method_id: int | None
    subscription_ids: tuple[int, ...]
    #: per subscription: (anchor instant, months per period)
    schedules: tuple[tuple[datetime, int], ...]


def write_signups(
    tx: Tx, customers: Sequence[NewCustomer], *, prices: Mapping[int, Price]
) -> list[WrittenCustomer]:
    """Write ``customers`` in ``tx`` as create_customer, add_payment_method and create_subscription
    (``invoice_now=False``) would, one customer after the other, each at its ``created_at``.

    ``prices`` are the catalog's prices by id (the subscriptions' items are checked against
    them as ``create_subscription`` checks them: active, in the customer's currency, one
    interval per subscription, a metric billed by one subscription only). Everything is checked
    before anything is written; the first culprit is named (``customers[3].subscriptions[0]``).
    """
    if not customers:
        return []
    checked = [_check(index, customer, prices) for index, customer in enumerate(customers)]
    bulk = tx.bulk
    instant = bulk.instant_formatter()
    false = bulk.boolean(False)
    customer_ids = iter(bulk.reserve_ids("customers", len(customers)))
    card_ids = iter(bulk.reserve_ids("payment_methods", sum(1 for c in customers if c.card is not None)))
    sub_ids = iter(bulk.reserve_ids("subscriptions", sum(len(c.subscriptions) for c in customers)))
    customer_rows: list[tuple[Any, ...]] = []
    card_rows: list[tuple[Any, ...]] = []
    sub_rows: list[tuple[Any, ...]] = []
    item_rows: list[tuple[int, int, int]] = []
    written: list[WrittenCustomer] = []
    active = SubscriptionStatus.ACTIVE.value
    for customer, (values, context, card, months) in zip(customers, checked, strict=True):
        now = customer.created_at
        now_s = instant(now)
        customer_id = next(customer_ids)
        pm_id = next(card_ids) if card is not None else None
        default_pm = pm_id if card is not None and card.default else None
        customer_rows.append(
            (
                customer_id, values["email"], values["name"], values["currency"], values["timezone"],
                values["country"], values["language"], customer.tax_rate_id, 0, default_pm, now_s, now_s,
                context["signup_channel"], context["signup_ip"], context["signup_device_id"],
                context["signup_ip_country"],
            )
        )  # fmt: skip
        tx.emit_event(
            Event.of(
                now, "customer.created", "customer", customer_id, customer_id=customer_id,
                currency=values["currency"], country=values["country"], timezone=values["timezone"],
                language=values["language"], tax_rate_id=customer.tax_rate_id,
                **{name: value for name, value in context.items() if value is not None},
            )
        )  # fmt: skip
        if card is not None and pm_id is not None:
            card_rows.append(
                (pm_id, customer_id, card.brand, card.bin, card.last4, card.exp_month, card.exp_year,
                 card.fingerprint, now_s)
            )  # fmt: skip
            tx.emit_event(
                Event.of(
                    now, "payment_method.attached", "customer", customer_id, customer_id=customer_id,
                    payment_method_id=pm_id, brand=card.brand, bin=card.bin, last4=card.last4,
                    exp_month=card.exp_month, exp_year=card.exp_year, default=card.default,
                )
            )  # fmt: skip
        ids: list[int] = []
        schedules: list[tuple[datetime, int]] = []
        tz_name = str(values["timezone"])
        for subscription, period_months in zip(customer.subscriptions, months, strict=True):
            sub_id = next(sub_ids)
            anchor = first_anchor(now, tz_name, None, None)
            schedule = Schedule(anchor, tz_name, period_months, now)
            first = -1 if anchor > now else 0
            start, end = schedule.period(first)
            sub_rows.append(
                (
                    sub_id, customer_id, active, values["currency"], values["timezone"], period_months,
                    now_s, instant(anchor), None, first, instant(schedule.boundary(first)), instant(start),
                    instant(end), false, 0, now_s, now_s, now_s,
                )
            )  # fmt: skip
            item_rows.extend((sub_id, price_id, quantity) for price_id, quantity in subscription.items)
            tx.emit_event(
                Event.of(
                    now, "subscription.created", "subscription", sub_id, subscription_id=sub_id,
                    customer_id=customer_id, status=active, currency=values["currency"],
                    items=[{"price_id": p, "quantity": q} for p, q in subscription.items],
                    trial_end=None, started_at=now.isoformat(), coupon_id=None,
                )
            )  # fmt: skip
            ids.append(sub_id)
            schedules.append((anchor, period_months))
        written.append(WrittenCustomer(customer_id, pm_id, tuple(ids), tuple(schedules)))
    bulk.insert("customers", CUSTOMER_COLUMNS, customer_rows)
    bulk.insert("payment_methods", CARD_COLUMNS, card_rows)
    bulk.insert("subscriptions", SUBSCRIPTION_COLUMNS, sub_rows)
    bulk.insert("subscription_items", ("subscription_id", "price_id", "quantity"), item_rows)
    return written


def _check(
    index: int, customer: NewCustomer, prices: Mapping[int, Price]
) -> tuple[dict[str, object], dict[str, str | None], NewCard | None, list[int]]:
    where = f"customers[{index}]"
    try:
        values = validate_customer(
            email=customer.email,
            name=customer.name,
            currency_code=customer.currency,
            timezone=customer.timezone,
            country=customer.country,
            language=customer.language,
        )
        context = validate_signup_context(
            signup_channel=customer.signup_channel,
            signup_ip=customer.signup_ip,
            signup_device_id=customer.signup_device_id,
            signup_ip_country=customer.signup_ip_country,
        )
    except InvalidInput as error:
        raise type(error)(f"{where}.{error.field}", error.expected, error.got) from error
    if not isinstance(customer.created_at, datetime) or customer.created_at.tzinfo is None:
        raise InvalidInput(f"{where}.created_at", "a tz-aware instant", customer.created_at)
    card = customer.card
    if card is not None:
        try:
            validate_card(
                brand=card.brand,
                bin=card.bin,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
            )
        except InvalidInput as error:
            raise InvalidInput(f"{where}.card.{error.field}", error.expected, error.got) from error
        if not isinstance(card.fingerprint, str) or not 0 < len(card.fingerprint) <= 64:
            raise InvalidInput(
                f"{where}.card.fingerprint", "a fingerprint of 1 to 64 characters", card.fingerprint
            )
    months: list[int] = []
    metrics: set[str] = set()
    for s, subscription in enumerate(customer.subscriptions):
        period: int | None = None
        if not subscription.items:
            raise InvalidInput(
                f"{where}.subscriptions[{s}].items", "a non-empty list of items", subscription.items
            )
        seen: set[int] = set()
        for i, (price_id, quantity) in enumerate(subscription.items):
            field = f"{where}.subscriptions[{s}].items[{i}]"
            if price_id in seen:
                raise InvalidInput(f"{field}.price_id", "a price not already on the subscription", price_id)
            seen.add(price_id)
            price = prices.get(price_id)
            if price is None or not price.active:
                raise InvalidInput(f"{field}.price_id", "an active price of the catalog", price_id)
            if price.currency.code != values["currency"]:
                raise CurrencyMismatch(
                    f"{field}.price_id",
                    f"a price in the customer's currency {values['currency']}",
                    price.currency.code,
                )
            if period is None:
                period = price.months_per_period
            elif price.months_per_period != period:
                raise InvalidInput(
                    f"{field}.price_id",
                    f"a price billed every {period} month(s) like the other items",
                    f"every {price.months_per_period} month(s)",
                )
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                raise InvalidInput(f"{field}.quantity", "a whole number >= 0", quantity)
            if price.usage_type is UsageType.METERED:
                code = price.metric_code or ""
                if code in metrics:
                    raise InvalidInput(
                        f"{field}.price_id", f"no second metered price for {code!r} on one customer", price_id
                    )
                metrics.add(code)
        months.append(period or 1)
    return values, context, card, months
