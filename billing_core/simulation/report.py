"""Plots of a simulated billing database: what the world produced, as the billing core recorded it.

:func:`write_report` reads a database a run filled (and, if given, its truth store) and writes
PNG files with matplotlib (Agg backend, no display needed):

==========================  ==========================================================================
file                        what it shows
==========================  ==========================================================================
``payment_delay.png``       days from an invoice's finalization to its payment, for card payers
                            (most the same day; retries and reminders make the tail) and, for
                            invoices on net terms, days paid before (negative) or after the due date
``decline_codes.png``       shares of decline codes, first attempts apart from retries
``churn_curve.png``         subscriptions ended per month as a share of those live at the month's
                            start: voluntary (canceled by the customer) and involuntary (canceled
                            at a write-off)
``fraud_timeline.png``      per week: chargebacks opened, disputes opened, small one-off charges
                            declined (card testing), and, with the truth store, successful payments
                            that were fraudulent, by kind
==========================  ==========================================================================
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Engine

from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.simulation.network import DECLINE_CODES
from billing_core.simulation.truth import TruthStore

DAY = timedelta(days=1)
_VOLUNTARY = {"canceled", "canceled_at_period_end"}


def write_report(engine: Engine, out_dir: str | Path, *, truth: TruthStore | None = None) -> list[Path]:
    """Write the report's PNG files into ``out_dir`` (created if needed); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data = _read(engine)
    written = []
    for name, draw in (
        ("payment_delay.png", _payment_delay),
        ("decline_codes.png", _decline_codes),
        ("churn_curve.png", _churn_curve),
        ("fraud_timeline.png", _fraud_timeline),
    ):
        figure = plt.figure(figsize=(9, 4.8), dpi=100)
        try:
            draw(figure, data, truth)
            figure.tight_layout()
            path = folder / name
            figure.savefig(path)
            written.append(path)
        finally:
            plt.close(figure)
    return written


def _read(engine: Engine) -> dict[str, Any]:
    with engine.connect().execution_options(read_only=True) as conn, conn.begin():
        bulk = Bulk(conn)
        return {
            "invoices": bulk.query(
                "SELECT finalized_at, paid_at, due_at, billing_reason, amount_due_minor FROM invoices"
                " WHERE amount_due_minor > 0"
            ),
            "attempts": bulk.query(
                "SELECT attempt_number, decline_code FROM payment_attempts WHERE status = 'failed'"
            ),
            "subscriptions": bulk.query("SELECT id, created_at FROM subscriptions"),
            "changes": bulk.query(
                "SELECT occurred_at, payload FROM outbox WHERE event_type = ?",
                ("subscription.status_changed",),
            ),
            "chargebacks": bulk.query("SELECT opened_at FROM chargebacks"),
            "disputes": bulk.query("SELECT opened_at FROM disputes"),
            "tested": bulk.query(
                "SELECT a.processed_at FROM payment_attempts a JOIN invoices i ON i.id = a.invoice_id"
                " WHERE i.billing_reason = 'manual' AND a.status = 'failed' AND a.attempt_number = 1"
            ),
            "start": bulk.query("SELECT MIN(created_at), MAX(created_at) FROM customers")[0],
        }


def _days(values: list[Any], start: datetime) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array(
        [(parse_instant_column(v) - start) / DAY for v in values if v is not None], dtype=np.float64
    )


def _start(data: dict[str, Any]) -> datetime:
    first = data["start"][0]
    if first is None:
        return datetime(2025, 1, 1, tzinfo=UTC)
    at = parse_instant_column(first)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _payment_delay(figure: Any, data: dict[str, Any], truth: TruthStore | None) -> None:
    cards, terms = [], []
    for finalized, paid, due, _reason, _amount in data["invoices"]:
        if paid is None or finalized is None:
            continue
        f, p, d = parse_instant_column(finalized), parse_instant_column(paid), parse_instant_column(due)
        if d > f:
            terms.append((p - d) / DAY)
        else:
            cards.append((p - f) / DAY)
    left, right = figure.subplots(1, 2)
    left.hist(np.clip(cards, 0, 60), bins=np.arange(0, 61, 1), color="#3b6ea5")
    left.set_yscale("log")
    left.set_title(f"Charged by card ({len(cards):,} invoices paid)")
    left.set_xlabel("days from invoice to payment")
    left.set_ylabel("invoices (log scale)")
    right.hist(np.clip(terms, -60, 90), bins=np.arange(-60, 91, 3), color="#c2703d")
    right.axvline(0, color="black", linewidth=1)
    right.set_title(f"On net terms ({len(terms):,} invoices paid)")
    right.set_xlabel("days paid after the due date (negative: before)")
    right.set_ylabel("invoices")


def _decline_codes(figure: Any, data: dict[str, Any], truth: TruthStore | None) -> None:
    first: Counter[str] = Counter()
    later: Counter[str] = Counter()
    for number, code in data["attempts"]:
        (first if number == 1 else later)[code or "unknown"] += 1
    codes = [c.value for c in DECLINE_CODES]
    axis = figure.subplots()
    width = 0.4
    x = np.arange(len(codes))
    for offset, counts, label, color in (
        (-width / 2, first, "first attempts", "#3b6ea5"),
        (width / 2, later, "retries and later attempts", "#c2703d"),
    ):
        total = max(sum(counts.values()), 1)
        axis.bar(
            x + offset,
            [counts[c] / total for c in codes],
            width,
            label=f"{label} ({sum(counts.values()):,})",
            color=color,
        )
    axis.set_xticks(x, [c.replace("_", " ") for c in codes], rotation=30, ha="right")
    axis.set_ylabel("share of declines")
    axis.set_title("Decline codes")
    axis.legend()


def _churn_curve(figure: Any, data: dict[str, Any], truth: TruthStore | None) -> None:
    start = _start(data)
    created = {sid: parse_instant_column(at) for sid, at in data["subscriptions"]}
    ended: dict[int, tuple[datetime, str]] = {}
    for occurred, payload in data["changes"]:
        event = orjson.loads(payload)
        if event.get("to") == "canceled":
            ended[int(event["subscription_id"])] = (parse_instant_column(occurred), event.get("reason") or "")
    last = max([*created.values(), *(e[0] for e in ended.values())], default=start)
    months = (last.year - start.year) * 12 + last.month - start.month + 1
    bounds = [
        datetime(start.year + (start.month - 1 + m) // 12, (start.month - 1 + m) % 12 + 1, 1, tzinfo=UTC)
        for m in range(months + 1)
    ]
    voluntary, involuntary, labels = [], [], []
    for m in range(months):
        lo, hi = bounds[m], bounds[m + 1]
        live = sum(1 for sid, at in created.items() if at < lo and (sid not in ended or ended[sid][0] >= lo))
        vol = sum(1 for at, why in ended.values() if lo <= at < hi and why in _VOLUNTARY)
        inv = sum(1 for at, why in ended.values() if lo <= at < hi and why == "written_off")
        voluntary.append(vol / live if live else np.nan)
        involuntary.append(inv / live if live else np.nan)
        labels.append(lo.strftime("%Y-%m"))
    axis = figure.subplots()
    x = np.arange(months)
    axis.plot(
        x,
        np.array(voluntary) * 100,
        marker="o",
        label="voluntary (canceled by the customer)",
        color="#3b6ea5",
    )
    axis.plot(
        x,
        np.array(involuntary) * 100,
        marker="o",
        label="involuntary (canceled at a write-off)",
        color="#c2703d",
    )
    axis.set_xticks(x, labels, rotation=45, ha="right")
    axis.set_ylabel("% of subscriptions live at the month's start")
    axis.set_title("Churn per month")
    axis.legend()


def _fraud_timeline(figure: Any, data: dict[str, Any], truth: TruthStore | None) -> None:
    start = _start(data)
    series = {
        "chargebacks opened": _days([r[0] for r in data["chargebacks"]], start),
        "disputes opened": _days([r[0] for r in data["disputes"]], start),
        "small one-off charges declined (card testing)": _days([r[0] for r in data["tested"]], start),
    }
    if truth is not None and "truth_payment_attempts" in truth.tables():
        table = truth.read("truth_payment_attempts").to_pydict()
        for kind in ("stolen_card", "account_takeover", "friendly_fraud"):
            series[f"fraudulent payments: {kind.replace('_', ' ')} (truth)"] = np.array(
                [
                    d
                    for d, ok, fraud, k in zip(
                        table["day"], table["succeeded"], table["is_fraud"], table["fraud_kind"], strict=True
                    )
                    if ok and fraud and k == kind
                ],
                dtype=np.float64,
            )
    weeks = max([int(v.max()) // 7 + 1 for v in series.values() if len(v)], default=1)
    axis = figure.subplots()
    edges = np.arange(0, weeks * 7 + 7, 7)
    for label, values in series.items():
        counts, _ = np.histogram(values, bins=edges)
        axis.plot(edges[:-1] / 7, counts, label=label, linewidth=1.5)
    axis.set_xlabel(f"week since {start.date().isoformat()}")
    axis.set_ylabel("per week")
    axis.set_title("Fraud and disputes over time")
    axis.legend(fontsize=8)
