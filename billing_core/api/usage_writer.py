"""One writer thread per server for usage: requests that arrive together share a transaction.

Recording one usage event costs little; committing it costs most (on SQLite every commit writes
each page it touched, six or so for one event). Requests that wait for the writer while it
commits are written together by its next transaction (group commit), and each request is
answered once the transaction holding its events has committed: nothing is acknowledged before
it is durable.

The writer also checks each job's events before writing them. Checking them in the request's
own thread instead would overlap with the writer's work, but one process runs Python on one core
at a time: a checking thread holding the interpreter delays every row the writer inserts, and
the overlap measured slower than checking in turn. A job that fails its checks is answered with
its error and written by no one. If a shared transaction fails (an unknown customer in one job,
an id reused with another payload), its jobs are written again one by one, and each request gets
its own answer, with its own field names.

The thread starts with the first job and stops after a second without work; it holds no state
between transactions.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from billing_core.context import BillingContext
from billing_core.errors import RecoupError
from billing_core.services.ingest_usage import PreparedUsage, merge_prepared, prepare_usage, write_usage
from billing_core.services.record_usage import UsageBatchResult

IDLE_SECONDS = 1.0


Events = Sequence[Mapping[str, Any]]


@dataclass
class _Job:
    events: Events | Callable[[], Events]  # the events, or how to read them (a request's body)
    field_prefix: str
    answer: Future[UsageBatchResult]
    prepared: PreparedUsage | None = None


class UsageWriter:
    """Writes queued usage jobs, merging those that wait together up to ``max_rows`` events."""

    def __init__(self, ctx: BillingContext, *, max_rows: int = 20_000) -> None:
        self.ctx = ctx
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, events: Events | Callable[[], Events], *, field_prefix: str) -> Future[UsageBatchResult]:
        """Queue events for writing; the future holds the counts, or the error naming a culprit.

        ``events`` may be a function that reads them (parsing a request's body): the writer calls
        it in turn, so that no other thread competes with it for the interpreter while it writes.
        """
        job = _Job(events, field_prefix, Future())
        with self._lock:
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
                self._thread.start()
        return job.answer

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            jobs = [first] if self._prepare(first) else []
            rows = sum(len(job.prepared or ()) for job in jobs)
            while rows < self.max_rows:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if self._prepare(job):
                    jobs.append(job)
                    rows += len(job.prepared or ())
            if jobs:
                self._write(jobs)

    def _prepare(self, job: _Job) -> bool:
        try:
            events = job.events() if callable(job.events) else job.events
            job.prepared = prepare_usage(self.ctx, events, field_prefix=job.field_prefix)
        except BaseException as error:
            job.answer.set_exception(error)
            return False
        return True

    def _write(self, jobs: list[_Job]) -> None:
        batches = [job.prepared for job in jobs if job.prepared is not None]
        if len(batches) > 1:
            try:
                merged = merge_prepared(batches)
                _, fresh = write_usage(self.ctx, merged)
            except RecoupError:
                pass  # one job spoils the transaction: write them one by one below
            except BaseException as error:  # a bug, or the database is gone: every job hears of it
                for job in jobs:
                    job.answer.set_exception(error)
                return
            else:
                for job, result in zip(jobs, _shares(jobs, fresh), strict=True):
                    job.answer.set_result(result)
                return
        for job, prepared in zip(jobs, batches, strict=True):
            try:
                result, _ = write_usage(self.ctx, prepared)
            except BaseException as error:
                job.answer.set_exception(error)
            else:
                job.answer.set_result(result)


def _shares(jobs: list[_Job], fresh: set[str]) -> list[UsageBatchResult]:
    """Each job's counts, as if the jobs had been written one after the other in their order."""
    seen: set[str] = set()
    results = []
    for job in jobs:
        accepted = 0
        rows = job.prepared.rows if job.prepared is not None else []
        for row in rows:
            event_id = row[0]
            if event_id in fresh and event_id not in seen:
                accepted += 1
            seen.add(event_id)
        received = len(rows)
        results.append(UsageBatchResult(received, accepted, received - accepted))
    return results
