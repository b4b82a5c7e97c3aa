"""The lake against the database it was exported from: counts, money sums and final states."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from billing_core.db.types import parse_instant_column
from billing_core.lake import TABLES, connect, load_position, read_table
from tests.lake.conftest import Book


def lake_sql(lake: Path, sql: str) -> list[tuple[Any, ...]]:
    con = connect(lake)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def sums(rows: list[tuple[Any, ...]]) -> dict[Any, Any]:
    return {row[0]: tuple(int(v) for v in row[1:]) for row in rows}


def latest(lake: Path, table: str, key: str, columns: str) -> dict[int, tuple[Any, ...]]:
    """The last row of each entity (by event time, then outbox sequence)."""
    rows = lake_sql(
        lake,
        f"SELECT {key}, {columns} FROM {table}"
        f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC, event_seq DESC NULLS LAST) = 1",
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def check_lake(book: Book) -> None:
    """Everything the database holds is in the lake once, with the same money and final states."""
    lake, q = book.lake, book.query
    for name, table in TABLES.items():
        assert read_table(lake, name).schema == table.schema, name

    customers = read_table(lake, "customers").column("customer_id").to_pylist()
    assert sorted(customers) == [r[0] for r in q("SELECT id FROM customers ORDER BY id")]
    assert sorted(lake_sql(lake, "SELECT customer_id, signup_channel, signup_ip FROM customers")) == [
        tuple(r) for r in q("SELECT id, signup_channel, signup_ip FROM customers ORDER BY id")
    ]
    cards = lake_sql(
        lake, "SELECT payment_method_id, customer_id, bin, exp_year FROM payment_methods ORDER BY 1"
    )
    assert cards == [
        tuple(r) for r in q("SELECT id, customer_id, bin, exp_year FROM payment_methods ORDER BY id")
    ]

    # invoices: a finalized row for each, and the changes of state
    invoices = lake_sql(lake, "SELECT invoice_id, change, status, total_minor, currency FROM invoices")
    finalized = [r for r in invoices if r[1] == "finalized"]
    assert sorted(r[0] for r in finalized) == [r[0] for r in q("SELECT id FROM invoices ORDER BY id")]
    totals: Counter[str] = Counter()
    for _, _, _, total, code in finalized:
        totals[code] += total
    assert totals == {
        code: int(total)
        for code, total in q("SELECT currency, SUM(total_minor) FROM invoices GROUP BY currency")
    }
    assert len({(r[0], r[1]) for r in invoices}) == len(invoices), "an invoice change exported twice"
    for change, status in (("voided", "void"), ("marked_uncollectible", "uncollectible"), ("paid", "paid")):
        assert sorted(r[0] for r in invoices if r[1] == change) == [
            r[0]
            for r in q(
                "SELECT id FROM invoices WHERE "
                + (
                    "marked_uncollectible_at IS NOT NULL"
                    if status == "uncollectible"
                    else f"status = '{status}'"
                )
                + " ORDER BY id"
            )
        ], change
    statuses = latest(lake, "invoices", "invoice_id", "status")
    assert {k: v[0] for k, v in statuses.items()} == dict(q("SELECT id, status FROM invoices"))

    lines = sums(
        lake_sql(
            lake, "SELECT currency, COUNT(*), SUM(amount_minor), SUM(tax_minor) FROM invoice_lines GROUP BY 1"
        )
    )
    assert lines == sums(
        q(
            "SELECT i.currency, COUNT(*), SUM(l.amount_minor), SUM(l.tax_minor) FROM invoice_lines l"
            " JOIN invoices i ON i.id = l.invoice_id GROUP BY i.currency"
        )
    )

    money = "SELECT currency, COUNT(*), SUM(amount_minor) FROM {} GROUP BY currency"
    for table in ("payments", "refunds", "credit_notes"):
        assert sums(lake_sql(lake, money.format(table))) == sums(q(money.format(table))), table
        key = {"payments": "payment_id", "refunds": "refund_id", "credit_notes": "credit_note_id"}[table]
        assert lake_sql(lake, f"SELECT COUNT(DISTINCT {key}) = COUNT(*) FROM {table}") == [(True,)]

    attempts = Counter(lake_sql(lake, "SELECT status, decline_code, decline_type FROM payment_attempts"))
    assert attempts == Counter(
        q(
            "SELECT status, decline_code, decline_type FROM payment_attempts WHERE status IN ('succeeded', 'failed')"
        )
    )
    assert (
        sum(attempts.values())
        == lake_sql(lake, "SELECT COUNT(DISTINCT attempt_id) FROM payment_attempts")[0][0]
    )

    chargebacks = latest(lake, "chargebacks", "chargeback_id", "status, amount_minor, fee_minor")
    assert chargebacks == {
        r[0]: tuple(r[1:]) for r in q("SELECT id, status, amount_minor, fee_minor FROM chargebacks")
    }
    assert lake_sql(lake, "SELECT COUNT(*) FROM chargebacks") == [
        (q("SELECT COUNT(*) + COUNT(closed_at) FROM chargebacks")[0][0],)
    ]

    disputes = latest(lake, "disputes", "dispute_id", "status, category, outcome, message, amount_minor")
    assert disputes == {
        r[0]: tuple(r[1:])
        for r in q("SELECT id, status, category, outcome, message, amount_minor FROM disputes")
    }

    dunning = lake_sql(
        lake, "SELECT action_id, amount_minor, event_timestamp FROM dunning_actions ORDER BY 1"
    )
    assert [(a, m) for a, m, _ in dunning] == [
        (r[0], r[1]) for r in q("SELECT id, amount_minor FROM dunning_actions ORDER BY id")
    ]
    assert [t for *_, t in dunning] == [
        parse_instant_column(r[0]) for r in q("SELECT executed_at FROM dunning_actions ORDER BY id")
    ]

    usage = lake_sql(
        lake,
        "SELECT customer_id, metric_code, day, SUM(quantity), SUM(events) FROM usage_by_day GROUP BY ALL",
    )
    expected: dict[tuple[Any, ...], tuple[int, int]] = {}
    for customer, metric, occurred, value in q(
        "SELECT customer_id, metric_code, occurred_at, value FROM usage_events"
    ):
        k = (customer, metric, parse_instant_column(occurred).date())  # type: ignore[arg-type]
        total, count = expected.get(k, (0, 0))
        expected[k] = (total + int(value), count + 1)  # type: ignore[call-overload]
    assert {(c, m, d): (int(s), int(n)) for c, m, d, s, n in usage} == expected

    # subscriptions: one first row each; the last row agrees with the database
    created = Counter(lake_sql(lake, "SELECT subscription_id FROM subscriptions WHERE change = 'created'"))
    assert sorted(k[0] for k in created) == [r[0] for r in q("SELECT id FROM subscriptions ORDER BY id")]
    assert set(created.values()) == {1}
    last = latest(lake, "subscriptions", "subscription_id", "status, cancel_at_period_end, items")
    items: dict[int, list[dict[str, int]]] = {}
    for sub_id, price_id, quantity in q(
        "SELECT subscription_id, price_id, quantity FROM subscription_items ORDER BY id"
    ):
        items.setdefault(int(sub_id), []).append({"price_id": int(price_id), "quantity": int(quantity)})  # type: ignore[call-overload]
    for sub_id, status, cancel in q("SELECT id, status, cancel_at_period_end FROM subscriptions"):
        assert last[sub_id][:2] == (status, bool(cancel)), sub_id
        if last[sub_id][2] is not None:
            assert sorted(last[sub_id][2], key=str) == sorted(items[sub_id], key=str), sub_id  # type: ignore[index]

    # nothing from the future: no row is stamped after the last event the lake has read
    head_at = load_position_head(book)
    for name in TABLES:
        newest = lake_sql(lake, f"SELECT MAX(event_timestamp) FROM {name}")[0][0]
        assert newest is None or newest <= head_at, name


def load_position_head(book: Book) -> Any:
    position = load_position(book.engine)
    (head_at,) = book.query("SELECT outbox_head_at FROM lake_exports WHERE id = ?", (position.export_id,))[0]
    return parse_instant_column(head_at)  # type: ignore[arg-type]
