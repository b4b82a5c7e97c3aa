"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when configured).

Every test that takes ``engine`` (or ``ctx``) runs on a fresh SQLite file copied from a template
migrated once per session, and again on PostgreSQL when ``RECOUP_TEST_POSTGRES_URL`` points at a
server (for example ``postgresql+psycopg://postgres@127.0.0.1:5432/test``): the suite creates its
own database there, migrates it once, and empties it between tests.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.db.schema import metadata
from billing_core.payments import ScriptedGateway

POSTGRES_URL = os.environ.get("RECOUP_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway database on the configured server, migrated once."""
    if not POSTGRES_URL:
        pytest.skip("RECOUP_TEST_POSTGRES_URL is not set")
    name = f"recoup_test_{uuid.uuid4().hex[:10]}"
    admin = sa_create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
    engine = create_engine(url.render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _empty_postgres(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(
            text("INSERT INTO outbox_head (id, last_seq, last_hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
        )


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, migrated database: SQLite, then PostgreSQL when configured."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "recoup.db"
        shutil.copy(template, path)
        for suffix in ("-wal", "-shm"):
            if Path(f"{template}{suffix}").exists():
                shutil.copy(f"{template}{suffix}", f"{path}{suffix}")
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    _empty_postgres(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def gateway() -> ScriptedGateway:
    return ScriptedGateway()


@pytest.fixture
def ctx(engine: Engine, clock: FrozenClock, gateway: ScriptedGateway) -> BillingContext:
    return BillingContext(engine, clock=clock, gateway=gateway)
