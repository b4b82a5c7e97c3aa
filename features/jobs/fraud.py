"""Fraud feature tables: velocity per email domain, BIN, device and IP; a customer's payment risk;
and the two real-time counters the push consumer keeps fresh online."""

from __future__ import annotations

from features.jobs.lake import LakeShape
from features.jobs.sql import DAY, HOUR, cumulative, exits, window

# the key each velocity table counts by: (table prefix, key column, signups, attempts)
_ATTEMPTS = "SELECT customer_id, payment_method_id, event_timestamp AS ts, status FROM payment_attempts"


def _velocity(prefix: str, key: str, signups: str, attempts: str, as_of: str) -> str:
    """Signups and attempts per ``key`` over the last hour and day.

    ``signups`` and ``attempts`` are queries with columns ``{key}, ts`` (and ``status`` for
    attempts).
    """
    h, d = window(HOUR, key), window(DAY, key)
    return f"""
WITH
sig AS (SELECT {key}, ts FROM ({signups}) WHERE {key} IS NOT NULL AND ts <= {as_of}),
att AS (SELECT {key}, ts, status FROM ({attempts}) WHERE {key} IS NOT NULL AND ts <= {as_of}),
ev AS (
    SELECT {key}, ts, 1 AS signup FROM sig
    UNION ALL BY NAME SELECT {key}, ts, 1 AS attempt, (status = 'failed')::INT AS failure FROM att
),
stream AS (
    SELECT * FROM ev
    UNION ALL BY NAME {exits("ev", key, (HOUR, DAY), as_of)}
)
SELECT {key}, ts AS event_timestamp,
       coalesce(sum(signup) OVER h, 0) AS {prefix}_signups_1h,
       coalesce(sum(signup) OVER d, 0) AS {prefix}_signups_24h,
       coalesce(sum(attempt) OVER h, 0) AS {prefix}_attempts_1h,
       coalesce(sum(attempt) OVER d, 0) AS {prefix}_attempts_24h,
       coalesce(sum(failure) OVER d, 0) AS {prefix}_failed_attempts_24h
FROM stream
WINDOW h AS {h}, d AS {d}
QUALIFY row_number() OVER (PARTITION BY {key}, ts) = 1
"""


def _by_customer_column(column: str) -> tuple[str, str]:
    signups = f"SELECT {column}, event_timestamp AS ts FROM f_customers"
    attempts = (
        f"SELECT c.{column}, a.ts, a.status FROM ({_ATTEMPTS}) a JOIN f_customers c USING (customer_id)"
    )
    return signups, attempts


def email_domain_velocity(shape: LakeShape, as_of: str) -> str:
    signups, attempts = _by_customer_column("email_domain")
    return _velocity("domain", "email_domain", signups, attempts, as_of)


def device_velocity(shape: LakeShape, as_of: str) -> str:
    signups, attempts = _by_customer_column("signup_device_id")
    return _velocity("device", "device_id", signups.replace("signup_device_id", "signup_device_id AS device_id", 1),
                     attempts.replace("c.signup_device_id", "c.signup_device_id AS device_id", 1), as_of)  # fmt: skip


def ip_velocity(shape: LakeShape, as_of: str) -> str:
    signups, attempts = _by_customer_column("signup_ip")
    return _velocity("ip", "signup_ip", signups, attempts, as_of)


def bin_velocity(shape: LakeShape, as_of: str) -> str:
    signups = "SELECT bin AS card_bin, event_timestamp AS ts FROM f_payment_methods"
    attempts = (
        f"SELECT m.bin AS card_bin, a.ts, a.status FROM ({_ATTEMPTS}) a"
        " JOIN f_payment_methods m ON m.payment_method_id = a.payment_method_id"
    )
    return _velocity("bin", "card_bin", signups, attempts, as_of)


def customer_realtime(shape: LakeShape, as_of: str) -> str:
    return f"""
WITH
ev AS (SELECT customer_id, event_timestamp AS ts, 1 AS failure FROM payment_attempts
       WHERE status = 'failed' AND event_timestamp <= {as_of}),
stream AS (SELECT * FROM ev UNION ALL BY NAME {exits("ev", "customer_id", (DAY,), as_of)})
SELECT customer_id, ts AS event_timestamp, coalesce(sum(failure) OVER {window(DAY)}, 0) AS failed_attempts_24h
FROM stream
QUALIFY row_number() OVER (PARTITION BY customer_id, ts) = 1
"""


def bin_realtime(shape: LakeShape, as_of: str) -> str:
    return f"""
WITH
ev AS (SELECT m.bin AS card_bin, a.event_timestamp AS ts, 1 AS attempt FROM payment_attempts a
       JOIN f_payment_methods m ON m.payment_method_id = a.payment_method_id
       WHERE m.bin IS NOT NULL AND a.event_timestamp <= {as_of}),
stream AS (SELECT * FROM ev UNION ALL BY NAME {exits("ev", "card_bin", (HOUR,), as_of)})
SELECT card_bin, ts AS event_timestamp, coalesce(sum(attempt) OVER {window(HOUR, "card_bin")}, 0) AS bin_attempts_last_hour
FROM stream
QUALIFY row_number() OVER (PARTITION BY card_bin, ts) = 1
"""


def payment_risk(shape: LakeShape, as_of: str) -> str:
    return f"""
WITH
att AS (
    SELECT customer_id, event_timestamp AS ts, event_seq AS seq, payment_method_id, CAST(amount_minor AS DOUBLE) AS amount,
           row_number() OVER (PARTITION BY customer_id, payment_method_id ORDER BY event_timestamp, event_seq) = 1
             AND payment_method_id IS NOT NULL AS first_use,
           avg(CAST(amount_minor AS DOUBLE)) OVER earlier AS prev_mean,
           stddev_pop(CAST(amount_minor AS DOUBLE)) OVER earlier AS prev_std,
           count(*) OVER earlier AS prev_n
    FROM payment_attempts WHERE event_timestamp <= {as_of}
    WINDOW earlier AS (PARTITION BY customer_id ORDER BY event_timestamp, event_seq
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
cards AS (
    SELECT customer_id, event_timestamp AS ts, country FROM f_payment_methods WHERE event_timestamp <= {as_of}
),
stream AS (
    SELECT customer_id, event_timestamp AS ts FROM f_customers WHERE event_timestamp <= {as_of}
    UNION ALL BY NAME
    SELECT customer_id, ts FROM cards
    UNION ALL BY NAME
    SELECT customer_id, ts, seq, 1 AS attempt, amount, first_use::INT AS first_use,
           CASE WHEN prev_n >= 2 AND prev_std > 0 THEN (amount - prev_mean) / prev_std END AS zscore
    FROM att
    UNION ALL BY NAME
    {exits("att", "customer_id", (HOUR, DAY), as_of)}
),
acc AS (
    SELECT customer_id, ts,
        coalesce(sum(attempt) OVER h, 0) AS attempts_1h,
        coalesce(sum(attempt) OVER d, 0) AS attempts_24h,
        coalesce(sum(first_use) OVER c, 0) AS payment_methods_used,
        coalesce(arg_max(first_use, seq) OVER c, 0) = 1 AS new_payment_method,
        avg(amount) OVER c AS attempt_amount_mean,
        stddev_pop(amount) OVER c AS attempt_amount_std,
        arg_max_null(zscore, CASE WHEN attempt = 1 THEN seq END) OVER c AS last_amount_zscore
    FROM stream
    WINDOW c AS {cumulative()}, h AS {window(HOUR)}, d AS {window(DAY)}
    QUALIFY row_number() OVER (PARTITION BY customer_id, ts) = 1
)
SELECT a.customer_id, a.ts AS event_timestamp,
       coalesce(cu.email_domain, '') AS customer_email_domain,
       cu.signup_channel,
       CASE WHEN coalesce(cu.signup_ip_country, k.country) IS NULL THEN NULL
            ELSE cu.country <> coalesce(cu.signup_ip_country, k.country) END AS country_mismatch,
       a.attempts_1h, a.attempts_24h, a.payment_methods_used, a.new_payment_method,
       a.attempt_amount_mean, a.attempt_amount_std, a.last_amount_zscore
FROM acc a
JOIN f_customers cu USING (customer_id)
ASOF LEFT JOIN cards k ON a.customer_id = k.customer_id AND a.ts >= k.ts
"""
