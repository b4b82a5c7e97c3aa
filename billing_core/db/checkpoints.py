"""Checkpoints off the writer's path, for long bulk jobs on SQLite.

In WAL mode a commit only appends pages to the log; once the log holds ``wal_autocheckpoint``
pages, the committing connection also copies them into the database file and syncs it (a
*checkpoint*), inside the job's own time. :func:`background_checkpoints` runs passive
checkpoints from a thread with its own connection while a job works, so that the job's commits
mostly just append: SQLite releases the GIL while it copies and syncs, and a writer that finds
the log fully copied starts it again from the top. The commit-time checkpoint stays as the
fallback (a long reader can pin the log, and a passive checkpoint never waits for it).

Forking while a thread is inside SQLite can leave the child with SQLite's locks held, so a fork
(the billing run's helper process) waits until the checkpoint in progress has finished.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

_INSIDE_SQLITE = threading.Lock()  # held by a checkpoint thread while it works; taken by fork
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_INSIDE_SQLITE.acquire,
        after_in_parent=_INSIDE_SQLITE.release,
        after_in_child=_INSIDE_SQLITE.release,
    )


@contextmanager
def background_checkpoints(engine: Engine, *, every_seconds: float = 0.5) -> Iterator[None]:
    """Checkpoint ``engine``'s database from a thread every ``every_seconds`` while inside."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=_checkpoint_until, args=(path, stop, every_seconds), name="recoup-checkpoints", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _checkpoint_until(path: str, stop: threading.Event, every_seconds: float) -> None:
    connection = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        while not stop.wait(every_seconds):
            with _INSIDE_SQLITE:
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.OperationalError:  # another checkpoint is running: try again later
                    continue
    finally:
        with _INSIDE_SQLITE:
            connection.close()
