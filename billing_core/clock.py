"""Time: every instant is a tz-aware UTC ``datetime``, and "now" comes from an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing_core.errors import InvalidInput


class Clock(Protocol):
    """Where behaviour depends on the date, the current time comes from a Clock."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until told to move: for tests and replays."""

    def __init__(self, at: datetime) -> None:
        self._now = utc(at, "at")

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = utc(at, "at")

    def advance(self, delta: timedelta) -> datetime:
        self._now = self._now + delta
        return self._now


def utc(value: object, field: str) -> datetime:
    """Validate a tz-aware datetime and return it in UTC; naive datetimes are refused."""
    if not isinstance(value, datetime):
        raise InvalidInput(field, "a tz-aware datetime", value)
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidInput(field, "a tz-aware datetime (naive datetimes are ambiguous)", value.isoformat())
    return value.astimezone(UTC)


def parse_instant(value: str, field: str) -> datetime:
    """Parse ``2026-03-01`` (midnight UTC) or an ISO 8601 instant with an offset."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(field, "an ISO 8601 date or instant such as 2026-03-01", value) from exc
    if parsed.tzinfo is None:
        if len(value) == 10:
            return parsed.replace(tzinfo=UTC)
        raise InvalidInput(field, "an instant with a UTC offset, such as 2026-03-01T00:00:00Z", value)
    return parsed.astimezone(UTC)


def zone(name: object, field: str = "timezone") -> ZoneInfo:
    """An IANA time zone such as ``Europe/Berlin``."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(field, "an IANA time zone name such as 'Europe/Berlin'", name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(field, "an IANA time zone name such as 'Europe/Berlin'", name) from exc
