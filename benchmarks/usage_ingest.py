"""Benchmark: usage events ingested per second, in batches and one by one over HTTP.

    uv run python benchmarks/usage_ingest.py --events 1000000

Builds fresh SQLite databases (in a temporary directory unless ``--db`` is given) with a
billable metric, ``--customers`` customers and an api key, and measures:

* ``bulk_events_per_s``: the ingestion use case in process (``ingest_usage``), ``--batch-size``
  events per call, on a database of its own;
* ``batch_events_per_s``: ``POST /v1/usage_events/batch`` over HTTP against ``recoup api`` (a
  real uvicorn server in its own process, on a free loopback port), ``--batch-size`` events per
  request, one request at a time over one keep-alive connection. In both, a share of every batch
  (``--duplicates``, 10% by default) repeats events of the batch before: they count as received
  and are removed (never recorded twice); the run checks that every distinct event was recorded
  exactly once;
* ``http_events_per_s``, ``http_p50_ms``, ``http_p99_ms``: ``POST /v1/usage_events`` on the same
  server (whose table now holds the batches' events), one event per request, ``--single``
  requests from one keep-alive connection, one after the other; latency is the time from sending
  a request to reading its answer;
* ``http_concurrent_events_per_s``, ``http_concurrent_p50_ms``, ``http_concurrent_p99_ms``: the
  same from ``--connections`` keep-alive connections at once (events that arrive together share
  a transaction on the server).

Event ids are time-ordered (as ULIDs or UUIDv7 are), events cycle over the customers, and
``occurred_at`` is ISO 8601 text with ``Z``, as a meter sends them.

Progress goes to stderr; the last line of stdout is one JSON object.

Targets on 2 cores: 100,000 events/s in batches; 1,000 single events/s with p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.services.create_api_key import create_api_key
from billing_core.services.create_billable_metric import create_billable_metric
from billing_core.services.ingest_usage import ingest_usage

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_customers(ctx: BillingContext, count: int) -> list[int]:
    with ctx.transaction() as tx:
        ids = tx.bulk.reserve_ids("customers", count)
        now = tx.bulk.instant(tx.now)
        tx.bulk.insert(
            "customers",
            ["id", "email", "name", "currency", "timezone", "country", "language", "balance_minor", "created_at", "updated_at"],
            [(i, f"meter{i}@example.com", f"Customer {i}", "USD", "UTC", "US", "en", 0, now, now) for i in ids],
        )  # fmt: skip
    return ids


def events(prefix: str, count: int, customers: list[int], start: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct events, as a JSON body carries them."""
    return [
        {
            "event_id": f"{prefix}_{start + i:010d}",
            "customer_id": customers[(start + i) % len(customers)],
            "metric_code": "api_calls",
            "occurred_at": (T0 + timedelta(milliseconds=start + i)).isoformat().replace("+00:00", "Z"),
            "value": 1 + (start + i) % 7,
        }
        for i in range(count)
    ]


def batches(
    prefix: str, total: int, size: int, duplicates: float, customers: list[int]
) -> list[list[dict[str, Any]]]:
    """Batches of ``size`` events of which a share repeats events of the batch before."""
    repeated = int(size * duplicates)
    out: list[list[dict[str, Any]]] = []
    sent, fresh_seen = 0, 0
    previous: list[dict[str, Any]] = []
    while sent < total:
        n = min(size, total - sent)
        dup = min(repeated, len(previous), n)
        batch = events(prefix, n - dup, customers, fresh_seen) + previous[:dup]
        fresh_seen += n - dup
        previous = batch
        out.append(batch)
        sent += n
    return out


def distinct(batches_: list[list[dict[str, Any]]]) -> int:
    return len({e["event_id"] for batch in batches_ for e in batch})


def count_rows(ctx: BillingContext, prefix: str) -> int:
    with ctx.read() as conn:
        return int(
            Bulk(conn).query(
                "SELECT COUNT(*) FROM usage_events WHERE substr(event_id, 1, ?) = ?",
                (len(prefix) + 1, f"{prefix}_"),
            )[0][0]
        )


def run_bulk(ctx: BillingContext, work: list[list[dict[str, Any]]]) -> tuple[float, int]:
    started = time.perf_counter()
    accepted = 0
    for index, batch in enumerate(work):
        accepted += ingest_usage(ctx, batch).accepted
        if index % 20 == 0:
            progress(f"bulk: {index + 1}/{len(work)} batches")
    return time.perf_counter() - started, accepted


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RECOUP_DATABASE_URL": database_url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recoup.cli",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the API server did not start")


def post(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def run_http_batches(port: int, key: str, work: list[list[dict[str, Any]]]) -> tuple[float, int, int]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [orjson.dumps({"events": batch}) for batch in work]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    accepted = duplicates = 0
    started = time.perf_counter()
    for index, body in enumerate(bodies):
        status, answer = post(conn, "/v1/usage_events/batch", body, headers)
        if status != 200:
            raise RuntimeError(f"batch {index}: {status} {answer[:300]!r}")
        result = orjson.loads(answer)
        accepted += result["accepted"]
        duplicates += result["duplicates"]
        if index % 20 == 0:
            progress(f"http batches: {index + 1}/{len(bodies)}")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, accepted, duplicates


def run_http_single(
    port: int, key: str, work: list[dict[str, Any]], connections: int = 1
) -> tuple[float, list[float]]:
    """Send each event in its own request, from ``connections`` keep-alive connections at once."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [orjson.dumps(event) for event in work]
    shares = [bodies[i::connections] for i in range(connections)]
    latencies: list[float] = []
    failures: list[str] = []
    ready = threading.Barrier(connections + 1)

    def client(share: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/healthz")  # open the connection outside the timing
        conn.getresponse().read()
        ready.wait()
        mine = []
        for index, body in enumerate(share):
            sent = time.perf_counter()
            status, answer = post(conn, "/v1/usage_events", body, headers)
            mine.append(time.perf_counter() - sent)
            if status != 200:
                failures.append(f"{status} {answer[:300]!r}")
                break
            if connections == 1 and index % 2000 == 0:
                progress(f"http single: {index + 1}/{len(share)}")
        latencies.extend(mine)
        conn.close()

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"single events: {failures[0]}")
    return elapsed, latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def fresh_database(path: Path, customers: int) -> tuple[str, BillingContext, list[int], str]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    upgrade(engine)
    ctx = BillingContext(engine, clock=FrozenClock(T0 + timedelta(days=1)))
    create_billable_metric(ctx, code="api_calls", name="API calls", aggregation="sum")
    ids = make_customers(ctx, customers)
    key = create_api_key(ctx, name="usage benchmark", role="service").key
    return url, ctx, ids, key


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events sent in batches (each path)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="events per batch (at most 10,000)")
    parser.add_argument(
        "--single",
        type=int,
        default=None,
        help="single events over HTTP (default: events/50, 2,000 to 20,000)",
    )
    parser.add_argument(
        "--connections", type=int, default=4, help="connections of the concurrent single-event run"
    )
    parser.add_argument(
        "--duplicates", type=float, default=0.1, help="share of each batch that repeats earlier events"
    )
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temp dir)")
    args = parser.parse_args()
    single = args.single if args.single is not None else max(2_000, min(20_000, args.events // 50))

    with tempfile.TemporaryDirectory(prefix="recoup-usage-bench-") as tmp:
        base = args.db or Path(tmp) / "usage.db"
        _, bulk_ctx, customers, _ = fresh_database(base.with_name(base.stem + "-bulk.db"), args.customers)
        progress(f"bulk database ready: {args.customers} customers")
        bulk_work = batches("bulk", args.events, args.batch_size, args.duplicates, customers)
        bulk_seconds, bulk_accepted = run_bulk(bulk_ctx, bulk_work)
        bulk_distinct = distinct(bulk_work)
        assert bulk_accepted == bulk_distinct == count_rows(bulk_ctx, "bulk"), "bulk: events lost or doubled"
        bulk_ctx.engine.dispose()
        del bulk_work

        url, ctx, customers, key = fresh_database(base, args.customers)
        progress(f"http database ready: {args.customers} customers")
        port = free_port()
        server = start_server(url, port)
        try:
            http_work = batches("http", args.events, args.batch_size, args.duplicates, customers)
            batch_seconds, batch_accepted, batch_duplicates = run_http_batches(port, key, http_work)
            batch_distinct = distinct(http_work)
            assert batch_accepted == batch_distinct == count_rows(ctx, "http"), "http: events lost or doubled"
            del http_work
            single_seconds, latencies = run_http_single(port, key, events("one", single, customers))
            assert count_rows(ctx, "one") == single, "single: events lost or doubled"
            progress(f"http single from {args.connections} connections")
            many_seconds, many_latencies = run_http_single(
                port, key, events("many", single, customers), args.connections
            )
            assert count_rows(ctx, "many") == single, "concurrent single: events lost or doubled"
        finally:
            server.terminate()
            server.wait(timeout=30)
        ctx.engine.dispose()

    report = {
        "database": "sqlite",
        "events": args.events,
        "batch_size": args.batch_size,
        "duplicate_share": args.duplicates,
        "customers": args.customers,
        "bulk_events_per_s": round(args.events / bulk_seconds),
        "bulk_events_recorded": bulk_accepted,
        "batch_events_per_s": round(args.events / batch_seconds),
        "batch_events_recorded": batch_accepted,
        "batch_duplicates_removed": batch_duplicates,
        "http_events": single,
        "http_events_per_s": round(single / single_seconds),
        "http_p50_ms": round(statistics.median(latencies) * 1000, 3),
        "http_p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "http_concurrent_connections": args.connections,
        "http_concurrent_events_per_s": round(single / many_seconds),
        "http_concurrent_p50_ms": round(statistics.median(many_latencies) * 1000, 3),
        "http_concurrent_p99_ms": round(percentile(many_latencies, 0.99) * 1000, 3),
        "targets": {"batch_events_per_s": 100_000, "http_events_per_s": 1_000, "http_p99_ms": 20},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
