"""Small helpers the jobs' SQL is written with.

Conventions of every job:

* it reads only rows with ``event_timestamp <= as_of`` and writes only rows stamped ``<= as_of``
  (a window's end, a due date or a midnight later than ``as_of`` is not known yet);
* a row's values are computed from events at or before its ``event_timestamp`` (window frames
  end at ``CURRENT ROW`` in ``ORDER BY ts`` with ``RANGE``, so every event of the same instant
  counts and nothing later does);
* a window of length ``W`` ending at ``t`` covers ``(t - W, t]``: an event at ``e`` counts from
  ``e`` until ``e + W`` exclusive, and the job writes a row at ``e + W``, where the value drops.
"""

from __future__ import annotations

from datetime import UTC, datetime

HOUR = 3_600
DAY = 86_400


def ts_literal(value: datetime) -> str:
    """A DuckDB ``TIMESTAMPTZ`` literal for an aware datetime."""
    if value.tzinfo is None:
        raise ValueError(f"as_of must be timezone-aware, got {value!r}")
    return f"TIMESTAMPTZ '{value.astimezone(UTC).isoformat()}'"


def window(seconds: int, partition: str = "customer_id", order: str = "ts") -> str:
    """A frame over the ``seconds`` before the current row's instant: ``(t - W, t]``."""
    return (
        f"(PARTITION BY {partition} ORDER BY {order} RANGE BETWEEN "
        f"INTERVAL '{seconds * 1_000_000 - 1} microseconds' PRECEDING AND CURRENT ROW)"
    )


def cumulative(partition: str = "customer_id", order: str = "ts") -> str:
    """Everything up to and including the current row's instant."""
    return f"(PARTITION BY {partition} ORDER BY {order} RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"


def exits(source: str, key: str, seconds: tuple[int, ...], as_of: str) -> str:
    """Rows with only ``key`` and ``ts`` where an event of ``source`` leaves each window."""
    parts = [
        f"SELECT {key}, ts + INTERVAL '{s} seconds' AS ts FROM {source}"
        f" WHERE ts + INTERVAL '{s} seconds' <= {as_of}"
        for s in seconds
    ]
    return "SELECT * FROM (" + " UNION ALL ".join(parts) + ")"


def days(seconds: int) -> float:
    return seconds / DAY
