"""Helpers for the runner's tests: table digests, fresh databases, small runs."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.engine import create_engine
from billing_core.db.schema import metadata
from billing_core.simulation.runner import RunConfig, RunSummary, run_world
from billing_core.simulation.truth import TruthStore
from tests.conftest import _empty_postgres


def rows(engine: Engine, table: str, columns: str = "*", where: str = "") -> list[tuple[Any, ...]]:
    """Every row of ``table`` in primary-key order."""
    keys = ", ".join(c.name for c in metadata.tables[table].primary_key.columns)
    with engine.connect() as conn:
        return Bulk(conn).query(f"SELECT {columns} FROM {table} {where} ORDER BY {keys}")


def digests(engine: Engine) -> dict[str, str]:
    """A hash of every table's rows (in primary-key order)."""
    out = {}
    for table in metadata.sorted_tables:
        if not table.primary_key.columns:
            continue
        out[table.name] = hashlib.sha256(repr(rows(engine, table.name)).encode()).hexdigest()
    return out


def reset(engine: Engine, request: pytest.FixtureRequest) -> None:
    """Empty the test's database, back to freshly migrated (SQLite: the template again)."""
    if engine.dialect.name == "sqlite":
        engine.dispose()
        template: Path = request.getfixturevalue("sqlite_template")
        target = Path(str(engine.url.database))
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copy(template, target)
        for suffix in ("-wal", "-shm"):
            if Path(f"{template}{suffix}").exists():
                shutil.copy(f"{template}{suffix}", f"{target}{suffix}")
    else:
        _empty_postgres(engine)


@dataclass
class Run:
    engine: Engine
    truth: TruthStore
    summary: RunSummary
    config: RunConfig


def simulate(engine: Engine, config: RunConfig, truth_dir: Path) -> Run:
    start = datetime.combine(config.world().start, datetime.min.time(), tzinfo=UTC)
    ctx = BillingContext(engine, clock=FrozenClock(start))
    truth = TruthStore(truth_dir)
    summary = run_world(ctx, config, truth)
    return Run(engine, truth, summary, config)


def fresh_sqlite(template: Path, folder: Path, name: str) -> Engine:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.db"
    shutil.copy(template, path)
    for suffix in ("-wal", "-shm"):
        if Path(f"{template}{suffix}").exists():
            shutil.copy(f"{template}{suffix}", f"{path}{suffix}")
    return create_engine(f"sqlite:///{path}")


def truth_table(run: Run, table: str) -> list[dict[str, Any]]:
    return run.truth.read(table).to_pylist()
