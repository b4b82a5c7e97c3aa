"""Usage aggregated in SQL over per-subscription windows (one query per aggregation family)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from billing_core.catalog import Aggregation, Price, UsageType
from billing_core.db.bulk import Bulk
from billing_core.subscriptions import SubscriptionItem

#: (subscription_id, customer_id, metric_code, window_start, window_end, aggregation)
Window = tuple[int, int, str, datetime, datetime, Aggregation]


def metered_windows(
    subscription_id: int,
    customer_id: int,
    items: Sequence[SubscriptionItem],
    prices: Mapping[int, Price],
    aggregations: Mapping[str, Aggregation],
    start: datetime,
    end: datetime,
) -> list[Window]:
    """One window per metric the items meter, over ``[start, end)``."""
    if end <= start:
        return []
    metrics = sorted(
        {
            prices[i.price_id].metric_code or ""
            for i in items
            if prices[i.price_id].usage_type is UsageType.METERED
        }
    )
    return [(subscription_id, customer_id, m, start, end, aggregations[m]) for m in metrics if m]


def aggregate_windows(bulk: Bulk, windows: Sequence[Window]) -> dict[int, dict[str, int]]:
    """``{subscription_id: {metric_code: value}}`` for the events inside each window."""
    if not windows:
        return {}
    bulk.execute("DROP TABLE IF EXISTS tmp_usage_window")
    time_type = "TEXT" if bulk.sqlite else "TIMESTAMPTZ"
    bulk.execute(
        "CREATE TEMP TABLE tmp_usage_window (subscription_id INTEGER, customer_id INTEGER,"
        f" metric_code VARCHAR(64), window_start {time_type}, window_end {time_type}, aggregation VARCHAR(16))"
    )
    instant = bulk.instant_formatter()
    bulk.insert(
        "tmp_usage_window",
        ["subscription_id", "customer_id", "metric_code", "window_start", "window_end", "aggregation"],
        [(s, c, m, instant(a), instant(b), agg.value) for s, c, m, a, b, agg in windows],
    )
    usage: dict[int, dict[str, int]] = {}
    for sub_id, metric, aggregation, total, peak, unique in bulk.query(
        "SELECT w.subscription_id, w.metric_code, w.aggregation, SUM(u.value), MAX(u.value),"
        " COUNT(DISTINCT u.unique_key)"
        " FROM tmp_usage_window w JOIN usage_events u ON u.customer_id = w.customer_id"
        " AND u.metric_code = w.metric_code AND u.occurred_at >= w.window_start"
        " AND u.occurred_at < w.window_end"
        " WHERE w.aggregation <> 'last'"
        " GROUP BY w.subscription_id, w.metric_code, w.aggregation"
    ):
        value = {"sum": total, "max": peak, "unique_count": unique}[aggregation]
        usage.setdefault(sub_id, {})[metric] = int(value or 0)
    for sub_id, metric, value in bulk.query(
        "SELECT w.subscription_id, w.metric_code, (SELECT u.value FROM usage_events u"
        " WHERE u.customer_id = w.customer_id AND u.metric_code = w.metric_code"
        " AND u.occurred_at >= w.window_start AND u.occurred_at < w.window_end"
        " ORDER BY u.occurred_at DESC, u.event_id DESC LIMIT 1)"
        " FROM tmp_usage_window w WHERE w.aggregation = 'last'"
    ):
        if value is not None:
            usage.setdefault(sub_id, {})[metric] = int(value)
    bulk.execute("DROP TABLE IF EXISTS tmp_usage_window")
    return usage
