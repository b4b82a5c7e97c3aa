"""Background checkpoints: the log reaches the database file without the writer copying it."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

from billing_core.db.checkpoints import background_checkpoints
from billing_core.db.engine import create_engine


def _count_rows(path: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    connection = sqlite3.connect(path)
    results.put(connection.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    connection.close()


def test_commits_are_copied_into_the_database_file_by_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
    size_before = path.stat().st_size
    with background_checkpoints(engine, every_seconds=0.02):
        with engine.begin() as conn:  # 2 MB: far below the commit-time checkpoint's 160 MiB
            conn.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
                " INSERT INTO t (payload) SELECT printf('%.1000c', 'x') FROM n"
            )
        deadline = time.monotonic() + 10
        while path.stat().st_size < size_before + 2_000_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size >= size_before + 2_000_000, "the log was not copied into the database"
        # a process forked meanwhile (the billing run's helper) uses SQLite normally
        results: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()  # type: ignore[type-arg]
        child = multiprocessing.get_context("fork").Process(target=_count_rows, args=(str(path), results))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == 0
        assert results.get(timeout=5) == 2000
    engine.dispose()


def test_a_database_in_memory_gets_no_thread() -> None:
    engine = create_engine("sqlite://")
    with background_checkpoints(engine), engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        assert "recoup-checkpoints" not in {thread.name for thread in threading.enumerate()}
    engine.dispose()


def test_the_thread_stops_with_the_job(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with background_checkpoints(engine, every_seconds=0.01):
        assert "recoup-checkpoints" in {thread.name for thread in threading.enumerate()}
    assert "recoup-checkpoints" not in {thread.name for thread in threading.enumerate()}
    engine.dispose()
