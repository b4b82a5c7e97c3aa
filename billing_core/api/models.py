"""Request and response bodies, with the JSON field names of the use cases.

Amounts are integers of minor units beside an ISO 4217 ``currency`` (``amount_minor: 150_00``
is 150.00 USD); prices that carry fractions of a minor unit are exact decimals written as
strings (``"0.15"``), never floats. Instants are ISO 8601 with an offset
(``2026-03-01T12:00:00Z``); a naive instant is refused.

Request bodies refuse unknown fields and values the database could not hold (ids beyond 32 bits,
text longer than its column, NUL characters): the API answers 422 naming the field rather than
failing later. What the use cases check (a known currency, an existing price, a state that
allows the action) is answered 400, 404 or 409 by them.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)

from billing_core.api.keys import Role
from billing_core.catalog import Aggregation, Interval, PricingModel, UsageType
from billing_core.credit_notes import CreditNoteReason, CreditOutcome
from billing_core.discounts import Duration
from billing_core.disputes import DisputeCategory, DisputeOutcome

MAX_ID = 2**31 - 1
MAX_MINOR = 10**12  # ten billion of a two-decimal currency: larger is a typo, and sums stay in 64 bits
MAX_QUANTITY = 10**6
MAX_USAGE_VALUE = 2**63 - 1
MAX_TEXT = 10_000
MAX_BATCH = 10_000
EARLIEST_YEAR, LATEST_YEAR = 1970, 2200

# ------------------------------------------------------------------------------------ input types


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text without NUL characters")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("valid Unicode text (no unpaired surrogates)") from None
    return value


def _length(low: int, high: int) -> Any:
    return Field(strict=True, min_length=low, max_length=high)


_STORABLE = AfterValidator(storable)
# strings every database can store, no longer than their columns
Str2 = Annotated[str, _length(2, 2), _STORABLE]
Str4 = Annotated[str, _length(4, 4), _STORABLE]
Str8 = Annotated[str, _length(1, 8), _STORABLE]
Str16 = Annotated[str, _length(1, 16), _STORABLE]
Str32 = Annotated[str, _length(1, 32), _STORABLE]
Str64 = Annotated[str, _length(1, 64), _STORABLE]
Str128 = Annotated[str, _length(1, 128), _STORABLE]
Str256 = Annotated[str, _length(1, 256), _STORABLE]
Str320 = Annotated[str, _length(1, 320), _STORABLE]
Str512 = Annotated[str, _length(1, 512), _STORABLE]
OptionalStr256 = Annotated[str, _length(0, 256), _STORABLE]
LongText = Annotated[str, _length(1, MAX_TEXT), _STORABLE]
OptionalLongText = Annotated[str, _length(0, MAX_TEXT), _STORABLE]

Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Currency = Annotated[
    str, Field(strict=True, pattern="^[A-Z]{3}$", description="ISO 4217 code, such as `USD`.")
]
MinorPositive = Annotated[StrictInt, Field(ge=1, le=MAX_MINOR, description="Minor units, such as 150_00.")]
MinorNonNegative = Annotated[StrictInt, Field(ge=0, le=MAX_MINOR, description="Minor units.")]
Quantity = Annotated[StrictInt, Field(ge=0, le=MAX_QUANTITY)]


def _instant_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("an ISO 8601 instant with an offset, as a string, such as 2026-03-01T12:00:00Z")
    return value


def _instant_range(value: datetime) -> datetime:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"an instant between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_instant_text),
    AfterValidator(_instant_range),
    Field(description="ISO 8601 instant with an offset, such as `2026-03-01T12:00:00Z`."),
]

_DECIMAL = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,12})?$")


def _decimal_text(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**15:
        return str(value)
    if isinstance(value, str) and _DECIMAL.match(value):
        return value
    raise ValueError(
        "an exact decimal >= 0 as a string, such as '0.15', or a whole number (floats are inexact)"
    )


DecimalIn = Annotated[
    str,
    BeforeValidator(_decimal_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DECIMAL.pattern},
                {"type": "integer", "minimum": 0, "maximum": 10**15},
            ],
            "description": 'An exact decimal: a string such as `"0.15"`, or a whole number.',
        }
    ),
]


class In(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------- output types


def _decimal_out(value: object) -> object:
    return format(value, "f") if isinstance(value, Decimal) else value


DecimalOut = Annotated[str, BeforeValidator(_decimal_out)]


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


T = TypeVar("T")


class Page(Out, Generic[T]):
    """A page of a list, newest first; pass the last item's id as ``starting_after`` for the next."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool = Field(description="Whether another page follows this one.")


# ------------------------------------------------------------------------------------- customers


class CustomerCreate(In):
    email: Str320
    name: Str256
    currency: Currency
    timezone: Str64 = "UTC"
    country: Str2 = "US"
    language: Str8 = "en"
    billing_anchor_day: Annotated[StrictInt, Field(ge=1, le=31)] | None = None
    tax_rate_id: Id | None = None
    external_id: Str128 | None = Field(
        default=None, description="Your id for the customer: creating it again returns the same one."
    )
    signup_channel: Str32 | None = Field(
        default=None, description="How the customer came: a lower-case code such as `organic` or `partner`."
    )
    signup_ip: Str64 | None = Field(default=None, description="The IPv4 or IPv6 address of the signup.")
    signup_ip_country: Str2 | None = Field(
        default=None, description="The signup IP address's ISO 3166 country, from your GeoIP lookup."
    )
    signup_device_id: Str64 | None = Field(default=None, description="Your device fingerprint of the signup.")


class Customer(Out):
    object: Literal["customer"] = "customer"
    id: int
    external_id: str | None
    email: str
    name: str
    currency: str
    timezone: str
    country: str
    language: str
    billing_anchor_day: int | None
    tax_rate_id: int | None
    balance_minor: int = Field(description="Credit the next invoices consume, in minor units.")
    default_payment_method_id: int | None
    signup_channel: str | None = None
    signup_ip: str | None = None
    signup_ip_country: str | None = None
    signup_device_id: str | None = None
    created_at: datetime
    updated_at: datetime


class CustomerList(Page[Customer]):
    pass


class PaymentMethodCreate(In):
    brand: Str16
    bin: Str8
    last4: Str4
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)]
    exp_year: Annotated[StrictInt, Field(ge=2000, le=2100)]
    fingerprint: Str64 | None = None
    make_default: StrictBool = True


class PaymentMethod(Out):
    object: Literal["payment_method"] = "payment_method"
    id: int
    customer_id: int
    brand: str
    bin: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    created_at: datetime
    detached_at: datetime | None


class PaymentMethodList(Page[PaymentMethod]):
    pass


# --------------------------------------------------------------------------------------- catalog


class ProductCreate(In):
    name: Str256


class Product(Out):
    object: Literal["product"] = "product"
    id: int
    name: str
    created_at: datetime


class ProductList(Page[Product]):
    pass


class BillableMetricCreate(In):
    code: Str64 = Field(description="Letters, digits, `_` and `.`, such as `api_calls`.")
    name: Str256
    aggregation: Aggregation


class BillableMetric(Out):
    object: Literal["billable_metric"] = "billable_metric"
    code: str
    name: str
    aggregation: str
    created_at: datetime


class BillableMetricList(Page[BillableMetric]):
    pass


class TierIn(In):
    up_to: Annotated[StrictInt, Field(ge=1, le=10**15)] | None = Field(
        default=None, description="Upper bound of the tier; null for the last, open tier."
    )
    unit_amount_minor: DecimalIn = "0"
    flat_amount_minor: MinorNonNegative = 0


class PriceCreate(In):
    product_id: Id
    currency: Currency
    model: PricingModel
    interval: Interval
    interval_count: Annotated[StrictInt, Field(ge=1, le=36)] = 1
    usage_type: UsageType = UsageType.LICENSED
    unit_amount_minor: DecimalIn = "0"
    package_size: Annotated[StrictInt, Field(ge=1, le=10**9)] | None = None
    tiers: Annotated[list[TierIn], Field(max_length=50)] = []
    metric_code: Str64 | None = None
    trial_days: Annotated[StrictInt, Field(ge=0, le=730)] = 0
    nickname: OptionalStr256 = ""


class Tier(Out):
    up_to: int | None
    unit_amount_minor: DecimalOut
    flat_amount_minor: int


class Price(Out):
    object: Literal["price"] = "price"
    id: int
    product_id: int
    currency: str
    model: str
    interval: str
    interval_count: int
    usage_type: str
    unit_amount_minor: DecimalOut = Field(description="Exact, may carry fractions of a minor unit.")
    package_size: int | None
    tiers: list[Tier]
    metric_code: str | None
    trial_days: int
    nickname: str
    active: bool
    created_at: datetime


class PriceList(Page[Price]):
    pass


class CouponCreate(In):
    name: Str256
    duration: Duration
    percent_off: DecimalIn | None = None
    amount_off_minor: MinorPositive | None = None
    currency: Currency | None = None
    duration_in_periods: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None


class Coupon(Out):
    object: Literal["coupon"] = "coupon"
    id: int
    name: str
    duration: str
    percent_off: DecimalOut | None
    amount_off_minor: int | None
    currency: str | None
    duration_in_periods: int | None
    created_at: datetime


class CouponList(Page[Coupon]):
    pass


class TaxRateCreate(In):
    jurisdiction: Str16 = Field(description="ISO 3166 country, optionally with a region: `DE`, `US-CA`.")
    percentage: DecimalIn
    inclusive: StrictBool
    display_name: Str64 = "Tax"


class TaxRate(Out):
    object: Literal["tax_rate"] = "tax_rate"
    id: int
    jurisdiction: str
    percentage: DecimalOut
    inclusive: bool
    display_name: str
    active: bool
    created_at: datetime


class TaxRateList(Page[TaxRate]):
    pass


class FxRateCreate(In):
    base: Currency
    quote: Currency
    rate: DecimalIn = Field(description="One `base` unit buys `rate` `quote` units.")
    effective_at: Instant


class FxRate(Out):
    object: Literal["fx_rate"] = "fx_rate"
    base: str
    quote: str
    rate: DecimalOut
    effective_at: datetime


# --------------------------------------------------------------------------------- subscriptions


class ItemIn(In):
    price_id: Id
    quantity: Quantity | None = Field(
        default=None, description="Seats for a licensed price (default 1); metered prices take none."
    )


Items = Annotated[list[ItemIn], Field(min_length=1, max_length=20)]


class SubscriptionCreate(In):
    customer_id: Id
    items: Items
    coupon_id: Id | None = None
    trial_days: Annotated[StrictInt, Field(ge=0, le=730)] | None = Field(
        default=None, description="Default: the longest trial of the prices."
    )
    start_at: Instant | None = None
    invoice_now: StrictBool = Field(
        default=True, description="Invoice (and charge) the first period at once, unless a trial comes first."
    )


class PlanChangeIn(In):
    items: Items
    effective: Literal["immediately", "period_end"] = "immediately"


class CancelIn(In):
    at_period_end: StrictBool = False
    prorate: StrictBool = Field(
        default=False, description="Credit the unused prepaid days to the customer's balance."
    )


class ResumeIn(In):
    invoice_now: StrictBool = True


class SubscriptionItem(Out):
    id: int
    price_id: int
    quantity: int


class PendingItem(Out):
    price_id: int
    quantity: int


class PendingChange(Out):
    effective_at: datetime
    items: list[PendingItem]


class Subscription(Out):
    object: Literal["subscription"] = "subscription"
    id: int
    customer_id: int
    status: str
    currency: str
    tz_name: str
    months_per_period: int
    started_at: datetime
    anchor_at: datetime
    trial_end: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    next_invoice_at: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    paused_at: datetime | None
    coupon_id: int | None
    items: list[SubscriptionItem]
    pending_change: PendingChange | None
    created_at: datetime
    updated_at: datetime


class SubscriptionList(Page[Subscription]):
    pass


class PlanChange(Out):
    object: Literal["plan_change"] = "plan_change"
    effective: str
    invoice_id: int | None = Field(description="The proration invoice, when one was issued.")
    amount_due_minor: int
    subscription: Subscription


# ----------------------------------------------------------------------------------------- usage


class UsageEventIn(In):
    event_id: Str128 = Field(description="Your id for the event: sending it again changes nothing.")
    customer_id: Id
    metric_code: Str64
    occurred_at: Instant
    value: Annotated[StrictInt, Field(ge=0, le=MAX_USAGE_VALUE)] = 1
    unique_key: Str256 | None = Field(default=None, description="For `unique_count` metrics.")


class UsageBatchIn(In):
    events: Annotated[list[UsageEventIn], Field(min_length=1, max_length=MAX_BATCH)]


class UsageRecorded(Out):
    object: Literal["usage_batch"] = "usage_batch"
    received: int
    accepted: int = Field(description="Events recorded now.")
    duplicates: int = Field(description="Events already on file (or twice in the batch), not recorded again.")


class UsageEvent(Out):
    object: Literal["usage_event"] = "usage_event"
    id: int
    event_id: str
    customer_id: int
    metric_code: str
    occurred_at: datetime
    value: int
    unique_key: str | None
    received_at: datetime


class UsageEventList(Page[UsageEvent]):
    pass


# -------------------------------------------------------------------------------------- invoices


class InvoiceLine(Out):
    position: int
    kind: str
    description: str
    price_id: int | None
    subscription_id: int | None
    quantity: int
    period_start: datetime | None
    period_end: datetime | None
    amount_minor: int
    discount_minor: int
    tax_minor: int
    taxable: bool


class Invoice(Out):
    object: Literal["invoice"] = "invoice"
    id: int
    number: str | None
    customer_id: int
    subscription_id: int | None
    status: str
    billing_reason: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    tax_inclusive: bool
    total_minor: int
    credit_applied_minor: int
    amount_due_minor: int
    amount_paid_minor: int
    amount_credited_minor: int
    amount_remaining_minor: int
    created_at: datetime
    finalized_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    lines: list[InvoiceLine] | None = Field(default=None, description="On a single invoice only.")


class InvoiceList(Page[Invoice]):
    pass


class PayIn(In):
    payment_method_id: Id | None = Field(default=None, description="Default: the customer's default card.")


class PaymentAttempt(Out):
    object: Literal["payment_attempt"] = "payment_attempt"
    id: int
    invoice_id: int
    attempt_number: int
    amount_minor: int
    currency: str
    status: str
    decline_code: str | None
    decline_type: str | None
    payment_method_id: int | None
    scheduled_at: datetime
    processed_at: datetime | None


class InvoicePayment(Out):
    object: Literal["invoice_payment"] = "invoice_payment"
    attempt: PaymentAttempt | None
    invoice: Invoice


class OneTimeChargeCreate(In):
    customer_id: Id
    description: Str512
    unit_amount_minor: MinorPositive
    currency: Currency
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)] = 1
    subscription_id: Id | None = Field(
        default=None, description="Wait for this subscription's next invoice; without it, invoice now."
    )


class OneTimeCharge(Out):
    object: Literal["one_time_charge"] = "one_time_charge"
    id: int
    customer_id: int
    subscription_id: int | None
    description: str
    quantity: int
    unit_amount_minor: int
    currency: str
    invoice_id: int | None
    created_at: datetime


# -------------------------------------------------------------------------------------- payments


class Payment(Out):
    object: Literal["payment"] = "payment"
    id: int
    invoice_id: int
    attempt_id: int | None
    customer_id: int
    method: str
    payment_method_id: int | None
    amount_minor: int
    currency: str
    amount_refunded_minor: int
    gateway_reference: str | None
    created_at: datetime


class PaymentList(Page[Payment]):
    pass


class RefundCreate(In):
    payment_id: Id
    amount_minor: MinorPositive | None = Field(default=None, description="Default: all that is left.")
    reason: Str64 = "requested_by_customer"
    idempotency_key: Str128 | None = Field(
        default=None,
        description="Sent to the gateway. Default: derived from the `Idempotency-Key` header, else fresh.",
    )


class Refund(Out):
    object: Literal["refund"] = "refund"
    id: int
    payment_id: int
    amount_minor: int
    currency: str
    reason: str
    gateway_reference: str | None
    credit_note_id: int | None
    created_at: datetime


class RefundList(Page[Refund]):
    pass


class ChargebackCreate(In):
    payment_id: Id
    network_reference: Str128 = Field(
        description="The network's case reference: recording it twice is one chargeback."
    )
    amount_minor: MinorPositive
    reason_code: Str64
    fee_minor: MinorNonNegative = 0


class ChargebackClose(In):
    won: StrictBool


class Chargeback(Out):
    object: Literal["chargeback"] = "chargeback"
    id: int
    payment_id: int
    network_reference: str
    amount_minor: int
    fee_minor: int
    currency: str
    reason_code: str
    status: str
    opened_at: datetime
    closed_at: datetime | None


class ChargebackList(Page[Chargeback]):
    pass


class CreditNoteCreate(In):
    invoice_id: Id
    amount_minor: MinorPositive
    reason: CreditNoteReason
    outcome: CreditOutcome
    memo: OptionalLongText = ""
    idempotency_key: Str128 | None = Field(
        default=None, description="For `outcome: refund`. Default as for refunds."
    )


class CreditNote(Out):
    object: Literal["credit_note"] = "credit_note"
    id: int
    number: str
    invoice_id: int
    customer_id: int
    amount_minor: int
    currency: str
    reason: str
    outcome: str
    refund_id: int | None
    memo: str
    created_at: datetime


class CreditNoteList(Page[CreditNote]):
    pass


# -------------------------------------------------------------------------------------- disputes


class DisputeCreate(In):
    customer_id: Id
    message: LongText = Field(description="The customer's own words.")
    amount_minor: MinorPositive
    invoice_id: Id | None = Field(default=None, description="Exactly one of invoice_id and payment_id.")
    payment_id: Id | None = None


class DisputeReview(In):
    category: DisputeCategory | None = None


class DisputeCategorize(In):
    category: DisputeCategory


class DisputeResolve(In):
    outcome: DisputeOutcome
    note: OptionalLongText = ""


class DisputeWithdraw(In):
    note: OptionalLongText = ""


class Dispute(Out):
    object: Literal["dispute"] = "dispute"
    id: int
    customer_id: int
    invoice_id: int | None
    payment_id: int | None
    amount_minor: int
    currency: str
    message: str
    category: str | None
    status: str
    outcome: str | None
    resolution_note: str | None
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class DisputeList(Page[Dispute]):
    pass


# -------------------------------------------------------------------------------------- api keys


class ApiKeyCreate(In):
    name: Str128
    role: Role


class ApiKey(Out):
    object: Literal["api_key"] = "api_key"
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="`rk_<id>_<secret>`: shown this once, never stored.")


class ApiKeyList(Page[ApiKey]):
    pass


class Health(Out):
    status: Literal["ok"] = "ok"
