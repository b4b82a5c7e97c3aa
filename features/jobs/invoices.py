"""Invoice-level feature tables (invoice and dunning context) and the dispute context."""

from __future__ import annotations

from features.jobs.lake import LakeShape
from features.jobs.sql import DAY, HOUR, cumulative


def invoice_context(shape: LakeShape, as_of: str) -> str:
    return f"""
WITH
fin AS (
    SELECT invoice_id, customer_id, amount_due_minor, total_minor, tax_minor, discount_minor, currency,
           billing_reason, due_at, event_timestamp AS ts, event_seq AS seq
    FROM invoices WHERE change = 'finalized' AND event_timestamp <= {as_of}
),
hist AS (
    SELECT *,
           quantile_cont(CAST(amount_due_minor AS DOUBLE), 0.5) OVER earlier AS prior_median,
           row_number() OVER (PARTITION BY customer_id ORDER BY ts, seq) = 1 AS is_first
    FROM fin
    WINDOW earlier AS (PARTITION BY customer_id ORDER BY ts, seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
cards AS (
    SELECT customer_id, event_timestamp AS ts, brand,
           make_timestamptz(exp_year, exp_month, 1, 0, 0, 0.0, 'UTC') + INTERVAL 1 MONTH AS expires_at
    FROM f_payment_methods WHERE event_timestamp <= {as_of}
),
charged AS (
    SELECT customer_id, min(event_timestamp) AS ts FROM payment_attempts
    WHERE payment_method_id IS NOT NULL AND event_timestamp <= {as_of} GROUP BY customer_id
)
SELECT h.invoice_id, h.ts AS event_timestamp,
       h.amount_due_minor, h.total_minor, h.tax_minor, h.discount_minor,
       h.currency AS invoice_currency, h.billing_reason, h.is_first AS is_first_invoice,
       CASE WHEN h.prior_median > 0 THEN h.amount_due_minor / h.prior_median END AS amount_over_median,
       CASE WHEN h.due_at IS NOT NULL THEN (epoch_us(h.due_at) - epoch_us(h.ts)) / {DAY * 1e6} END AS days_to_due,
       h.due_at,
       coalesce(c.brand, CASE WHEN ch.ts <= h.ts THEN 'card' ELSE 'none' END) AS payment_method,
       c.expires_at AS card_expires_at,
       (epoch_us(c.expires_at) - epoch_us(h.ts)) / {DAY * 1e6} AS card_expires_in_days
FROM hist h
ASOF LEFT JOIN cards c ON h.customer_id = c.customer_id AND h.ts >= c.ts
LEFT JOIN charged ch ON ch.customer_id = h.customer_id
"""


def dunning_context(shape: LakeShape, as_of: str) -> str:
    return f"""
WITH
att AS (
    SELECT invoice_id, event_timestamp AS ts, event_seq AS seq, status, decline_code, decline_type
    FROM payment_attempts WHERE event_timestamp <= {as_of}
),
act AS (
    SELECT invoice_id, event_timestamp AS ts, action_id, action, channel, outcome, day
    FROM dunning_actions WHERE event_timestamp <= {as_of}
),
collected AS (
    SELECT invoice_id FROM att WHERE status = 'failed' UNION SELECT invoice_id FROM act
),
stream AS (
    SELECT invoice_id, ts, 1 AS attempt, (status = 'failed')::INT AS failure,
           CASE WHEN status = 'failed' THEN ts END AS failure_ts,
           CASE WHEN status = 'failed' THEN decline_code END AS decline_code,
           CASE WHEN status = 'failed' THEN decline_type END AS decline_type,
           CASE WHEN status = 'failed' THEN seq END AS failure_seq
    FROM att WHERE invoice_id IN (SELECT invoice_id FROM collected)
    UNION ALL BY NAME
    SELECT invoice_id, ts, action_id,
           (action = 'retry')::INT AS retry,
           (action IN ('remind', 'final_notice'))::INT AS reminder,
           (action IN ('remind', 'final_notice') AND channel = 'email')::INT AS email,
           (action IN ('remind', 'final_notice') AND channel = 'sms')::INT AS sms,
           (action IN ('remind', 'final_notice') AND channel = 'call')::INT AS call,
           CASE WHEN action IN ('remind', 'final_notice') THEN ts END AS reminder_ts,
           CASE WHEN action IN ('remind', 'final_notice') THEN channel END AS reminder_channel,
           CASE WHEN action IN ('remind', 'final_notice') THEN action_id END AS reminder_id,
           (action = 'final_notice')::INT AS final_notice,
           (action = 'suspend' AND outcome IN ('suspended', 'already_suspended'))::INT AS suspend,
           day
    FROM act
),
acc AS (
    SELECT invoice_id, ts,
        coalesce(sum(attempt) OVER c, 0) AS attempts,
        coalesce(sum(failure) OVER c, 0) AS failed_attempts,
        min(failure_ts) OVER c AS first_failure_at,
        max(failure_ts) OVER c AS last_failure_at,
        arg_max(decline_code, failure_seq) OVER c AS decline_code,
        arg_max(decline_type, failure_seq) OVER c AS decline_type,
        coalesce(sum(retry) OVER c, 0) AS retries,
        coalesce(sum(reminder) OVER c, 0) AS reminders_sent,
        coalesce(sum(email) OVER c, 0) AS reminders_email,
        coalesce(sum(sms) OVER c, 0) AS reminders_sms,
        coalesce(sum(call) OVER c, 0) AS reminders_call,
        max(reminder_ts) OVER c AS last_reminder_at,
        arg_max(reminder_channel, reminder_id) OVER c AS last_reminder_channel,
        coalesce(sum(final_notice) OVER c, 0) > 0 AS final_notice_sent,
        coalesce(sum(suspend) OVER c, 0) > 0 AS suspended,
        arg_max(day, action_id) OVER c AS dunning_day
    FROM stream
    WINDOW c AS {cumulative("invoice_id")}
    QUALIFY row_number() OVER (PARTITION BY invoice_id, ts) = 1
)
SELECT invoice_id, ts AS event_timestamp, attempts, failed_attempts, first_failure_at, last_failure_at,
       (epoch_us(ts) - epoch_us(last_failure_at)) / {HOUR * 1e6} AS hours_since_failure,
       decline_code, decline_type,
       CAST(dayofmonth(last_failure_at) AS INTEGER) AS failure_day_of_month,
       CAST(hour(last_failure_at) AS INTEGER) AS failure_hour,
       retries, reminders_sent, reminders_email, reminders_sms, reminders_call,
       last_reminder_at, last_reminder_channel, final_notice_sent, suspended, dunning_day
FROM acc
"""


def dispute_context(shape: LakeShape, as_of: str) -> str:
    return f"""
WITH
opened AS (
    SELECT dispute_id, customer_id, invoice_id, amount_minor, currency, message,
           event_timestamp AS ts, event_seq AS seq
    FROM disputes WHERE change = 'opened' AND event_timestamp <= {as_of}
),
fin AS (
    SELECT invoice_id, total_minor, subscription_id, event_timestamp AS ts
    FROM invoices WHERE change = 'finalized' AND event_timestamp <= {as_of}
),
pay AS (
    SELECT o.dispute_id, count(p.payment_id) AS payments, max(p.event_timestamp) AS last_paid
    FROM opened o LEFT JOIN payments p ON p.invoice_id = o.invoice_id AND p.event_timestamp <= o.ts
    GROUP BY o.dispute_id
),
ref AS (
    SELECT o.dispute_id, coalesce(sum(r.amount_minor), 0) AS refunded
    FROM opened o LEFT JOIN refunds r ON r.invoice_id = o.invoice_id AND r.event_timestamp <= o.ts
    GROUP BY o.dispute_id
),
notes AS (
    SELECT o.dispute_id, count(n.credit_note_id) AS notes
    FROM opened o LEFT JOIN credit_notes n ON n.invoice_id = o.invoice_id AND n.event_timestamp <= o.ts
    GROUP BY o.dispute_id
),
with_invoice AS (
    SELECT o.*, f.total_minor, f.subscription_id, f.ts AS finalized_at
    FROM opened o LEFT JOIN fin f ON f.invoice_id = o.invoice_id AND f.ts <= o.ts
),
subs AS (
    SELECT subscription_id, event_timestamp AS ts, coalesce(event_seq, -1) AS seq, status, cancel_at_period_end
    FROM subscriptions WHERE event_timestamp <= {as_of}
),
sub_at AS (
    SELECT w.dispute_id, s.status, s.cancel_at_period_end
    FROM with_invoice w
    JOIN subs s ON s.subscription_id = w.subscription_id AND s.ts <= w.ts
    QUALIFY row_number() OVER (PARTITION BY w.dispute_id ORDER BY s.ts DESC, s.seq DESC) = 1
)
SELECT w.dispute_id, w.ts AS event_timestamp,
       w.amount_minor AS dispute_amount_minor, w.currency AS dispute_currency,
       w.message, CAST(length(w.message) AS INTEGER) AS message_length,
       CASE WHEN w.total_minor > 0 THEN CAST(w.amount_minor AS DOUBLE) / w.total_minor END AS amount_over_invoice,
       (epoch_us(w.ts) - epoch_us(w.finalized_at)) / {DAY * 1e6} AS days_since_invoice,
       (epoch_us(w.ts) - epoch_us(p.last_paid)) / {DAY * 1e6} AS days_since_payment,
       coalesce(p.payments, 0) AS payments_on_invoice,
       coalesce(r.refunded, 0) AS refunded_on_invoice_minor,
       coalesce(n.notes, 0) AS credit_notes_on_invoice,
       sa.status AS subscription_status, sa.cancel_at_period_end AS subscription_cancel_scheduled,
       CAST(row_number() OVER (PARTITION BY w.customer_id ORDER BY w.ts, w.seq) - 1 AS INTEGER) AS customer_disputes_before
FROM with_invoice w
LEFT JOIN pay p USING (dispute_id)
LEFT JOIN ref r USING (dispute_id)
LEFT JOIN notes n USING (dispute_id)
LEFT JOIN sub_at sa USING (dispute_id)
"""
