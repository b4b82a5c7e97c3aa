"""The world's calendar: day indexes, months and paydays, vectorized.

The world counts time in whole days from its start date (``WorldParams.start``): day 0 is the
start date, and month 0 is the calendar month it falls in. Everything keyed by time uses these
indexes, which never depend on the database.

Paydays follow four cycles, with the shares the U.S. Bureau of Labor Statistics reports for
private businesses (see :mod:`billing_core.simulation.params`):

============  ===================================================  ======================
cycle         paydays                                              phase
============  ===================================================  ======================
weekly        one weekday each week                                the weekday (0 = Monday)
biweekly      every 14 days                                        day index modulo 14
semi_monthly  the 1st and the 15th                                 unused
monthly       the last day of the month                            unused
============  ===================================================  ======================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from billing_core.simulation.rng import IntArray

PAYDAY_CYCLES: tuple[str, ...] = ("weekly", "biweekly", "semi_monthly", "monthly")
WEEKLY, BIWEEKLY, SEMI_MONTHLY, MONTHLY = range(4)
#: typical days between paydays, per cycle
CYCLE_LENGTH_DAYS = np.array([7.0, 14.0, 15.2, 30.4])


@dataclass(frozen=True, slots=True)
class Days:
    """Calendar facts of day indexes (all arrays share the shape of ``day``)."""

    day: IntArray
    year: IntArray
    month: IntArray  # 1..12
    day_of_month: IntArray  # 1..31
    days_in_month: IntArray
    weekday: IntArray  # 0 = Monday
    day_of_year: IntArray  # 1..366
    month_index: IntArray  # calendar months since the world's start month


def _epoch_day(start: date) -> int:
    return int(np.datetime64(start, "D").astype(np.int64))


def days(start: date, day: npt.ArrayLike) -> Days:
    """The calendar of ``day`` (day indexes from ``start``)."""
    d = np.asarray(day, dtype=np.int64)
    absolute = (d + _epoch_day(start)).astype("datetime64[D]")
    months = absolute.astype("datetime64[M]")
    month_number = months.astype(np.int64)
    first = months.astype("datetime64[D]")
    next_first = (months + 1).astype("datetime64[D]")
    start_month = np.datetime64(start, "M").astype(np.int64)
    return Days(
        day=d,
        year=month_number // 12 + 1970,
        month=month_number % 12 + 1,
        day_of_month=(absolute - first).astype(np.int64) + 1,
        days_in_month=(next_first - first).astype(np.int64),
        weekday=(absolute.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday
        day_of_year=(absolute - absolute.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
        + 1,
        month_index=month_number - start_month,
    )


def month_start_day(start: date, month_index: npt.ArrayLike) -> IntArray:
    """The day index of the first day of world month ``month_index``."""
    m = np.asarray(month_index, dtype=np.int64) + np.datetime64(start, "M").astype(np.int64)
    first = m.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return np.asarray(first - _epoch_day(start), dtype=np.int64)


def last_payday(start: date, day: npt.ArrayLike, cycle: npt.ArrayLike, phase: npt.ArrayLike) -> IntArray:
    """The day index of the last payday on or before ``day``."""
    cal = days(start, day)
    c = np.broadcast_to(np.asarray(cycle, dtype=np.int64), cal.day.shape)
    ph = np.broadcast_to(np.asarray(phase, dtype=np.int64), cal.day.shape)
    d = cal.day
    weekly = d - (cal.weekday - ph) % 7
    biweekly = d - (d - ph) % 14
    semi = np.where(cal.day_of_month >= 15, d - (cal.day_of_month - 15), d - (cal.day_of_month - 1))
    monthly = np.where(cal.day_of_month == cal.days_in_month, d, d - cal.day_of_month)
    return np.asarray(np.choose(c, [weekly, biweekly, semi, monthly]), dtype=np.int64)


def next_payday(start: date, day: npt.ArrayLike, cycle: npt.ArrayLike, phase: npt.ArrayLike) -> IntArray:
    """The day index of the first payday on or after ``day``."""
    cal = days(start, day)
    c = np.broadcast_to(np.asarray(cycle, dtype=np.int64), cal.day.shape)
    ph = np.broadcast_to(np.asarray(phase, dtype=np.int64), cal.day.shape)
    d = cal.day
    weekly = d + (ph - cal.weekday) % 7
    biweekly = d + (ph - d) % 14
    dom, dim = cal.day_of_month, cal.days_in_month
    semi = np.where(dom == 1, d, np.where(dom <= 15, d + (15 - dom), d + (dim - dom + 1)))
    monthly = d + (dim - dom)
    return np.asarray(np.choose(c, [weekly, biweekly, semi, monthly]), dtype=np.int64)


def cycle_position(
    start: date, day: npt.ArrayLike, cycle: npt.ArrayLike, phase: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """How far ``day`` is through its pay cycle: 0 on payday, near 1 the day before the next."""
    last = last_payday(start, day, cycle, phase)
    following = next_payday(start, np.asarray(day, dtype=np.int64) + 1, cycle, phase)
    span = np.maximum(following - last, 1)
    return np.asarray((np.asarray(day, dtype=np.int64) - last) / span, dtype=np.float64)


def payday_between(
    start: date,
    after_day: npt.ArrayLike,
    through_day: npt.ArrayLike,
    cycle: npt.ArrayLike,
    phase: npt.ArrayLike,
) -> npt.NDArray[np.bool_]:
    """Whether a payday falls in ``(after_day, through_day]``."""
    last = last_payday(start, through_day, cycle, phase)
    return np.asarray(last > np.asarray(after_day, dtype=np.int64), dtype=np.bool_)
