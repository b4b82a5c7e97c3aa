"""Money: an integer amount of minor units with its ISO 4217 currency.

The rounding rule, stated once
------------------------------
Prices may carry fractions of a minor unit (``Decimal("0.15")`` cents per API call). Every
computation stays in exact ``Decimal`` until an amount becomes a line, a tax or a discount on an
invoice; there it is rounded **once**, half away from zero (``ROUND_HALF_UP``), to the currency's own
exponent (JPY 0, USD 2, KWD 3). Nothing is ever rounded twice and nothing divides by a hard-coded
100: ``Currency.exponent`` says how many decimals the minor unit has.

Splitting an amount over several parts (a discount over lines, a tax over lines) uses
:func:`allocate`, which never loses or invents a minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import gcd

from billing_core.errors import CurrencyMismatch, InvalidInput, UnknownCurrency

# ISO 4217 active codes and their minor-unit exponents (list one, 2025 edition).
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN "
    "NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE "
    "SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES "
    "WST XCD XCG YER ZAR ZMW ZWG"
)

ISO_4217_EXPONENTS: dict[str, int] = {
    **{code: 0 for code in _EXPONENT_0.split()},
    **{code: 2 for code in _EXPONENT_2.split()},
    **{code: 3 for code in _EXPONENT_3.split()},
    **{code: 4 for code in _EXPONENT_4.split()},
}


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: its code and the number of decimals of its minor unit."""

    code: str
    exponent: int

    @property
    def minor_per_major(self) -> int:
        return int(10**self.exponent)

    def __str__(self) -> str:
        return self.code


_CURRENCIES: dict[str, Currency] = {
    code: Currency(code, exponent) for code, exponent in ISO_4217_EXPONENTS.items()
}


def currency(code: object, *, field: str = "currency") -> Currency:
    """The currency for an ISO 4217 code such as ``"USD"``; raises a clear error otherwise."""
    if isinstance(code, Currency):
        return code
    if not isinstance(code, str) or code not in _CURRENCIES:
        raise UnknownCurrency(field, "an ISO 4217 currency code such as 'USD'", code)
    return _CURRENCIES[code]


def round_minor(amount_minor: Decimal | Fraction | int) -> int:
    """Round an unrounded amount of minor units to an integer, half away from zero.

    This is the project's single rounding rule; every rounding of money goes through here.
    """
    if isinstance(amount_minor, int):
        return amount_minor
    if isinstance(amount_minor, Fraction):
        numerator, denominator = amount_minor.numerator, amount_minor.denominator
        quotient, remainder = divmod(abs(numerator), denominator)
        if 2 * remainder >= denominator:
            quotient += 1
        return quotient if numerator >= 0 else -quotient
    return int(amount_minor.to_integral_value(rounding=ROUND_HALF_UP))


def check_minor(value: object, field: str) -> int:
    """Validate that ``value`` is an integer number of minor units (bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, "an integer number of minor units, such as 150_00", value)
    return value


def check_non_negative_minor(value: object, field: str) -> int:
    amount = check_minor(value, field)
    if amount < 0:
        raise InvalidInput(field, "an amount of minor units >= 0", amount)
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: integer minor units and a currency. Immutable."""

    amount_minor: int
    currency: Currency

    def __post_init__(self) -> None:
        check_minor(self.amount_minor, "amount_minor")
        if not isinstance(self.currency, Currency):
            raise UnknownCurrency("currency", "a Currency", self.currency)

    @classmethod
    def of(cls, amount_minor: int, code: str | Currency) -> Money:
        """``Money.of(150_00, "USD")`` is 150.00 US dollars."""
        return cls(amount_minor, currency(code))

    @classmethod
    def zero(cls, code: str | Currency) -> Money:
        return cls(0, currency(code))

    @classmethod
    def from_major(cls, amount: Decimal | str | int, code: str | Currency) -> Money:
        """From an amount in major units (``"12.345"`` KWD), rounded once by the rule above."""
        cur = currency(code)
        try:
            value = Decimal(amount)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise InvalidInput("amount", "a decimal number of major units", amount) from exc
        if not value.is_finite():
            raise InvalidInput("amount", "a finite decimal number", amount)
        return cls(round_minor(value.scaleb(cur.exponent)), cur)

    def to_major(self) -> Decimal:
        """The amount in major units, exact (``Decimal('12.345')`` for 12345 fils)."""
        return Decimal(self.amount_minor).scaleb(-self.currency.exponent)

    def _same_currency(self, other: Money, field: str = "currency") -> None:
        if not isinstance(other, Money):
            raise InvalidInput(field, "Money", other)
        if other.currency != self.currency:
            raise CurrencyMismatch(field, self.currency.code, other.currency.code)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor < other.amount_minor

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor <= other.amount_minor

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor > other.amount_minor

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor >= other.amount_minor

    def is_zero(self) -> bool:
        return self.amount_minor == 0

    def times(self, factor: Decimal | int) -> Money:
        """Multiply by an exact factor and round once."""
        return Money(round_minor(Decimal(self.amount_minor) * Decimal(factor)), self.currency)

    def allocate(self, weights: Sequence[int | Decimal | Fraction]) -> list[Money]:
        """Split over parts in proportion to ``weights``; the parts sum exactly to ``self``."""
        return [Money(part, self.currency) for part in allocate(self.amount_minor, weights)]

    def __str__(self) -> str:
        return f"{self.to_major():f} {self.currency.code}"


def allocate(total_minor: int, weights: Sequence[int | Decimal | Fraction]) -> list[int]:
    """Split ``total_minor`` over parts in proportion to ``weights``, losing no minor unit.

    Largest-remainder method: each part gets the floor of its exact share, and the units left
    over go one each to the parts with the largest remainders (ties to the earlier part). The
    parts always sum to ``total_minor``; a negative total is split as its absolute value and
    negated. Weights must be >= 0; if they are all zero the total is split equally.
    """
    check_minor(total_minor, "total_minor")
    if not weights:
        if total_minor != 0:
            raise InvalidInput("weights", "at least one weight for a non-zero total", list(weights))
        return []
    integers = _integer_weights(weights)
    if len(integers) == 1:
        return [total_minor]
    total_weight = sum(integers)
    if total_weight == 0:
        integers = [1] * len(integers)
        total_weight = len(integers)
    sign = -1 if total_minor < 0 else 1
    magnitude = abs(total_minor)
    parts = []
    remainders = []
    for weight in integers:
        part, remainder = divmod(magnitude * weight, total_weight)
        parts.append(part)
        remainders.append(remainder)
    left = magnitude - sum(parts)
    if left:
        for i in sorted(range(len(parts)), key=lambda i: (-remainders[i], i))[:left]:
            parts[i] += 1
    return [sign * part for part in parts] if sign < 0 else parts


def _integer_weights(weights: Sequence[int | Decimal | Fraction]) -> list[int]:
    """Weights as integers with the same proportions (validated: numbers >= 0)."""
    if all(type(w) is int and w >= 0 for w in weights):
        return list(weights)  # type: ignore[arg-type]
    fractions: list[Fraction] = []
    for index, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, (int, Decimal, Fraction)):
            raise InvalidInput(f"weights[{index}]", "a number >= 0", weight)
        fraction = Fraction(weight)
        if fraction < 0:
            raise InvalidInput(f"weights[{index}]", "a number >= 0", weight)
        fractions.append(fraction)
    denominator = 1
    for fraction in fractions:
        denominator = denominator * fraction.denominator // gcd(denominator, fraction.denominator)
    return [f.numerator * (denominator // f.denominator) for f in fractions]


def sum_money(amounts: Iterable[Money], code: str | Currency) -> Money:
    """Sum amounts that must all be in ``code``; a different currency is a clear error."""
    total = Money.zero(code)
    for index, amount in enumerate(amounts):
        if amount.currency != total.currency:
            raise CurrencyMismatch(f"amounts[{index}].currency", total.currency.code, amount.currency.code)
        total = Money(total.amount_minor + amount.amount_minor, total.currency)
    return total
