"""``recoup api`` serves the API with uvicorn: a real server on a loopback port, over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from billing_core.context import BillingContext
from billing_core.services.create_api_key import create_api_key
from billing_core.services.create_billable_metric import create_billable_metric

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "RECOUP_DATABASE_URL": database_url, "RECOUP_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "recoup.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,  # no stray .env
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"recoup api did not start:\n{output}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_recoup_api_serves_over_http(server: str, ctx: BillingContext) -> None:
    key = create_api_key(ctx, name="over http", role="service").key
    create_billable_metric(ctx, code="api_calls", name="API calls", aggregation="sum")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server, headers=headers, timeout=10) as client:
        created = client.post(
            "/v1/customers",
            json={"email": "http@example.com", "name": "Over HTTP", "currency": "JPY"},
            headers={"Idempotency-Key": "http-1"},
        )
        assert created.status_code == 201, created.text
        customer = created.json()
        again = client.post(
            "/v1/customers",
            json={"email": "http@example.com", "name": "Over HTTP", "currency": "JPY"},
            headers={"Idempotency-Key": "http-1"},
        )
        assert again.json() == customer
        assert again.headers["idempotent-replayed"] == "true"
        event = {
            "event_id": "over-http-1",
            "customer_id": customer["id"],
            "metric_code": "api_calls",
            "occurred_at": "2026-01-01T09:00:00+09:00",
        }
        for _ in range(3):  # one keep-alive connection
            assert client.post("/v1/usage_events", json=event).status_code == 200
        listed = client.get("/v1/usage_events", params={"customer_id": customer["id"]}).json()
        assert [(e["event_id"], e["occurred_at"]) for e in listed["data"]] == [
            ("over-http-1", "2026-01-01T00:00:00Z")
        ]
        assert client.get(f"/v1/customers/{customer['id']}").json()["currency"] == "JPY"
        assert client.post("/v1/refunds", json={"payment_id": 1}).status_code == 403
        schema = client.get("/openapi.json").json()
        assert "/v1/usage_events/batch" in schema["paths"]
    assert httpx.get(f"{server}/v1/customers").status_code == 401
