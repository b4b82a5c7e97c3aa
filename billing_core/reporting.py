"""Read-side summaries of the book, in each currency and in one reporting currency.

Amounts are summed per currency in minor units (exact), then converted once per currency with
the rate effective at the report's instant (:class:`~billing_core.fx.FxTable`), so a report never
adds yen to dinars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from billing_core.db import schema as t
from billing_core.db.bulk import Bulk
from billing_core.fx import FxRate, FxTable
from billing_core.money import Currency, Money, currency


def load_fx_table(conn: Connection) -> FxTable:
    rows = conn.execute(
        select(t.fx_rates.c.base, t.fx_rates.c.quote, t.fx_rates.c.rate, t.fx_rates.c.effective_at)
    )
    return FxTable(FxRate(base, quote, Decimal(rate), at) for base, quote, rate, at in rows)


@dataclass(frozen=True, slots=True)
class CurrencySummary:
    currency: str
    invoices: int
    invoiced_minor: int
    paid_minor: int
    open_minor: int
    uncollectible_minor: int
    reporting_currency: str
    invoiced_reporting_minor: int
    paid_reporting_minor: int
    open_reporting_minor: int


def invoice_summary(conn: Connection, *, reporting_currency: str, at: datetime) -> list[CurrencySummary]:
    """Finalized invoices per currency: invoiced, paid, still open and written off."""
    table = load_fx_table(conn)
    target = currency(reporting_currency, field="reporting_currency").code
    rows = Bulk(conn).query(
        "SELECT currency, COUNT(*), SUM(total_minor), SUM(amount_paid_minor),"
        " SUM(CASE WHEN status = 'open' THEN amount_remaining_minor ELSE 0 END),"
        " SUM(CASE WHEN status = 'uncollectible' THEN amount_remaining_minor ELSE 0 END)"
        " FROM invoices WHERE status IN ('open', 'paid', 'uncollectible') GROUP BY currency ORDER BY currency"
    )
    out = []
    for code, count, invoiced, paid, open_, written_off in rows:
        cur = currency(code)

        def conv(minor: int | None, cur: Currency = cur) -> int:
            return table.convert(Money(int(minor or 0), cur), target, at).amount_minor

        out.append(
            CurrencySummary(
                code,
                int(count),
                int(invoiced or 0),
                int(paid or 0),
                int(open_ or 0),
                int(written_off or 0),
                target,
                conv(invoiced),
                conv(paid),
                conv(open_),
            )
        )
    return out
