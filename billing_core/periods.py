"""Billing periods and proration, computed on the customer's own calendar.

A subscription renews on its anchor: the same local wall-clock time on the same day of the month
in the customer's time zone, every ``months_per_period`` months. A day that a month lacks is
clamped (an anchor on the 31st renews on 28 or 29 February, then on 31 March again), and the
boundary stays at local midnight across daylight-saving changes.

Period ``n`` is ``[boundary(n), boundary(n + 1))`` where ``boundary(n)`` is the anchor moved by
``n`` periods, never earlier than the moment the subscription started. When the anchor lies after
the start (a customer whose invoices all go out on the 1st, or a trial that ends later), period
``-1`` is the short first period from the start to the anchor.

Proration counts whole days on the customer's calendar: a change made on a given local day is
charged at the new price from that day on. The unused part of an amount is rounded once;
the used part is its complement, so a split period never loses or invents a minor unit.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from fractions import Fraction
from functools import lru_cache
from zoneinfo import ZoneInfo

from billing_core.clock import zone
from billing_core.errors import InvalidInput
from billing_core.money import round_minor


@lru_cache(maxsize=65536)
def add_months(start: date, months: int, anchor_day: int) -> date:
    """``start`` moved by ``months`` months, on ``anchor_day`` clamped to the month's length."""
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor_day, last))


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return zone(name)


@lru_cache(maxsize=262144)
def to_utc(local_day: date, wall: time, tz_name: str) -> datetime:
    """A local wall-clock moment in ``tz_name`` as a UTC instant."""
    return datetime.combine(local_day, wall, tzinfo=_zone(tz_name)).astimezone(UTC)


def local_date(instant: datetime, tz_name: str) -> date:
    return instant.astimezone(_zone(tz_name)).date()


class Schedule:
    """The renewal schedule of a subscription: anchor, time zone and period length."""

    __slots__ = ("_anchor_day", "_anchor_wall", "anchor_at", "months_per_period", "started_at", "tz_name")

    def __init__(
        self, anchor_at: datetime, tz_name: str, months_per_period: int, started_at: datetime
    ) -> None:
        if months_per_period < 1:
            raise InvalidInput("months_per_period", "an integer >= 1", months_per_period)
        if started_at > anchor_at:
            raise InvalidInput("anchor_at", f"an instant at or after {started_at}", anchor_at)
        self.anchor_at = anchor_at
        self.tz_name = tz_name
        self.months_per_period = months_per_period
        self.started_at = started_at
        local = anchor_at.astimezone(_zone(tz_name))
        self._anchor_day = local.date()
        self._anchor_wall = local.time().replace(tzinfo=None)

    def _local_start(self, n: int) -> date:
        return add_months(self._anchor_day, n * self.months_per_period, self._anchor_day.day)

    def boundary(self, n: int) -> datetime:
        """Start of period ``n`` (period 0 starts at the anchor)."""
        return max(self.started_at, to_utc(self._local_start(n), self._anchor_wall, self.tz_name))

    def period(self, n: int) -> tuple[datetime, datetime]:
        return self.boundary(n), self.boundary(n + 1)

    def full_period_days(self, n: int) -> int:
        """Length in local days of period ``n`` had it not been cut short by the start."""
        return (self._local_start(n + 1) - self._local_start(n)).days

    def is_cut_short(self, n: int) -> bool:
        """Does the start fall after where period ``n`` would have begun?"""
        return self.started_at > to_utc(self._local_start(n), self._anchor_wall, self.tz_name)


def first_anchor(
    started_at: datetime, tz_name: str, anchor_day: int | None, trial_end: datetime | None
) -> datetime:
    """Where period 0 begins: the trial end, else the next ``anchor_day``, else the start."""
    if trial_end is not None:
        return trial_end
    if anchor_day is None:
        return started_at
    if not 1 <= anchor_day <= 31:
        raise InvalidInput("billing_anchor_day", "a day of the month between 1 and 31", anchor_day)
    local = started_at.astimezone(_zone(tz_name))
    candidate_day = add_months(local.date().replace(day=1), 0, anchor_day)
    midnight = time(0, 0)
    candidate = to_utc(candidate_day, midnight, tz_name)
    if candidate < started_at:
        candidate = to_utc(add_months(local.date().replace(day=1), 1, anchor_day), midnight, tz_name)
    return candidate


def days_between(start: datetime, end: datetime, tz_name: str) -> int:
    """Whole local days from ``start``'s day to ``end``'s day in the customer's time zone."""
    return (local_date(end, tz_name) - local_date(start, tz_name)).days


def unused_part(amount_minor: int, remaining_days: int, total_days: int) -> int:
    """The share of ``amount_minor`` for ``remaining_days`` of ``total_days``, rounded once."""
    if total_days <= 0:
        raise InvalidInput("total_days", "a period of at least one day", total_days)
    if not 0 <= remaining_days <= total_days:
        raise InvalidInput("remaining_days", f"between 0 and {total_days}", remaining_days)
    return round_minor(Fraction(amount_minor) * remaining_days / total_days)


@dataclass(frozen=True, slots=True)
class Proration:
    """A mid-period change: the credit for unused time on the old price, the new price's charge."""

    remaining_days: int
    total_days: int
    credit_minor: int  # <= 0: unused time on the old price
    charge_minor: int  # >= 0: remaining time on the new price

    @property
    def net_minor(self) -> int:
        return self.charge_minor + self.credit_minor


def prorate_change(
    *,
    old_amount_minor: int,
    new_amount_minor: int,
    period_start: datetime,
    period_end: datetime,
    change_at: datetime,
    tz_name: str,
) -> Proration:
    """Proration of a plan change at ``change_at`` inside ``[period_start, period_end)``."""
    if not period_start <= change_at < period_end:
        raise InvalidInput(
            "change_at", f"an instant in the current period [{period_start}, {period_end})", change_at
        )
    total = days_between(period_start, period_end, tz_name)
    remaining = days_between(change_at, period_end, tz_name)
    remaining = max(0, min(remaining, total))
    return Proration(
        remaining_days=remaining,
        total_days=total,
        credit_minor=-unused_part(old_amount_minor, remaining, total),
        charge_minor=unused_part(new_amount_minor, remaining, total),
    )
