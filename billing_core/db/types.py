"""Column types that keep instants in UTC and decimals exact on every database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: how instants are written to SQLite; the bulk paths write the same text
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class UTCDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC instant: ``timestamptz`` on PostgreSQL, ISO text on SQLite.

    Naive datetimes are refused on the way in; everything comes out tz-aware in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} stored; use a tz-aware UTC instant")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal stored as text, identical on SQLite and PostgreSQL."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return format(Decimal(value), "f")

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def sqlite_instant(value: datetime) -> str:
    """The text SQLite columns of :class:`UTCDateTime` hold for ``value`` (``SQLITE_DATETIME_FORMAT``)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def parse_instant_column(value: datetime | str) -> datetime:
    """A value read from a :class:`UTCDateTime` column by a raw (driver-level) query."""
    if isinstance(value, str):
        if len(value) in (19, 26):  # SQLite's text has no offset: it is UTC
            return datetime.fromisoformat(value + "+00:00")  # 6x faster than .replace(tzinfo=UTC)
        return datetime.fromisoformat(value).astimezone(UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class InstantTexts(dict[datetime | None, str | None]):
    """Instants as SQLite text, each formatted once: ``texts[value]`` (``None`` stays ``None``).

    Formatting an aware datetime costs about a microsecond, a lookup 40 ns; the rows of a billing
    chunk repeat the same instants (a period's end is the next one's start, ``now`` is everywhere).
    :class:`ParsedInstants` fills it with the text each instant was read from.
    """

    def __missing__(self, value: datetime | None) -> str | None:
        text = None if value is None else sqlite_instant(value)
        self[value] = text
        return text


class ParsedInstants(dict[Any, datetime | None]):
    """Values read from :class:`UTCDateTime` columns, each parsed once: ``parsed[raw]``."""

    def __init__(self, texts: InstantTexts | None = None) -> None:
        super().__init__()
        self.texts = texts

    def __missing__(self, raw: Any) -> datetime | None:
        value = None if raw is None else parse_instant_column(raw)
        self[raw] = value
        if self.texts is not None and isinstance(raw, str) and value is not None:
            self.texts[value] = raw
        return value
