"""Customers and their payment methods."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from billing_core.clock import zone
from billing_core.errors import InvalidInput
from billing_core.money import currency

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DEVICE = re.compile(r"^[\x21-\x7e]{1,64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
LANGUAGES = ("en", "de", "es", "ar", "fr", "it", "pt", "nl", "ja")


class CardBrand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    UNIONPAY = "unionpay"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    email: str
    name: str
    currency: str
    timezone: str
    country: str
    language: str
    billing_anchor_day: int | None
    tax_rate_id: int | None
    balance_minor: int
    default_payment_method_id: int | None
    created_at: datetime
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    id: int
    customer_id: int
    brand: CardBrand
    bin: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str

    def expires_before(self, at: datetime) -> bool:
        """A card is valid through the last day of its expiry month (UTC)."""
        year, month_index = divmod(self.exp_year * 12 + self.exp_month, 12)  # the month after
        return at >= datetime(year, month_index + 1, 1, tzinfo=UTC)


def validate_customer(
    *,
    email: object,
    name: object,
    currency_code: object,
    timezone: object = "UTC",
    country: object = "US",
    language: object = "en",
    billing_anchor_day: object = None,
    external_id: object = None,
) -> dict[str, object]:
    if not isinstance(email, str) or not _EMAIL.match(email):
        raise InvalidInput("email", "an email address such as ada@example.com", email)
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name", "a non-empty name", name)
    cur = currency(currency_code)
    zone(timezone)
    if not isinstance(country, str) or len(country) != 2 or not country.isalpha() or not country.isupper():
        raise InvalidInput("country", "an ISO 3166-1 alpha-2 code such as 'DE'", country)
    if language not in LANGUAGES:
        raise InvalidInput("language", "one of " + ", ".join(LANGUAGES), language)
    if billing_anchor_day is not None and (
        isinstance(billing_anchor_day, bool)
        or not isinstance(billing_anchor_day, int)
        or not 1 <= billing_anchor_day <= 31
    ):
        raise InvalidInput(
            "billing_anchor_day", "a day of the month between 1 and 31, or null", billing_anchor_day
        )
    if external_id is not None and (not isinstance(external_id, str) or not external_id):
        raise InvalidInput("external_id", "a non-empty string or null", external_id)
    return {
        "email": email,
        "name": name.strip(),
        "currency": cur.code,
        "timezone": timezone,
        "country": country,
        "language": language,
        "billing_anchor_day": billing_anchor_day,
        "external_id": external_id,
    }


def validate_card(
    *, brand: object, bin: object, last4: object, exp_month: object, exp_year: object
) -> dict[str, object]:
    try:
        card_brand = CardBrand(brand)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput("brand", "one of " + ", ".join(CardBrand), brand) from exc
    if not isinstance(bin, str) or not bin.isdigit() or len(bin) not in (6, 8):
        raise InvalidInput("bin", "the card's first 6 or 8 digits", bin)
    if not isinstance(last4, str) or not last4.isdigit() or len(last4) != 4:
        raise InvalidInput("last4", "the card's last 4 digits", last4)
    if isinstance(exp_month, bool) or not isinstance(exp_month, int) or not 1 <= exp_month <= 12:
        raise InvalidInput("exp_month", "a month between 1 and 12", exp_month)
    if isinstance(exp_year, bool) or not isinstance(exp_year, int) or not 2000 <= exp_year <= 2100:
        raise InvalidInput("exp_year", "a four-digit year", exp_year)
    return {"brand": card_brand, "bin": bin, "last4": last4, "exp_month": exp_month, "exp_year": exp_year}


def validate_signup_context(
    *,
    signup_channel: object = None,
    signup_ip: object = None,
    signup_device_id: object = None,
    signup_ip_country: object = None,
) -> dict[str, str | None]:
    """Where a customer signed up from; each part is optional (``None``).

    The channel is a lower-case code (``organic``, ``paid_search``...), the IP address an IPv4 or
    IPv6 address (stored in its canonical text form), the device id an opaque printable token, the
    IP's country the ISO 3166 alpha-2 code a GeoIP lookup gave at signup.
    """
    if signup_ip_country is not None and (
        not isinstance(signup_ip_country, str) or not _COUNTRY.match(signup_ip_country)
    ):
        raise InvalidInput(
            "signup_ip_country", "an ISO 3166 alpha-2 country code such as 'DE'", signup_ip_country
        )
    if signup_channel is not None and (
        not isinstance(signup_channel, str) or not _CHANNEL.match(signup_channel)
    ):
        raise InvalidInput(
            "signup_channel",
            "a lower-case channel code of up to 32 characters, such as 'organic'",
            signup_channel,
        )
    ip: str | None = None
    if signup_ip is not None:
        if not isinstance(signup_ip, str):
            raise InvalidInput("signup_ip", "an IPv4 or IPv6 address such as '203.0.113.7'", signup_ip)
        try:
            ip = str(ipaddress.ip_address(signup_ip))
        except ValueError as exc:
            raise InvalidInput(
                "signup_ip", "an IPv4 or IPv6 address such as '203.0.113.7'", signup_ip
            ) from exc
    if signup_device_id is not None and (
        not isinstance(signup_device_id, str) or not _DEVICE.match(signup_device_id)
    ):
        raise InvalidInput(
            "signup_device_id", "a device token of 1 to 64 printable characters", signup_device_id
        )
    return {
        "signup_channel": signup_channel,
        "signup_ip": ip,
        "signup_device_id": signup_device_id,
        "signup_ip_country": signup_ip_country,
    }
