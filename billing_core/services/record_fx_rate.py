"""Use case: record an exchange rate effective from an instant (a later rate replaces it)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import insert, select

from billing_core.clock import utc
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.errors import IdempotencyConflict, InvalidInput
from billing_core.fx import FxRate
from billing_core.money import currency


def record_fx_rate(
    ctx: BillingContext, *, base: str, quote: str, rate: object, effective_at: datetime
) -> FxRate:
    """One ``base`` unit buys ``rate`` ``quote`` units from ``effective_at`` on.

    Recording the same rate for the same instant again changes nothing; a different rate for an
    instant already on file is refused (rates are history: record a new effective date instead).
    """
    base_code = currency(base, field="base").code
    quote_code = currency(quote, field="quote").code
    if base_code == quote_code:
        raise InvalidInput("quote", f"a currency other than {base_code}", quote)
    try:
        value = Decimal(str(rate)) if not isinstance(rate, bool) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        raise InvalidInput("rate", "a positive decimal number", rate)
    at = utc(effective_at, "effective_at")
    with ctx.transaction() as tx:
        existing = tx.conn.execute(
            select(t.fx_rates.c.rate).where(
                t.fx_rates.c.base == base_code,
                t.fx_rates.c.quote == quote_code,
                t.fx_rates.c.effective_at == at,
            )
        ).scalar_one_or_none()
        if existing is not None:
            if Decimal(existing) != value:
                raise IdempotencyConflict(
                    "rate", f"{existing} (already on file for {at.isoformat()})", str(value)
                )
            return FxRate(base_code, quote_code, Decimal(existing), at)
        tx.conn.execute(
            insert(t.fx_rates).values(
                base=base_code, quote=quote_code, effective_at=at, rate=value, created_at=tx.now
            )
        )
        tx.emit(
            "fx_rate.recorded",
            "fx_rate",
            f"{base_code}/{quote_code}",
            base=base_code,
            quote=quote_code,
            rate=str(value),
            effective_at=at.isoformat(),
        )
        return FxRate(base_code, quote_code, value, at)
