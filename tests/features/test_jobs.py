"""The feature jobs on tiny lakes built by hand: each feature against a value worked out by hand or
by brute force, at every row and at instants between rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from billing_core.lake.schemas import TABLES as LAKE
from features.jobs import compute_table
from features.jobs.lake import prepare

D0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return D0 + timedelta(days=n)


def _default(field: pa.Field, row: dict[str, Any]) -> Any:
    t = field.type
    if pa.types.is_dictionary(t) or pa.types.is_string(t):
        return "x"
    if pa.types.is_boolean(t):
        return False
    if pa.types.is_timestamp(t):
        return row.get("event_timestamp", D0)
    if pa.types.is_date32(t):
        return row.get("day", D0.date())
    if pa.types.is_integer(t):
        return 0
    return None


def lake(**tables: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the named lake tables holding these rows (unnamed columns: defaults).

    Columns a lake table does not declare are added as strings (the lake's optional columns), and
    ``payment_methods`` is taken as given.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    for name, rows in tables.items():
        if name == "payment_methods":
            data = pa.Table.from_pylist(rows)
        else:
            declared = LAKE[name].schema
            fields = [
                pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                for f in declared
            ]
            extra = sorted({k for r in rows for k in r} - set(declared.names))
            schema = pa.schema(fields + [pa.field(k, pa.string()) for k in extra])
            filled = [
                {
                    f.name: r[f.name] if f.name in r else (None if f.nullable else _default(f, r))
                    for f in declared
                }
                | {k: r.get(k) for k in extra}
                for r in rows
            ]
            data = pa.Table.from_pylist(filled, schema=schema)
        con.register(f"_{name}_rows", data)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_rows").fetchall()
    return con


def table(con: duckdb.DuckDBPyConnection, name: str, as_of: datetime) -> pd.DataFrame:
    frame: pd.DataFrame = compute_table(con, name, as_of, prepare(con)).to_pandas()
    return frame


def as_of(frame: pd.DataFrame, when: datetime, **keys: Any) -> pd.Series:
    """The row in force at ``when`` for an entity (what a point-in-time join returns)."""
    rows = frame
    for k, v in keys.items():
        rows = rows[rows[k] == v]
    rows = rows[rows["event_timestamp"] <= pd.Timestamp(when)]
    assert len(rows), f"no row at {when}"
    return rows.iloc[-1]


def customer(cid: int, at: datetime, email: str = "a@shop.example", **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": cid,
        "email": email,
        "currency": "USD",
        "country": "US",
        "created_at": at,
        "event_timestamp": at,
        **extra,
    }


def invoice(
    iid: int,
    cid: int,
    change: str,
    status: str,
    at: datetime,
    seq: int,
    due: datetime | None,
    amount: int = 1000,
) -> dict[str, Any]:
    return {
        "invoice_id": iid, "customer_id": cid, "change": change, "status": status, "change_amount_minor": amount,
        "billing_reason": "subscription_cycle", "currency": "USD", "subtotal_minor": amount, "total_minor": amount,
        "amount_due_minor": amount, "created_at": at, "finalized_at": at, "due_at": due, "event_seq": seq,
        "event_timestamp": at,
    }  # fmt: skip


# ------------------------------------------------------------------------------ customer payment


def test_lateness_windows_overdue_and_balance() -> None:
    con = lake(
        customers=[customer(1, day(0))],
        invoices=[
            invoice(10, 1, "finalized", "open", day(0), 1, due=day(1)),
            invoice(10, 1, "paid", "paid", day(4), 5, due=day(1)),  # 3 days late
            invoice(11, 1, "finalized", "open", day(10), 6, due=day(40), amount=3000),
            invoice(11, 1, "paid", "paid", day(12), 7, due=day(40), amount=3000),  # on time
        ],
        payment_attempts=[
            {
                "attempt_id": 1,
                "invoice_id": 10,
                "customer_id": 1,
                "status": "failed",
                "decline_code": "insufficient_funds",
                "decline_type": "soft",
                "attempt_number": 1,
                "amount_minor": 1000,
                "event_seq": 2,
                "event_timestamp": day(0),
            },
            {
                "attempt_id": 2,
                "invoice_id": 10,
                "customer_id": 1,
                "status": "succeeded",
                "attempt_number": 2,
                "amount_minor": 1000,
                "event_seq": 4,
                "event_timestamp": day(4),
            },
        ],
    )
    t = table(con, "customer_payment", day(400))
    at = lambda d: as_of(t, day(d), customer_id=1)  # noqa: E731
    assert at(0.5)[
        ["open_invoices", "open_balance_minor", "overdue_invoices", "failed_attempts_30d"]
    ].tolist() == [1, 1000, 0, 1]
    assert at(1)[["overdue_invoices", "overdue_balance_minor"]].tolist() == [1, 1000]  # due passed unpaid
    assert at(1)["last_decline_code"] == "insufficient_funds"
    row = at(4)
    assert row[["open_invoices", "overdue_invoices", "invoices_paid_30d", "payments_total"]].tolist() == [
        0,
        0,
        1,
        1,
    ]
    assert row["late_ratio_30d"] == 1.0
    assert row["max_days_late_30d"] == pytest.approx(3.0)
    row = at(12)
    assert row["invoices_paid_30d"] == 2
    assert row["late_ratio_30d"] == 0.5
    assert row["mean_days_late_30d"] == pytest.approx(1.5)
    assert row["median_invoice_minor"] == 2000.0
    assert row["invoices_total"] == 2
    assert at(30)["failed_attempts_30d"] == 0  # the decline of day 0 left the window at day 30
    row = at(34)  # the late payment (day 4) left the 30-day window at day 34
    assert row[["invoices_paid_30d", "invoices_paid_90d"]].tolist() == [1, 2]
    assert row["late_ratio_30d"] == 0.0
    assert row["late_ratio_90d"] == 0.5
    assert at(370)["late_ratio_365d"] == 0.0  # the late one left the year on day 369
    assert pd.isna(at(378)["late_ratio_365d"])  # both left it
    assert at(3.99)["invoices_paid_30d"] == 0  # never a value from after the instant


def test_disputes_chargebacks_and_mrr() -> None:
    con = lake(
        customers=[customer(1, day(0))],
        subscriptions=[
            {"subscription_id": 5, "customer_id": 1, "change": "created", "status": "active", "months_per_period": 1,
             "items": [{"price_id": 1, "quantity": 3}], "started_at": day(0), "created_at": day(0), "event_seq": 1,
             "event_timestamp": day(0)},
            {"subscription_id": 5, "customer_id": 1, "change": "status_changed", "status": "canceled", "months_per_period": 1,
             "items": [{"price_id": 1, "quantity": 3}], "started_at": day(0), "created_at": day(0), "event_seq": 9,
             "event_timestamp": day(20)},
        ],
        invoices=[invoice(10, 1, "finalized", "paid", day(0), 2, due=day(0), amount=3000)
                  | {"subscription_id": 5, "discount_minor": 600, "subtotal_minor": 3000}],
        disputes=[
            {"dispute_id": 3, "customer_id": 1, "change": "opened", "status": "open", "amount_minor": 10, "message": "m",
             "opened_at": day(5), "event_seq": 4, "event_timestamp": day(5)},
            {"dispute_id": 3, "customer_id": 1, "change": "resolved", "status": "resolved", "amount_minor": 10, "message": "m",
             "opened_at": day(5), "event_seq": 6, "event_timestamp": day(8)},
        ],
        chargebacks=[
            {"chargeback_id": 4, "payment_id": 1, "invoice_id": 10, "customer_id": 1, "change": "opened", "status": "open",
             "network_reference": "n", "amount_minor": 5, "opened_at": day(6), "event_seq": 5, "event_timestamp": day(6)},
            {"chargeback_id": 4, "payment_id": 1, "invoice_id": 10, "customer_id": 1, "change": "closed", "status": "lost",
             "network_reference": "n", "amount_minor": 5, "opened_at": day(6), "event_seq": 7, "event_timestamp": day(9)},
        ],
    )  # fmt: skip
    t = table(con, "customer_payment", day(30))
    at = lambda d: as_of(t, day(d), customer_id=1)  # noqa: E731
    assert at(1)[["mrr_minor", "active_subscriptions"]].tolist() == [2400.0, 1]
    assert at(5)[["disputes_total", "open_disputes"]].tolist() == [1, 1]
    assert at(8)[["disputes_total", "open_disputes"]].tolist() == [1, 0]
    assert at(7)[["chargebacks_total", "chargebacks_lost"]].tolist() == [1, 0]
    assert at(9)["chargebacks_lost"] == 1
    assert at(21)[["mrr_minor", "active_subscriptions"]].tolist() == [0.0, 0]
    churn = table(con, "churn_signals", day(30))
    assert as_of(churn, day(1), customer_id=1)["seats"] == 3
    assert as_of(churn, day(5), customer_id=1)["disputes_90d"] == 1
    assert as_of(churn, day(21), customer_id=1)["seats"] == 0


# ----------------------------------------------------------------------------------- usage trend


def _usage_rows(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for _n in range(60):
        use_day = D0.date() + timedelta(days=int(rng.integers(0, 45)))
        lag_hours = float(rng.choice([1, 5, 20, 30, 80]))  # some arrive days late
        recorded = datetime.combine(use_day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=lag_hours)
        rows.append(
            {"day": use_day, "customer_id": 1, "metric_code": "api_calls", "quantity": int(rng.integers(0, 500)),
             "events": 1, "received_on": recorded.date(), "event_timestamp": recorded}
        )  # fmt: skip
    return rows


def test_usage_trend_equals_brute_force_at_every_midnight() -> None:
    rows = _usage_rows(np.random.default_rng(11))
    con = lake(customers=[customer(1, day(0))], usage_by_day=rows)
    end = day(100)
    t = table(con, "usage_trend", end)
    usage = pd.DataFrame(rows)
    for m in range(1, 95):
        midnight = day(m)
        known = usage[usage["event_timestamp"] <= midnight]
        totals = known.groupby("day")["quantity"].sum()
        y = np.array([totals.get(midnight.date() - timedelta(days=k), 0) for k in range(1, 61)], dtype=float)
        x = -np.arange(1, 61, dtype=float)
        if (known["day"] < midnight.date()).sum() == 0 and m < 50:
            continue
        row = as_of(t, midnight, customer_id=1)
        assert row["usage_1d"] == y[0]
        assert row["usage_7d"] == y[:7].sum()
        assert row["usage_30d"] == y[:30].sum()
        assert row["usage_prev_30d"] == y[30:60].sum()
        assert row["active_days_30d"] == (y[:30] > 0).sum()
        assert row["usage_slope_7d"] == pytest.approx(np.polyfit(x[:7], y[:7], 1)[0], abs=1e-9)
        assert row["usage_slope_30d"] == pytest.approx(np.polyfit(x[:30], y[:30], 1)[0], abs=1e-9)
        history = y[1:29]
        if history.std() > 0:
            assert row["usage_zscore_1d"] == pytest.approx((y[0] - history.mean()) / history.std())
        else:
            assert pd.isna(row["usage_zscore_1d"])


def test_usage_rows_are_stamped_at_midnights() -> None:
    con = lake(customers=[customer(1, day(0))], usage_by_day=_usage_rows(np.random.default_rng(2)))
    t = table(con, "usage_trend", day(50))
    stamps = pd.to_datetime(t["event_timestamp"])
    assert ((stamps - stamps.dt.normalize()) == pd.Timedelta(0)).all()
    assert stamps.max() <= pd.Timestamp(day(50))


# -------------------------------------------------------------------------------- fraud velocity


def test_velocity_equals_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    customers, attempts = [], []
    for cid in range(1, 41):
        signup = day(float(rng.uniform(0, 2)))
        domain = f"d{cid % 3}.example"
        customers.append(customer(cid, signup, email=f"c{cid}@{domain}", signup_device_id=f"dev{cid % 4}",
                                  signup_ip=f"10.0.0.{cid % 5}", signup_ip_country="US" if cid % 2 else "FR"))  # fmt: skip
        for n in range(int(rng.integers(0, 4))):
            at = signup + timedelta(minutes=float(rng.uniform(0, 600)))
            attempts.append(
                {"attempt_id": len(attempts) + 1, "invoice_id": 1, "customer_id": cid, "payment_method_id": 100 + cid % 6,
                 "status": "failed" if n % 2 else "succeeded", "attempt_number": n + 1, "amount_minor": 100 * (n + 1),
                 "event_seq": len(attempts) + 1, "event_timestamp": at}
            )  # fmt: skip
    methods = [
        {"payment_method_id": 100 + k, "customer_id": k, "brand": "visa", "bin": f"4{k % 2}0000", "exp_month": 12,
         "exp_year": 2027, "country": "US", "event_timestamp": D0 - timedelta(days=1)}
        for k in range(6)
    ]  # fmt: skip
    con = lake(customers=customers, payment_attempts=attempts, payment_methods=methods)
    frame_c = pd.DataFrame(customers)
    frame_a = pd.DataFrame(attempts).merge(frame_c[["customer_id", "email", "signup_device_id", "signup_ip"]])
    frame_a["email_domain"] = frame_a["email"].str.split("@").str[1]
    frame_c["email_domain"] = frame_c["email"].str.split("@").str[1]
    frame_a = frame_a.merge(pd.DataFrame(methods)[["payment_method_id", "bin"]])
    end = day(4)
    probes = [day(float(x)) for x in np.linspace(0, 3.5, 57)]

    def count(frame: pd.DataFrame, column: str, key: str, stamp: str, hours: int, when: datetime) -> int:
        rows = frame[
            (frame[column] == key) & (frame[stamp] <= when) & (frame[stamp] > when - timedelta(hours=hours))
        ]
        return len(rows)

    cases = [("email_domain_velocity", "email_domain", "email_domain", "domain"),
             ("device_velocity", "device_id", "signup_device_id", "device"),
             ("ip_velocity", "signup_ip", "signup_ip", "ip")]  # fmt: skip
    for name, key, source, prefix in cases:
        t = table(con, name, end)
        assert len(t)
        for value in frame_c[source if source != "email_domain" else "email_domain"].unique():
            for when in probes:
                rows = t[(t[key] == value) & (t["event_timestamp"] <= pd.Timestamp(when))]
                if not len(rows):
                    assert count(frame_c, source, value, "created_at", 24, when) == 0
                    continue
                row = rows.iloc[-1]
                assert row[f"{prefix}_signups_1h"] == count(frame_c, source, value, "created_at", 1, when), (
                    name,
                    value,
                    when,
                )
                assert row[f"{prefix}_signups_24h"] == count(frame_c, source, value, "created_at", 24, when)
                assert row[f"{prefix}_attempts_1h"] == count(
                    frame_a, source, value, "event_timestamp", 1, when
                )
                assert row[f"{prefix}_attempts_24h"] == count(
                    frame_a, source, value, "event_timestamp", 24, when
                )
                failed = frame_a[frame_a["status"] == "failed"]
                assert row[f"{prefix}_failed_attempts_24h"] == count(
                    failed, source, value, "event_timestamp", 24, when
                )
    bins = table(con, "bin_realtime", end)
    for value in ("400000", "410000"):
        for when in probes:
            rows = bins[(bins["card_bin"] == value) & (bins["event_timestamp"] <= pd.Timestamp(when))]
            expected = count(frame_a, "bin", value, "event_timestamp", 1, when)
            assert (rows.iloc[-1]["bin_attempts_last_hour"] if len(rows) else 0) == expected
    risk = table(con, "payment_risk", end)
    assert risk["signup_channel"].isna().all()
    mismatch = risk.groupby("customer_id")["country_mismatch"].last()
    assert mismatch.loc[2]
    assert not mismatch.loc[1]


def test_payment_risk_amounts_and_new_methods() -> None:
    attempts = [
        {"attempt_id": n, "invoice_id": 1, "customer_id": 1, "payment_method_id": pm, "status": "succeeded",
         "attempt_number": n, "amount_minor": amount, "event_seq": n, "event_timestamp": day(n)}
        for n, (pm, amount) in enumerate([(7, 100), (7, 200), (7, 300), (8, 1000)], start=1)
    ]  # fmt: skip
    con = lake(customers=[customer(1, day(0))], payment_attempts=attempts)
    t = table(con, "payment_risk", day(10))
    at = lambda d: as_of(t, day(d), customer_id=1)  # noqa: E731
    assert at(1)["new_payment_method"]
    assert not at(2)["new_payment_method"]
    assert pd.isna(at(2)["last_amount_zscore"])  # fewer than two earlier attempts
    assert at(3)["last_amount_zscore"] == pytest.approx((300 - 150) / 50)
    assert at(4)["new_payment_method"]
    assert at(4)["payment_methods_used"] == 2
    assert at(4)["last_amount_zscore"] == pytest.approx((1000 - 200) / np.std([100, 200, 300]))
    assert at(4)["attempt_amount_mean"] == pytest.approx(400)
    assert at(4)[["attempts_1h", "attempts_24h"]].tolist() == [1, 1]
    assert at(4.5)[["attempts_1h", "attempts_24h"]].tolist() == [0, 1]
    assert at(5)["attempts_24h"] == 0
    assert at(0)["customer_email_domain"] == "shop.example"


# ------------------------------------------------------------------ invoice, dunning and disputes


def test_dunning_context_counts_actions_and_declines() -> None:
    def attempt(n: int, at: datetime, status: str, code: str | None) -> dict[str, Any]:
        return {"attempt_id": n, "invoice_id": 10, "customer_id": 1, "status": status, "decline_code": code,
                "decline_type": "soft" if code else None, "attempt_number": n, "amount_minor": 1000,
                "event_seq": n * 10, "event_timestamp": at}  # fmt: skip

    def action(n: int, at: datetime, kind: str, channel: str | None) -> dict[str, Any]:
        return {"action_id": n, "process_id": 1, "step": n, "invoice_id": 10, "customer_id": 1, "action": kind,
                "channel": channel, "scheduled_at": at, "executed_at": at, "outcome": "queued", "amount_minor": 1000,
                "policy": "static-v1", "day": n, "event_timestamp": at}  # fmt: skip

    con = lake(
        customers=[customer(1, day(0))],
        invoices=[invoice(10, 1, "finalized", "open", day(0), 1, due=day(0))],
        payment_attempts=[attempt(1, day(0), "failed", "insufficient_funds"), attempt(2, day(3), "failed", "try_again_later")],
        dunning_actions=[action(1, day(1), "remind", "email"), action(2, day(2), "remind", "sms"),
                         action(3, day(3), "retry", None), action(4, day(5), "final_notice", "email")],
    )  # fmt: skip
    t = table(con, "dunning_context", day(10))
    at = lambda d: as_of(t, day(d), invoice_id=10)  # noqa: E731
    assert at(0)[["attempts", "failed_attempts", "reminders_sent"]].tolist() == [1, 1, 0]
    assert at(2)[
        ["reminders_sent", "reminders_email", "reminders_sms", "last_reminder_channel"]
    ].tolist() == [2, 1, 1, "sms"]
    assert at(2)["hours_since_failure"] == pytest.approx(48)
    row = at(3)
    assert row[["attempts", "retries", "decline_code", "failure_day_of_month"]].tolist() == [
        2,
        1,
        "try_again_later",
        4,
    ]
    assert row["first_failure_at"] == pd.Timestamp(day(0))
    assert row["last_failure_at"] == pd.Timestamp(day(3))
    assert at(5)["final_notice_sent"]
    assert at(5)["reminders_email"] == 2
    assert at(5)["dunning_day"] == 4
    assert not at(4.9)["final_notice_sent"]
    context = table(con, "invoice_context", day(10))
    assert context["is_first_invoice"].tolist() == [True]
    assert context["payment_method"].tolist() == ["none"]  # no attempt with a card


def test_invoice_context_against_earlier_invoices_and_cards() -> None:
    con = lake(
        customers=[customer(1, day(0))],
        invoices=[invoice(10 + n, 1, "finalized", "open", day(n * 10), n + 1, due=day(n * 10 + 7), amount=a)
                  for n, a in enumerate([100, 300, 900])],
        payment_attempts=[{"attempt_id": 1, "invoice_id": 10, "customer_id": 1, "payment_method_id": 5, "status": "failed",
                           "attempt_number": 1, "amount_minor": 100, "event_seq": 9, "event_timestamp": day(0)}],
        payment_methods=[{"payment_method_id": 5, "customer_id": 1, "brand": "visa", "bin": "400000", "exp_month": 2,
                          "exp_year": 2026, "country": "US", "event_timestamp": day(0)}],
    )  # fmt: skip
    t = table(con, "invoice_context", day(30)).set_index("invoice_id")
    assert pd.isna(t.loc[10, "amount_over_median"])
    assert t.loc[11, "amount_over_median"] == 3.0
    assert t.loc[12, "amount_over_median"] == pytest.approx(900 / 200)
    assert t["days_to_due"].tolist() == [7.0, 7.0, 7.0]
    assert t.loc[10, "payment_method"] == "visa"
    assert t.loc[10, "card_expires_at"] == pd.Timestamp("2026-03-01", tz="UTC")
    assert t.loc[12, "card_expires_in_days"] == pytest.approx(39.0)  # 21 January to 1 March


def test_dispute_context() -> None:
    con = lake(
        customers=[customer(1, day(0))],
        subscriptions=[{"subscription_id": 5, "customer_id": 1, "change": "cancel_scheduled", "status": "active",
                        "cancel_at_period_end": True, "months_per_period": 1, "started_at": day(0), "created_at": day(0),
                        "event_seq": 1, "event_timestamp": day(0)}],
        invoices=[invoice(10, 1, "finalized", "open", day(1), 2, due=day(1), amount=2000) | {"subscription_id": 5}],
        payments=[{"payment_id": p, "invoice_id": 10, "customer_id": 1, "method": "card", "amount_minor": 2000,
                   "created_at": day(p), "event_seq": 2 + p, "event_timestamp": day(p)} for p in (2, 3)],
        refunds=[{"refund_id": 1, "payment_id": 3, "invoice_id": 10, "customer_id": 1, "amount_minor": 500,
                  "reason": "duplicate", "created_at": day(4), "event_seq": 8, "event_timestamp": day(4)}],
        disputes=[{"dispute_id": d, "customer_id": 1, "invoice_id": 10, "change": "opened", "status": "open",
                   "amount_minor": 1000, "message": "charged twice!", "opened_at": day(d), "event_seq": 10 + d,
                   "event_timestamp": day(d)} for d in (3, 6)],
    )  # fmt: skip
    t = table(con, "dispute_context", day(10)).set_index("dispute_id")
    assert t.loc[3, "payments_on_invoice"] == 2
    assert t.loc[3, "refunded_on_invoice_minor"] == 0
    assert t.loc[6, "refunded_on_invoice_minor"] == 500
    assert t.loc[3, "amount_over_invoice"] == 0.5
    assert t.loc[3, "days_since_invoice"] == 2.0
    assert t.loc[3, "days_since_payment"] == 0.0
    assert t.loc[3, "subscription_status"] == "active"
    assert t.loc[3, "subscription_cancel_scheduled"]
    assert t["customer_disputes_before"].tolist() == [0, 1]
    assert t.loc[3, "message_length"] == len("charged twice!")


def test_tables_stop_at_as_of() -> None:
    con = lake(
        customers=[customer(1, day(0))], invoices=[invoice(10, 1, "finalized", "open", day(0), 1, due=day(5))]
    )
    early = table(con, "customer_payment", day(2))
    assert early["overdue_invoices"].max() == 0  # the due date is after as_of: not known yet
    assert table(con, "customer_payment", day(6))["overdue_invoices"].max() == 1


def test_missing_optional_lake_parts_leave_tables_empty_not_broken() -> None:
    """A lake exported before signup context and cards were exported still builds every table."""
    con = lake(customers=[customer(1, day(0))])
    con.execute(
        "CREATE OR REPLACE VIEW customers AS"
        " SELECT * EXCLUDE (signup_channel, signup_ip, signup_device_id) FROM _customers_rows"
    )
    shape = prepare(con)
    assert not shape.devices
    assert not shape.payment_methods
    for name in ("device_velocity", "ip_velocity", "bin_velocity", "bin_realtime"):
        assert compute_table(con, name, day(1), shape).num_rows == 0
    assert date(2026, 1, 1) == D0.date()
