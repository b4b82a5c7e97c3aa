"""Foreign-exchange rates with effective dates, to report amounts in one currency.

A rate says how many units of ``quote`` one unit of ``base`` buys from ``effective_at`` on, until
a later rate replaces it. Conversion goes through major units (so JPY and KWD convert correctly)
and is rounded once, to the target currency's exponent. The inverse of a known rate is used when
only the opposite direction is on file.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing_core.errors import InvalidInput
from billing_core.money import Money, currency, round_minor


@dataclass(frozen=True, slots=True)
class FxRate:
    base: str
    quote: str
    rate: Decimal
    effective_at: datetime


class FxTable:
    """Rates on file, looked up by pair and instant. Pure: load it from the database."""

    def __init__(self, rates: Iterable[FxRate]) -> None:
        self._by_pair: dict[tuple[str, str], list[FxRate]] = {}
        for rate in rates:
            self._by_pair.setdefault((rate.base, rate.quote), []).append(rate)
        for series in self._by_pair.values():
            series.sort(key=lambda r: r.effective_at)

    def rate(self, base: str, quote: str, at: datetime) -> Decimal:
        if base == quote:
            return Decimal(1)
        direct = self._lookup(base, quote, at)
        if direct is not None:
            return direct
        inverse = self._lookup(quote, base, at)
        if inverse is not None:
            return 1 / inverse
        raise InvalidInput("currency", f"a currency with a {quote} rate effective at {at.isoformat()}", base)

    def _lookup(self, base: str, quote: str, at: datetime) -> Decimal | None:
        series = self._by_pair.get((base, quote))
        if not series:
            return None
        index = bisect_right([r.effective_at for r in series], at) - 1
        return series[index].rate if index >= 0 else None

    def convert(self, amount: Money, to: str, at: datetime) -> Money:
        target = currency(to, field="reporting_currency")
        rate = self.rate(amount.currency.code, target.code, at)
        return Money(round_minor(amount.to_major() * rate * target.minor_per_major), target)
