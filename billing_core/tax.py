"""Tax rates per jurisdiction, exclusive (added on top) or inclusive (already in the price).

Tax is computed once per invoice on the taxable amount after discounts, rounded once, and then
spread over the lines with :func:`billing_core.money.allocate` for line-level reporting:

* exclusive: ``tax = round(base × rate)``, and the customer pays ``base + tax``;
* inclusive: ``tax = round(base × rate / (1 + rate))``, and the customer pays ``base``.

A negative base (a proration credit) gives a negative tax, so credits return their tax too.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing_core.catalog import decimal_value
from billing_core.errors import InvalidInput
from billing_core.money import round_minor


@dataclass(frozen=True, slots=True)
class TaxRate:
    id: int
    jurisdiction: str  # ISO 3166 country, optionally with a region: "DE", "US-CA"
    percentage: Decimal
    inclusive: bool
    display_name: str = "Tax"

    def tax_minor(self, base_minor: int) -> int:
        return tax_on(base_minor, self.percentage, inclusive=self.inclusive)


def tax_on(base_minor: int, percentage: Decimal, *, inclusive: bool) -> int:
    """The tax in ``base_minor``: rounded once, half away from zero."""
    rate = Fraction(percentage) / 100
    return round_minor(base_minor * (rate / (1 + rate) if inclusive else rate))


def validate_tax_rate(
    *, jurisdiction: object, percentage: object, inclusive: object, display_name: object = "Tax"
) -> dict[str, object]:
    if (
        not isinstance(jurisdiction, str)
        or not (len(jurisdiction) == 2 or (len(jurisdiction) > 3 and jurisdiction[2] == "-"))
        or not jurisdiction[:2].isalpha()
        or not jurisdiction[:2].isupper()
    ):
        raise InvalidInput(
            "jurisdiction", "an ISO 3166 country code, optionally with a region ('DE', 'US-CA')", jurisdiction
        )
    pct = decimal_value(percentage, "percentage")
    if pct > 100:
        raise InvalidInput("percentage", "a percentage between 0 and 100", percentage)
    if not isinstance(inclusive, bool):
        raise InvalidInput("inclusive", "true or false", inclusive)
    if not isinstance(display_name, str) or not display_name:
        raise InvalidInput("display_name", "a non-empty name such as 'VAT'", display_name)
    return {
        "jurisdiction": jurisdiction,
        "percentage": pct,
        "inclusive": inclusive,
        "display_name": display_name,
    }
