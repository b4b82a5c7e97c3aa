"""Vectorised helpers of the on-demand feature views (numpy only, cheap to import).

A transformation receives lists of Python values (online, and in the stock offline store) or numpy
arrays (whole columns, from the ASOF offline store) and returns the same kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

Values = Sequence[Any] | np.ndarray


def _instant(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, datetime):
        try:
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        except ValueError:  # pandas' NaT
            return math.nan
    if isinstance(value, np.datetime64):
        return math.nan if np.isnat(value) else float(value.astype("datetime64[us]").astype(np.int64)) / 1e6
    return float(value)


def seconds(values: Values) -> np.ndarray:
    """Instants as seconds since the epoch (NaN where missing), from datetimes, numpy or numbers."""
    if isinstance(values, np.ndarray):
        if np.issubdtype(values.dtype, np.datetime64):
            out = values.astype("datetime64[us]").astype(np.int64) / 1e6
            out[np.isnat(values)] = np.nan
            return out
        if values.dtype != object:
            return values.astype(np.float64)
    return np.fromiter((_instant(v) for v in values), dtype=np.float64, count=len(values))


def numbers(values: Values) -> np.ndarray:
    """Numbers as floats, NaN where missing."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.astype(np.float64)
    return np.fromiter(
        (math.nan if v is None else float(v) for v in values), dtype=np.float64, count=len(values)
    )


def out(result: np.ndarray, like: Values) -> Any:
    """Lists in, lists out (None for NaN); arrays in, arrays out."""
    if isinstance(like, np.ndarray):
        return result
    return [None if math.isnan(x) else float(x) for x in result.tolist()]


def utc_fields(at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hour, day of the month and weekday (Monday 0) in UTC of instants in seconds (NaN kept)."""
    missing = np.isnan(at)
    stamps = np.where(missing, 0, at).astype(np.int64).astype("datetime64[s]")
    days = stamps.astype("datetime64[D]")
    hour = ((stamps - days).astype(np.int64) // 3600).astype(np.float64)
    day_of_month = ((days - days.astype("datetime64[M]")).astype(np.int64) + 1).astype(np.float64)
    weekday = ((days.astype(np.int64) + 3) % 7).astype(np.float64)  # 1970-01-01 was a Thursday
    for array in (hour, day_of_month, weekday):
        array[missing] = np.nan
    return hour, day_of_month, weekday
