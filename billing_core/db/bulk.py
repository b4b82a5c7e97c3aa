"""Set-based reads and writes at driver level, for paths that move millions of rows.

The billing run, the book generator and bulk usage ingestion write through here rather than
through SQLAlchemy's per-row machinery: ``executemany`` on SQLite, ``COPY`` on PostgreSQL, inside
the caller's transaction (the same DBAPI connection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from billing_core.db.types import InstantTexts, sqlite_instant


class Bulk:
    """Driver-level access to the connection of an open SQLAlchemy transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self.raw: Any = conn.connection.driver_connection

    # -- values ----------------------------------------------------------------------------
    def instant(self, value: datetime | None) -> Any:
        """An instant as the driver wants it for a ``UTCDateTime`` column."""
        if value is None:
            return None
        if self.sqlite:
            return sqlite_instant(value)
        return value.astimezone(UTC)

    def instant_formatter(self, texts: InstantTexts | None = None) -> Any:
        """A fast converter for many instants (UTC datetimes to the driver's form).

        On SQLite it remembers every instant it formatted (in ``texts``, when given, to share it).
        """
        if not self.sqlite:
            return self.instant
        return (texts if texts is not None else InstantTexts()).__getitem__

    def boolean(self, value: bool) -> Any:
        return int(value) if self.sqlite else value

    # -- statements --------------------------------------------------------------------------
    def sql(self, statement: str) -> str:
        """Translate ``?`` placeholders to the driver's style."""
        return statement if self.sqlite else statement.replace("?", "%s")

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self.sql(statement), tuple(params))
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self.sql(statement), tuple(params))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        cursor = self.raw.cursor()
        try:
            cursor.executemany(self.sql(statement), rows)
        finally:
            cursor.close()

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows: ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        names = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            self.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            return
        cursor = self.raw.cursor()
        try:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def reserve_ids(self, table: str, count: int) -> list[int]:
        """``count`` fresh primary keys for ``table``, never handed out again.

        SQLite tables are ``AUTOINCREMENT``: the block is reserved by moving the table's counter
        in ``sqlite_sequence``, so ordinary inserts elsewhere land after it. PostgreSQL draws
        from the table's sequence. Either way the caller may fill the block later, outside the
        transaction that reserved it.
        """
        if count <= 0:
            return []
        if self.sqlite:
            self.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?, 0"
                " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                (table, table),
            )
            (last,) = self.query(
                f"UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(id), 0) FROM {table})) + ?"
                " WHERE name = ? RETURNING seq",
                (count, table),
            )[0]
            return list(range(last - count + 1, last + 1))
        # the lock an INSERT would take, taken now: a reader that locks the table in SHARE mode
        # (the lake export) waits for this transaction, so ids never become visible out of order
        # when they are reserved and inserted in the same transaction
        self.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
        rows = self.query(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, ?)",
            (count,),
        )
        return [row[0] for row in rows]

    def temp_ids(self, name: str, ids: Iterable[int]) -> str:
        """A temporary one-column table of ids, to join against; returns its name."""
        self.execute(f"DROP TABLE IF EXISTS {name}")
        if self.sqlite:
            self.execute(f"CREATE TEMP TABLE {name} (id INTEGER PRIMARY KEY)")
        else:
            self.execute(f"CREATE TEMP TABLE {name} (id BIGINT PRIMARY KEY) ON COMMIT DROP")
        self.insert(name, ["id"], [(i,) for i in ids])
        return name
