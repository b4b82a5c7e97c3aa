"""Planning invoices: which lines a subscription owes for a period, and their totals. Pure.

The billing run, plan changes, pauses and cancellations all describe the invoice they want as an
:class:`InvoicePlan`; :mod:`billing_core.invoice_writer` writes any number of plans in one set-
based pass. Renewal works on the subscription's schedule (see :mod:`billing_core.periods`):

* at ``boundary(n)`` the subscription owes its licensed prices for period ``n``, in advance (a
  short first period is prorated by days), plus its metered prices on the usage since
  ``usage_billed_until``, in arrears, plus one-time charges waiting for this subscription;
* a plan change scheduled for the period end applies to the licensed lines of period ``n``,
  while the usage of the period just ended is priced on the items that were in force;
* a subscription set to cancel at period end gets a final invoice for its usage and is canceled.

A book of a million subscriptions holds few distinct pricing cases, so :class:`PricingCache`
remembers every exact amount and every set of totals it has computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from billing_core.catalog import Price, UsageType
from billing_core.discounts import Coupon
from billing_core.errors import InvalidInput
from billing_core.invoices import BillingReason, LineDraft, LineKind, Totals, assemble
from billing_core.money import Currency, currency, round_minor
from billing_core.periods import Schedule, days_between, prorate_change
from billing_core.subscriptions import Subscription, SubscriptionItem, SubscriptionStatus
from billing_core.tax import TaxRate

_ONE = Fraction(1)
_METERED = UsageType.METERED  # enum members read once: attribute access on an Enum class is slow


@dataclass(frozen=True, slots=True)
class OneTimeCharge:
    id: int
    description: str
    quantity: int
    unit_amount_minor: int
    currency: str


@dataclass(slots=True)
class InvoicePlan:
    """An invoice ready to be written: lines, totals and where the money goes."""

    customer_id: int
    subscription_id: int | None
    currency: Currency
    reason: BillingReason
    period_start: datetime | None
    period_end: datetime | None
    lines: list[LineDraft]
    totals: Totals
    payment_method_id: int | None
    one_time_charge_ids: tuple[int, ...] = ()
    #: where the usage lines' window starts (their window ends at ``period_start``)
    usage_from: datetime | None = None


@dataclass(slots=True)
class Renewal:
    """What renewing a subscription at ``boundary(n)`` produces: an invoice and the new state."""

    invoice: InvoicePlan
    status: SubscriptionStatus
    next_period_index: int
    next_invoice_at: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    usage_billed_until: datetime
    discounted_invoices: int
    ended_at: datetime | None = None
    items: tuple[SubscriptionItem, ...] = ()
    items_changed: bool = False


@dataclass
class PricingCache:
    """Memoizes exact amounts, descriptions and totals across invoices.

    Keys are catalog ids (prices, coupons, tax rates) with quantities, factors and usage, so a
    cache is only valid for one catalog whose rows never change: it may outlive a run (see
    :mod:`billing_core.services.billing_run`) but not a database.
    """

    amounts: dict[tuple[int, int, Fraction], int] = field(default_factory=dict)
    totals: dict[tuple[object, ...], Totals] = field(default_factory=dict)
    descriptions: dict[tuple[int, LineKind], str] = field(default_factory=dict)
    cases: dict[tuple[object, ...], tuple[tuple[LineDraft, ...], Totals]] = field(default_factory=dict)

    def size(self) -> int:
        """Entries remembered, all memos together."""
        return len(self.amounts) + len(self.totals) + len(self.descriptions) + len(self.cases)

    def clear(self) -> None:
        for memo in (self.amounts, self.totals, self.descriptions, self.cases):
            memo.clear()

    def line_amount(self, price: Price, quantity: int, factor: Fraction = _ONE) -> int:
        """``price`` for ``quantity`` units over ``factor`` of a period, rounded once."""
        key = (price.id, quantity, factor)
        found = self.amounts.get(key)
        if found is None:
            exact = price.amount_minor(quantity)
            if factor != 1:
                exact = exact * Decimal(factor.numerator) / Decimal(factor.denominator)
            found = self.amounts[key] = round_minor(exact)
        return found

    def describe(self, price: Price, kind: LineKind) -> str:
        key = (price.id, kind)
        found = self.descriptions.get(key)
        if found is None:
            found = self.descriptions[key] = describe(price, kind)
        return found

    def assemble(
        self,
        invoice_currency: Currency,
        lines: Sequence[LineDraft],
        coupon: Coupon | None,
        tax_rate: TaxRate | None,
        credit_balance_minor: int,
    ) -> Totals:
        """:func:`billing_core.invoices.assemble`, remembered by (amounts, coupon, tax rate)."""
        key = (
            invoice_currency.code,
            tuple([(line.amount_minor, line.taxable) for line in lines]),
            coupon.id if coupon else None,
            tax_rate.id if tax_rate else None,
        )
        base = self.totals.get(key)
        if base is None:
            base = self.totals[key] = assemble(invoice_currency, lines, coupon=coupon, tax_rate=tax_rate)
        return apply_credit(base, credit_balance_minor)


def apply_credit(totals: Totals, credit_balance_minor: int) -> Totals:
    """Consume the customer's credit balance on totals computed without it."""
    if credit_balance_minor <= 0 or totals.total_minor <= 0:
        return totals
    applied = min(credit_balance_minor, totals.total_minor)
    return totals._replace(credit_applied_minor=applied, amount_due_minor=totals.total_minor - applied)


def describe(price: Price, kind: LineKind) -> str:
    name = price.nickname or f"Price {price.id}"
    if kind is LineKind.USAGE:
        return f"{name} (usage of {price.metric_code})"
    return name


def licensed_lines(
    items: Sequence[SubscriptionItem],
    prices: Mapping[int, Price],
    *,
    subscription_id: int | None,
    period_start: datetime | None,
    period_end: datetime | None,
    factor: Fraction,
    cache: PricingCache,
) -> list[LineDraft]:
    lines = []
    for price_id, quantity in _pairs(items):
        price = prices[price_id]
        if price.usage_type is UsageType.LICENSED:
            lines.append(
                LineDraft(
                    LineKind.SUBSCRIPTION,
                    cache.describe(price, LineKind.SUBSCRIPTION),
                    cache.line_amount(price, quantity, factor),
                    price.currency,
                    quantity,
                    price_id,
                    subscription_id,
                    period_start,
                    period_end,
                )
            )
    return lines


def usage_lines(
    items: Sequence[SubscriptionItem],
    prices: Mapping[int, Price],
    usage: Mapping[str, int],
    *,
    subscription_id: int | None,
    window_start: datetime | None,
    window_end: datetime | None,
    cache: PricingCache,
) -> list[LineDraft]:
    lines = []
    for price_id, _quantity in _pairs(items):
        price = prices[price_id]
        if price.usage_type is not UsageType.METERED or price.metric_code is None:
            continue
        quantity = usage.get(price.metric_code, 0)
        if quantity == 0:
            continue
        lines.append(
            LineDraft(
                LineKind.USAGE,
                cache.describe(price, LineKind.USAGE),
                cache.line_amount(price, quantity),
                price.currency,
                quantity,
                price_id,
                subscription_id,
                window_start,
                window_end,
            )
        )
    return lines


def _pairs(items: Sequence[SubscriptionItem]) -> list[tuple[int, int]]:
    return [(item.price_id, item.quantity) for item in items]


def one_time_lines(charges: Sequence[OneTimeCharge], subscription_id: int | None) -> list[LineDraft]:
    return [
        LineDraft(
            LineKind.ONE_TIME,
            charge.description,
            charge.quantity * charge.unit_amount_minor,
            currency(charge.currency),
            charge.quantity,
            None,
            subscription_id,
        )
        for charge in charges
    ]


def schedule_of(sub: Subscription) -> Schedule:
    return Schedule(sub.anchor_at, sub.tz_name, sub.months_per_period, sub.started_at)


def period_factor(schedule: Schedule, n: int, start: datetime, end: datetime) -> Fraction:
    """1 for a full period; days used over the full period's days for a short first period."""
    if not schedule.is_cut_short(n):
        return _ONE
    full = schedule.full_period_days(n)
    actual = days_between(start, end, schedule.tz_name)
    if actual >= full:
        return _ONE
    return Fraction(actual, full)


def plan_renewal(
    sub: Subscription,
    *,
    prices: Mapping[int, Price],
    coupon: Coupon | None,
    tax_rate: TaxRate | None,
    usage: Mapping[str, int],
    one_time: Sequence[OneTimeCharge],
    pending_items: tuple[SubscriptionItem, ...] | None,
    balance_minor: int,
    payment_method_id: int | None,
    cache: PricingCache,
) -> Renewal:
    """Renew ``sub`` at the start of its next period ``n = sub.next_period_index``.

    ``sub.next_invoice_at`` is ``boundary(n)``: every use case that moves the schedule keeps it so.
    Everything that decides the amounts (the items in force, the prorating factor, the usage per
    metered price, the coupon, the tax rate) is the *pricing case*; each case is priced once per
    run and its lines shared by every subscription in the case. Line periods are the plan's:
    licensed lines cover ``[period_start, period_end)``, usage lines ``[usage_from, period_start)``.
    """
    start = sub.next_invoice_at
    if start is None:
        raise InvalidInput("subscription.next_invoice_at", "a due renewal", None)
    schedule = schedule_of(sub)
    n = sub.next_period_index
    end = schedule.boundary(n + 1)
    ending = sub.cancel_at_period_end
    items = pending_items if pending_items is not None else sub.items
    bill_usage = start > sub.usage_billed_until
    factor = period_factor(schedule, n, start, end) if n < 0 and not ending else _ONE
    use_coupon = coupon if coupon is not None and coupon.applies_to_invoice(sub.discounted_invoices) else None
    metered: tuple[tuple[int, int], ...] = ()
    if bill_usage:
        metered = tuple(
            (item.price_id, usage.get(price.metric_code or "", 0))
            for item in sub.items
            if (price := prices[item.price_id]).usage_type is _METERED
        )
    key = (
        sub.currency,
        () if ending else tuple([(item.price_id, item.quantity) for item in items]),
        None if factor is _ONE else (factor.numerator, factor.denominator),  # hashing a Fraction is slow
        metered,
        use_coupon.id if use_coupon else None,
        tax_rate.id if tax_rate else None,
    )
    case = cache.cases.get(key)
    if case is None:
        lines: list[LineDraft] = []
        if bill_usage:
            lines += usage_lines(sub.items, prices, usage, subscription_id=None, window_start=None,
                                 window_end=None, cache=cache)  # fmt: skip
        if not ending:
            lines += licensed_lines(items, prices, subscription_id=None, period_start=None, period_end=None,
                                    factor=factor, cache=cache)  # fmt: skip
        cur = currency(sub.currency)
        case = cache.cases[key] = (tuple(lines), cache.assemble(cur, lines, use_coupon, tax_rate, 0))
    lines_of_case, totals = case
    plan_lines = list(lines_of_case)
    if one_time:
        plan_lines += one_time_lines(one_time, sub.id)
        totals = cache.assemble(currency(sub.currency), plan_lines, use_coupon, tax_rate, 0)
    totals = apply_credit(totals, balance_minor)
    discounted = sub.discounted_invoices + (1 if use_coupon is not None and totals.subtotal_minor > 0 else 0)

    invoice = InvoicePlan(
        sub.customer_id,
        sub.id,
        totals.currency,
        BillingReason.SUBSCRIPTION_FINAL if ending else BillingReason.SUBSCRIPTION_CYCLE,
        start,
        end,
        plan_lines,
        totals,
        payment_method_id,
        tuple(charge.id for charge in one_time),
        sub.usage_billed_until,
    )
    if ending:
        return Renewal(
            invoice, SubscriptionStatus.CANCELED, n, None, sub.current_period_start, sub.current_period_end,
            start, discounted, ended_at=start, items=sub.items,
        )  # fmt: skip
    return Renewal(
        invoice, sub.status, n + 1, end, start, end, start, discounted,
        items=items, items_changed=pending_items is not None,
    )  # fmt: skip


def current_period_prepaid(sub: Subscription) -> bool:
    """Was the current period's licensed fee invoiced in advance (not a trial, already billed)?"""
    if sub.current_period_start is None or sub.current_period_end is None or sub.next_invoice_at is None:
        return False
    if sub.trial_end is not None and sub.current_period_end <= sub.trial_end:
        return False
    return sub.next_invoice_at >= sub.current_period_end


def proration_lines(
    sub: Subscription,
    items: Sequence[SubscriptionItem],
    prices: Mapping[int, Price],
    *,
    at: datetime,
    credit: bool,
    cache: PricingCache,
) -> list[LineDraft]:
    """Prorated licensed lines for the rest of the current period, from ``at``.

    ``credit=True`` gives negative lines for the unused days of what was charged; ``False``
    charges the same days on ``items``. Days are counted on the customer's calendar.
    """
    start, end = sub.current_period_start, sub.current_period_end
    if start is None or end is None or not start <= at < end:
        return []
    factor = period_factor(schedule_of(sub), sub.next_period_index - 1, start, end)
    cur = currency(sub.currency)
    lines = []
    for price_id, quantity in _pairs(items):
        price = prices[price_id]
        if price.usage_type is not UsageType.LICENSED:
            continue
        full = cache.line_amount(price, quantity, factor)
        change = prorate_change(
            old_amount_minor=full if credit else 0,
            new_amount_minor=0 if credit else full,
            period_start=start,
            period_end=end,
            change_at=at,
            tz_name=sub.tz_name,
        )
        amount = change.credit_minor if credit else change.charge_minor
        if amount == 0:
            continue
        label = "Unused time on" if credit else "Remaining time on"
        lines.append(
            LineDraft(
                LineKind.PRORATION,
                f"{label} {describe(price, LineKind.SUBSCRIPTION)} ({change.remaining_days}/{change.total_days} days)",
                amount,
                cur,
                quantity,
                price.id,
                sub.id,
                at,
                end,
            )
        )
    return lines
