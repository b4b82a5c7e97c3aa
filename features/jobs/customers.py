"""Customer-level feature tables: payment behaviour, usage trend, churn signals."""

from __future__ import annotations

from features.jobs.lake import LakeShape
from features.jobs.sql import DAY, cumulative, exits, window

_LATE_WINDOWS = (30, 90, 365)


def _subscription_state(as_of: str) -> str:
    """CTEs ``sub_rows`` and ``sub_state``: each subscription's state after every instant it changed.

    A subscription changes with its own lake rows and with its cycle invoices (the amount behind its
    monthly recurring revenue). ``sub_state`` holds one row per subscription and instant, with the
    status, the months per period, the last cycle amount (subtotal less discount), the units of its
    items (null when the lake cannot know them) and the cancel-at-period-end flag.
    """
    return f"""
sub_rows AS (
    SELECT subscription_id, customer_id, event_timestamp AS ts, coalesce(event_seq, -1) AS seq, 0 AS src,
           status, months_per_period, cancel_at_period_end, change,
           CASE WHEN items IS NOT NULL THEN {{'q': list_sum(list_transform(items, lambda i: i.quantity))}} END AS units,
           items IS NULL AS units_unknown,
           CAST(NULL AS DOUBLE) AS cycle_amount
    FROM subscriptions WHERE event_timestamp <= {as_of}
    UNION ALL BY NAME
    SELECT subscription_id, customer_id, event_timestamp AS ts, event_seq AS seq, 1 AS src,
           CAST(subtotal_minor - discount_minor AS DOUBLE) AS cycle_amount
    FROM invoices
    WHERE change = 'finalized' AND billing_reason = 'subscription_cycle' AND subscription_id IS NOT NULL
      AND event_timestamp <= {as_of}
),
sub_carried AS (
    SELECT subscription_id, customer_id, ts, seq, src,
           last_value(status IGNORE NULLS) OVER w AS status,
           last_value(months_per_period IGNORE NULLS) OVER w AS months,
           last_value(cycle_amount IGNORE NULLS) OVER w AS amount,
           last_value(cancel_at_period_end IGNORE NULLS) OVER w AS cancel_flag,
           last_value(CASE WHEN src = 0 THEN {{'u': units.q, 'unknown': units_unknown}} END IGNORE NULLS) OVER w AS items
    FROM sub_rows
    WINDOW w AS (PARTITION BY subscription_id ORDER BY ts, seq, src ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
sub_state AS (
    SELECT subscription_id, customer_id, ts,
           status IN ('active', 'past_due') AS active,
           CASE WHEN status IN ('active', 'past_due') THEN coalesce(amount / greatest(months, 1), 0) ELSE 0 END AS mrr,
           status IN ('past_due', 'unpaid') AS past_due,
           CASE WHEN status IN ('active', 'past_due', 'trialing') AND cancel_flag THEN 1 ELSE 0 END AS cancel_scheduled,
           CASE WHEN status IN ('active', 'past_due') THEN items.u END AS units,
           CASE WHEN status IN ('active', 'past_due') AND (items IS NULL OR items.unknown) THEN 1 ELSE 0 END AS units_unknown
    FROM sub_carried
    QUALIFY row_number() OVER (PARTITION BY subscription_id, ts ORDER BY seq DESC, src DESC) = 1
),
sub_delta AS (
    SELECT customer_id, ts,
           mrr - coalesce(lag(mrr) OVER p, 0) AS mrr_delta,
           active::INT - coalesce(lag(active::INT) OVER p, 0) AS active_delta,
           past_due::INT - coalesce(lag(past_due::INT) OVER p, 0) AS past_due_delta,
           cancel_scheduled - coalesce(lag(cancel_scheduled) OVER p, 0) AS cancel_delta,
           coalesce(units, 0) - coalesce(lag(coalesce(units, 0)) OVER p, 0) AS units_delta,
           units_unknown - coalesce(lag(units_unknown) OVER p, 0) AS unknown_delta
    FROM sub_state
    WINDOW p AS (PARTITION BY subscription_id ORDER BY ts)
)"""


def customer_payment(shape: LakeShape, as_of: str) -> str:
    late_exits = exits("paid", "customer_id", tuple(d * DAY for d in _LATE_WINDOWS), as_of)
    lateness = ",\n".join(
        f"""coalesce(count(days_late) OVER w{d}, 0) AS invoices_paid_{d}d,
        avg(CASE WHEN days_late > 0 THEN 1.0 WHEN days_late IS NOT NULL THEN 0.0 END) OVER w{d} AS late_ratio_{d}d,
        avg(days_late) OVER w{d} AS mean_days_late_{d}d,
        max(days_late) OVER w{d} AS max_days_late_{d}d"""
        for d in _LATE_WINDOWS
    )
    late_windows = ", ".join(f"w{d} AS {window(d * DAY)}" for d in _LATE_WINDOWS)
    late_cols = ", ".join(
        f"invoices_paid_{d}d, late_ratio_{d}d, mean_days_late_{d}d, max_days_late_{d}d" for d in _LATE_WINDOWS
    )
    return f"""
WITH
inv AS (
    SELECT invoice_id, customer_id, change, status, amount_due_minor, due_at,
           event_timestamp AS ts, event_seq AS seq,
           lag(status) OVER o AS prev_status,
           lead(event_timestamp) OVER o AS next_ts,
           lead(event_seq) OVER o AS next_seq
    FROM invoices WHERE event_timestamp <= {as_of}
    WINDOW o AS (PARTITION BY invoice_id ORDER BY event_timestamp, event_seq)
),
paid AS (
    SELECT customer_id, ts, seq,
           greatest(0.0, (epoch_us(ts) - epoch_us(coalesce(due_at, ts))) / {DAY * 1e6}) AS days_late
    FROM inv WHERE change = 'paid' AND prev_status IN ('open', 'uncollectible')
),
opened AS (
    SELECT customer_id, amount_due_minor, greatest(due_at, ts) AS due_ts, next_ts AS settle_ts, next_seq AS settle_seq
    FROM inv WHERE status = 'open' AND due_at IS NOT NULL
),
att AS (
    SELECT customer_id, event_timestamp AS ts, event_seq AS seq, status, decline_code, decline_type
    FROM payment_attempts WHERE event_timestamp <= {as_of}
),
failed AS (SELECT customer_id, ts FROM att WHERE status = 'failed'),
disp AS (
    SELECT customer_id, event_timestamp AS ts, event_seq AS seq, change,
           (status IN ('open', 'under_review'))::INT
             - coalesce(lag((status IN ('open', 'under_review'))::INT) OVER (PARTITION BY dispute_id ORDER BY event_timestamp, event_seq), 0)
             AS open_delta
    FROM disputes WHERE event_timestamp <= {as_of}
),
{_subscription_state(as_of)},
stream AS (
    SELECT customer_id, event_timestamp AS ts FROM f_customers WHERE event_timestamp <= {as_of}
    UNION ALL BY NAME
    SELECT customer_id, ts, seq,
           (status = 'open')::INT - coalesce((prev_status = 'open')::INT, 0) AS open_delta,
           ((status = 'open')::INT - coalesce((prev_status = 'open')::INT, 0)) * amount_due_minor AS balance_delta,
           (change = 'finalized')::INT AS finalized,
           CASE WHEN change = 'finalized' THEN CAST(amount_due_minor AS DOUBLE) END AS finalized_amount
    FROM inv
    UNION ALL BY NAME
    SELECT customer_id, due_ts AS ts, 1 AS overdue_delta, amount_due_minor AS overdue_balance_delta
    FROM opened WHERE due_ts <= {as_of} AND (settle_ts IS NULL OR settle_ts > due_ts)
    UNION ALL BY NAME
    SELECT customer_id, settle_ts AS ts, settle_seq AS seq, -1 AS overdue_delta, -amount_due_minor AS overdue_balance_delta
    FROM opened WHERE settle_ts IS NOT NULL AND settle_ts > due_ts AND due_ts <= {as_of}
    UNION ALL BY NAME
    SELECT customer_id, ts, seq, days_late FROM paid
    UNION ALL BY NAME
    {late_exits}
    UNION ALL BY NAME
    SELECT customer_id, ts, seq,
           (status = 'succeeded')::INT AS payment, (status = 'failed')::INT AS failure,
           CASE WHEN status = 'failed' THEN decline_code END AS decline_code,
           CASE WHEN status = 'failed' THEN decline_type END AS decline_type,
           CASE WHEN status = 'failed' THEN seq END AS decline_seq
    FROM att
    UNION ALL BY NAME
    {exits("failed", "customer_id", (30 * DAY,), as_of)}
    UNION ALL BY NAME
    SELECT customer_id, ts, seq, (change = 'opened')::INT AS dispute_opened, open_delta AS dispute_open_delta FROM disp
    UNION ALL BY NAME
    SELECT customer_id, event_timestamp AS ts, event_seq AS seq,
           (change = 'opened')::INT AS chargeback_opened,
           (change = 'closed' AND status = 'lost')::INT AS chargeback_lost
    FROM chargebacks WHERE event_timestamp <= {as_of}
    UNION ALL BY NAME
    SELECT customer_id, ts, mrr_delta, active_delta FROM sub_delta
),
acc AS (
    SELECT customer_id, ts,
        coalesce(sum(mrr_delta) OVER c, 0) AS mrr_minor,
        coalesce(sum(active_delta) OVER c, 0) AS active_subscriptions,
        coalesce(sum(finalized) OVER c, 0) AS invoices_total,
        coalesce(sum(open_delta) OVER c, 0) AS open_invoices,
        coalesce(sum(balance_delta) OVER c, 0) AS open_balance_minor,
        coalesce(sum(overdue_delta) OVER c, 0) AS overdue_invoices,
        coalesce(sum(overdue_balance_delta) OVER c, 0) AS overdue_balance_minor,
        quantile_cont(finalized_amount, 0.5) OVER c AS median_invoice_minor,
        {lateness},
        coalesce(sum(payment) OVER c, 0) AS payments_total,
        coalesce(sum(failure) OVER c, 0) AS failed_attempts_total,
        coalesce(sum(failure) OVER w30, 0) AS failed_attempts_30d,
        arg_max(decline_code, decline_seq) OVER c AS last_decline_code,
        arg_max(decline_type, decline_seq) OVER c AS last_decline_type,
        coalesce(sum(dispute_opened) OVER c, 0) AS disputes_total,
        coalesce(sum(dispute_open_delta) OVER c, 0) AS open_disputes,
        coalesce(sum(chargeback_opened) OVER c, 0) AS chargebacks_total,
        coalesce(sum(chargeback_lost) OVER c, 0) AS chargebacks_lost
    FROM stream
    WINDOW c AS {cumulative()}, {late_windows}
    QUALIFY row_number() OVER (PARTITION BY customer_id, ts) = 1
)
SELECT a.customer_id, a.ts AS event_timestamp,
       cu.currency, cu.country, cu.created_at AS signup_at,
       greatest(a.mrr_minor, 0) AS mrr_minor, a.active_subscriptions, a.invoices_total, a.open_invoices,
       a.open_balance_minor, a.overdue_invoices, a.overdue_balance_minor, a.median_invoice_minor,
       {late_cols},
       a.payments_total, a.failed_attempts_total, a.failed_attempts_30d, a.last_decline_code, a.last_decline_type,
       a.disputes_total, a.open_disputes, a.chargebacks_total, a.chargebacks_lost
FROM acc a JOIN f_customers cu USING (customer_id)
"""


def _usage_sums(as_of: str) -> str:
    """CTE ``usage_sums``: per customer and UTC midnight ``m`` (a DATE), exact integer window sums.

    A usage row of day ``d`` recorded at ``e`` is known from the first midnight at or after ``e``.
    Grouped into versions (customer, day, known-from midnight), each version enters a window at
    ``max(known_from, first midnight the day is inside it)`` and leaves when the day slides out, so
    every sum is a running total of entries and exits (difference arrays), with no row per day.
    Day numbers count from 2000-01-01 to keep the integer products small.
    """
    # (name, first lag, last lag): the window at midnight m covers days m - last .. m - first
    windows = (("w1", 1, 1), ("w7", 1, 7), ("w30", 1, 30), ("p30", 31, 60), ("h28", 2, 29))
    entries = []
    for name, first, last in windows:
        start = f"greatest(km, d + {first})"
        end = f"d + {last + 1}"
        entries.append(
            f"""SELECT customer_id, {start} AS m, '{name}' AS w, dy, dy * dn AS ddy, dyy, dact FROM versions WHERE {start} < {end}
    UNION ALL SELECT customer_id, {end} AS m, '{name}' AS w, -dy, -dy * dn, -dyy, -dact FROM versions WHERE {start} < {end}"""
        )
    union = "\n    UNION ALL ".join(entries)
    pivots = ",\n        ".join(
        f"sum(CASE WHEN w = '{name}' THEN {col} ELSE 0 END) AS {name}_{col}"
        for name, *_ in windows
        for col in ("dy", "ddy", "dyy", "dact")
    )
    running = ",\n        ".join(
        f"coalesce(sum({name}_{col}) OVER r, 0) AS {name}_{col}"
        for name, *_ in windows
        for col in ("dy", "ddy", "dyy", "dact")
    )
    return f"""
usage_rows AS (
    SELECT customer_id, day AS d, CAST(quantity AS HUGEINT) AS q,
           CAST(date_trunc('day', event_timestamp) AS DATE)
             + CASE WHEN event_timestamp = date_trunc('day', event_timestamp) THEN 0 ELSE 1 END AS km
    FROM usage_by_day WHERE event_timestamp <= {as_of}
),
usage_versions AS (
    SELECT customer_id, d, km, sum(q) AS q FROM usage_rows GROUP BY ALL
),
versions AS (
    SELECT customer_id, d, km, d - DATE '2000-01-01' AS dn,
           q AS dy,
           y * y - (y - q) * (y - q) AS dyy,
           CASE WHEN y > 0 AND y - q <= 0 THEN 1 WHEN y <= 0 AND y - q > 0 THEN -1 ELSE 0 END AS dact
    FROM (SELECT *, sum(q) OVER (PARTITION BY customer_id, d ORDER BY km) AS y FROM usage_versions)
),
usage_moves AS (
    {union}
),
usage_points AS (
    SELECT customer_id, m,
        {pivots}
    FROM usage_moves GROUP BY customer_id, m
),
usage_grid AS (
    -- every midnight from a customer's first entry to its last exit: the slopes move daily
    SELECT customer_id, CAST(unnest(generate_series(lo, hi, INTERVAL 1 DAY)) AS DATE) AS m
    FROM (
        SELECT customer_id, min(m) AS lo, least(max(m), CAST(date_trunc('day', {as_of}) AS DATE)) AS hi
        FROM usage_points GROUP BY customer_id
    )
    WHERE lo <= hi
),
usage_sums AS (
    SELECT customer_id, m, m - DATE '2000-01-01' AS mn,
        {running}
    FROM usage_grid LEFT JOIN usage_points USING (customer_id, m)
    WINDOW r AS (PARTITION BY customer_id ORDER BY m ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)"""


def _slope(name: str, n: int) -> str:
    # x = day - m in [-n, -1]; slope = (n Sxy - Sx Sy) / (n Sxx - Sx^2), Sxy = S(d y) - m S(y)
    sx = -n * (n + 1) // 2
    sxx = n * (n + 1) * (2 * n + 1) // 6
    den = n * sxx - sx * sx
    return f"CAST({n} * ({name}_ddy - mn * {name}_dy) - ({sx}) * {name}_dy AS DOUBLE) / {den}"


def usage_trend(shape: LakeShape, as_of: str) -> str:
    return f"""
WITH {_usage_sums(as_of)}
SELECT customer_id, CAST(m AS TIMESTAMPTZ) AS event_timestamp,
       CAST(w1_dy AS DOUBLE) AS usage_1d,
       CAST(w7_dy AS DOUBLE) AS usage_7d,
       CAST(w30_dy AS DOUBLE) AS usage_30d,
       CAST(p30_dy AS DOUBLE) AS usage_prev_30d,
       CAST(w30_dact AS INTEGER) AS active_days_30d,
       {_slope("w7", 7)} AS usage_slope_7d,
       {_slope("w30", 30)} AS usage_slope_30d,
       CASE WHEN 28 * h28_dyy - h28_dy * h28_dy > 0
            THEN CAST(28 * w1_dy - h28_dy AS DOUBLE) / sqrt(CAST(28 * h28_dyy - h28_dy * h28_dy AS DOUBLE))
       END AS usage_zscore_1d
FROM usage_sums
"""


def churn_signals(shape: LakeShape, as_of: str) -> str:
    window_90 = window(90 * DAY)
    return f"""
WITH
{_subscription_state(as_of)},
plan_changes AS (
    SELECT customer_id, ts,
           CASE WHEN units IS NOT NULL AND prev_units IS NOT NULL AND units.q IS DISTINCT FROM prev_units.q THEN 1 ELSE 0 END AS seat_change
    FROM (
        SELECT customer_id, ts, seq, change, units,
               lag(units) OVER (PARTITION BY subscription_id ORDER BY ts, seq) AS prev_units
        FROM sub_rows WHERE src = 0
    )
    WHERE change = 'plan_changed'
),
recurring AS (
    SELECT l.invoice_id, any_value(l.subscription_id) AS subscription_id, any_value(l.customer_id) AS customer_id,
           any_value(l.event_timestamp) AS ts, any_value(l.event_seq) AS seq,
           CAST(sum(l.amount_minor) AS DOUBLE) / nullif(sum(l.quantity), 0) AS unit_price
    FROM invoice_lines l
    JOIN invoices i ON i.invoice_id = l.invoice_id AND i.change = 'finalized' AND i.billing_reason = 'subscription_cycle'
    WHERE l.kind = 'subscription' AND l.subscription_id IS NOT NULL AND l.event_timestamp <= {as_of}
    GROUP BY l.invoice_id
),
price_changes AS (
    SELECT customer_id, ts, seq, unit_price / prev_price - 1 AS pct
    FROM (
        SELECT *, lag(unit_price) OVER (PARTITION BY subscription_id ORDER BY ts, seq) AS prev_price FROM recurring
    )
    WHERE prev_price > 0 AND abs(unit_price / prev_price - 1) > 0.005
),
opened_disputes AS (
    SELECT customer_id, event_timestamp AS ts FROM disputes WHERE change = 'opened' AND event_timestamp <= {as_of}
),
stream AS (
    SELECT customer_id, ts, past_due_delta, cancel_delta, units_delta, unknown_delta FROM sub_delta
    UNION ALL BY NAME
    SELECT customer_id, ts, 1 AS plan_change, seat_change FROM plan_changes
    UNION ALL BY NAME
    {exits("plan_changes", "customer_id", (90 * DAY,), as_of)}
    UNION ALL BY NAME
    SELECT customer_id, ts, seq AS price_seq, 1 AS price_change, pct FROM price_changes
    UNION ALL BY NAME
    {exits("price_changes", "customer_id", (90 * DAY,), as_of)}
    UNION ALL BY NAME
    SELECT customer_id, ts, 1 AS dispute FROM opened_disputes
    UNION ALL BY NAME
    {exits("opened_disputes", "customer_id", (90 * DAY,), as_of)}
),
events AS (
    SELECT customer_id, ts,
        CASE WHEN coalesce(sum(unknown_delta) OVER c, 0) > 0 THEN NULL
             ELSE coalesce(sum(units_delta) OVER c, 0) END AS seats,
        coalesce(sum(plan_change) OVER w90, 0) AS plan_changes_90d,
        coalesce(sum(seat_change) OVER w90, 0) AS seat_changes_90d,
        coalesce(sum(price_change) OVER w90, 0) AS price_changes_90d,
        arg_max(pct, price_seq) OVER w90 AS last_price_change_pct,
        coalesce(sum(cancel_delta) OVER c, 0) AS cancel_scheduled,
        coalesce(sum(past_due_delta) OVER c, 0) AS past_due_subscriptions,
        coalesce(sum(dispute) OVER w90, 0) AS disputes_90d
    FROM stream
    WINDOW c AS {cumulative()}, w90 AS {window_90}
    QUALIFY row_number() OVER (PARTITION BY customer_id, ts) = 1
),
{_usage_sums(as_of)},
usage AS (
    SELECT customer_id, CAST(m AS TIMESTAMPTZ) AS ts,
           CASE WHEN p30_dy > 0 THEN 1 - CAST(w30_dy AS DOUBLE) / CAST(p30_dy AS DOUBLE) END AS usage_decline_30d
    FROM usage_sums
),
points AS (
    SELECT customer_id, ts FROM events UNION SELECT customer_id, ts FROM usage
)
SELECT p.customer_id, p.ts AS event_timestamp,
       e.seats,
       coalesce(e.plan_changes_90d, 0) AS plan_changes_90d,
       coalesce(e.seat_changes_90d, 0) AS seat_changes_90d,
       coalesce(e.price_changes_90d, 0) AS price_changes_90d,
       e.last_price_change_pct,
       coalesce(e.cancel_scheduled, 0) AS cancel_scheduled,
       coalesce(e.past_due_subscriptions, 0) AS past_due_subscriptions,
       coalesce(e.disputes_90d, 0) AS disputes_90d,
       u.usage_decline_30d
FROM points p
ASOF LEFT JOIN events e ON p.customer_id = e.customer_id AND p.ts >= e.ts
ASOF LEFT JOIN usage u ON p.customer_id = u.customer_id AND p.ts >= u.ts
"""
