"""The API in process (httpx.Client) over the test database, with a key per role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, func, select

from billing_core.api.app import create_app
from billing_core.api.inprocess import asgi_client
from billing_core.api.keys import Role
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.services.create_api_key import create_api_key


@pytest.fixture
def app(ctx: BillingContext) -> FastAPI:
    return create_app(ctx)


@pytest.fixture
def keys(ctx: BillingContext) -> dict[Role, str]:
    return {role: create_api_key(ctx, name=f"{role} key", role=role).key for role in Role}


@pytest.fixture
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with asgi_client(app) as test_client:
        yield test_client


class Api:
    """A client that calls as one role: ``api.post(path, json=..., key=...)``."""

    def __init__(self, client: httpx.Client, keys: dict[Role, str], role: Role = Role.ADMIN) -> None:
        self.client = client
        self.keys = keys
        self.role = role

    def as_(self, role: Role) -> Api:
        return Api(self.client, self.keys, role)

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[self.role]}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers())

    def post(self, path: str, json: Any = None, *, key: str | None = None) -> Any:
        return self.client.post(path, json=json, headers=self.headers(key))

    def ok(
        self, method: str, path: str, json: Any = None, *, expect: int | None = None, **params: Any
    ) -> Any:
        """Call and insist on success; returns the JSON body."""
        response = self.get(path, **params) if method == "GET" else self.post(path, json)
        expected = expect or (201 if method == "POST" and response.status_code == 201 else 200)
        assert response.status_code == expected, response.text
        return response.json()


@pytest.fixture
def api(client: httpx.Client, keys: dict[Role, str]) -> Api:
    return Api(client, keys)


def snapshot(engine: Engine) -> dict[str, Any]:
    """Row counts of every table and the audit head: what 'nothing written' is checked against."""
    with engine.connect() as conn:
        counts: dict[str, Any] = {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in t.metadata.sorted_tables
        }
        counts["head"] = tuple(
            conn.execute(select(t.outbox_head.c.last_seq, t.outbox_head.c.last_hash)).one()
        )
        counts["balances"] = conn.execute(select(func.sum(t.customers.c.balance_minor))).scalar_one()
    return counts
