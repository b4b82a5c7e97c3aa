"""Database engines: SQLite (WAL, foreign keys on) by default, PostgreSQL at scale.

SQLite transactions begin with ``BEGIN IMMEDIATE``: a writer takes the database's write lock at
the start, so that two processes never both read a state and then both act on it (two billing
runs at once, say). Readers are not blocked in WAL mode. Pass ``execution_options(read_only=True)``
to begin a plain deferred transaction that does not take the lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as _create_engine
from sqlalchemy.engine import make_url


def create_engine(url: str, *, echo: bool = False, **kwargs: Any) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create_engine(
            url,
            echo=echo,
            connect_args={"timeout": 60, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return _create_engine(
        parsed, echo=echo, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"}, **kwargs
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy (below) issue BEGIN itself, so that it can be BEGIN IMMEDIATE
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # a new database gets 16 KiB pages: bulk runs append gigabytes, and every page written
        # is a system call (twice: into the WAL, then into the database at checkpoint)
        cursor.execute("PRAGMA page_size=16384")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # checkpoint every 160 MiB of WAL rather than 16: bulk writers (billing runs, usage batches)
        # commit tens of megabytes at a time and would otherwise checkpoint and sync at every commit
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB
        cursor.execute("PRAGMA mmap_size=8589934592")  # read pages through the OS cache, not copies
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(engine_or_connection: Any) -> bool:
    return bool(engine_or_connection.dialect.name == "sqlite")


def default_sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'recoup.db').resolve()}"
