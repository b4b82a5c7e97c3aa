"""Hypothesis strategies shared by the whole suite (one place, as the domain's values are)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from billing_core.catalog import Tier
from billing_core.invoices import LineDraft, LineKind
from billing_core.money import Currency, currency

#: currencies with 0, 2 and 3 decimals
CURRENCY_CODES = ("JPY", "USD", "EUR", "KWD", "BHD", "CLP")

currencies: st.SearchStrategy[Currency] = st.sampled_from(CURRENCY_CODES).map(currency)
minor_amounts = st.integers(min_value=-(10**12), max_value=10**12)
non_negative_minor = st.integers(min_value=0, max_value=10**12)
weights = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=20)
quantities = st.integers(min_value=0, max_value=10**7)
percentages = st.decimals(min_value=Decimal("0"), max_value=Decimal("50"), places=3, allow_nan=False)
unit_prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=4, allow_nan=False)


@st.composite
def tiers(draw: st.DrawFn, *, max_tiers: int = 5) -> tuple[Tier, ...]:
    """Valid tiers: strictly increasing bounds, an open last tier."""
    count = draw(st.integers(min_value=1, max_value=max_tiers))
    bounds = sorted(
        draw(st.sets(st.integers(min_value=1, max_value=10**6), min_size=count - 1, max_size=count - 1))
    )
    out = []
    for bound in [*bounds, None]:
        out.append(
            Tier(
                up_to=bound,
                unit_amount_minor=draw(unit_prices),
                flat_amount_minor=draw(st.integers(min_value=0, max_value=10_000)),
            )
        )
    return tuple(out)


@st.composite
def invoice_lines(draw: st.DrawFn, cur: Currency, *, min_size: int = 1) -> list[LineDraft]:
    """Lines of one invoice, mostly charges, some credits (prorations)."""
    amounts = draw(
        st.lists(
            st.one_of(
                st.integers(min_value=0, max_value=10**9), st.integers(min_value=-(10**8), max_value=0)
            ),
            min_size=min_size,
            max_size=8,
        )
    )
    return [
        LineDraft(
            kind=LineKind.SUBSCRIPTION if a >= 0 else LineKind.PRORATION,
            description=f"line {i}",
            amount_minor=a,
            currency=cur,
            taxable=draw(st.booleans()),
        )
        for i, a in enumerate(amounts)
    ]


__all__ = ["currencies", "invoice_lines", "minor_amounts", "tiers", "weights"]
