"""Authentication and roles: every route x every role, and the keys' life from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select
from typer.testing import CliRunner

from billing_core.api.app import create_app
from billing_core.api.auth import declared_roles
from billing_core.api.inprocess import asgi_client
from billing_core.api.keys import Role
from billing_core.context import BillingContext
from billing_core.db.schema_api import api_keys
from recoup.cli import app as cli
from tests.api.conftest import Api


def declarations(route: APIRoute) -> list[Any]:
    """The role (or public) declarations among a route's dependencies, however deep."""
    found = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        call = dependency.call
        if declared_roles(call) is not None or getattr(call, "public", False):
            found.append(call)
        stack.extend(dependency.dependencies)
    return found


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every API route with its full path (routers included under a prefix are walked)."""
    return [
        (str(context.path), context.original_route)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def concrete_path(path: str, route: APIRoute) -> str:
    for param in route.dependant.path_params:
        path = path.replace("{" + param.name + "}", "api_calls" if param.name == "code" else "1")
    return path


def test_every_route_declares_who_may_call_it(app: FastAPI) -> None:
    routes = api_routes(app)
    assert len(routes) > 50
    for path, route in routes:
        found = declarations(route)
        assert len(found) == 1, f"{route.methods} {path} declares {len(found)} role sets"
        call = found[0]
        if getattr(call, "public", False):
            assert path == "/healthz"
            continue
        roles = declared_roles(call)
        assert roles is not None
        assert Role.ADMIN in roles
        # every POST takes an Idempotency-Key; reads do not
        assert call.writes == ("POST" in route.methods), path


def test_the_roles_are_what_the_docs_say(app: FastAPI) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    for path, route in api_routes(app):
        (call,) = declarations(route)
        roles = declared_roles(call)
        if roles is None:
            continue
        method = sorted(route.methods)[0]
        if method == "GET" and not path.startswith("/v1/api_keys"):
            assert roles == {Role.SERVICE, Role.FINANCE, Role.ANALYST, Role.ADMIN}, path
        if method == "POST":
            assert Role.ANALYST not in roles, f"analysts only read, yet may POST {path}"
        row = f"| `{method} {path}` | " + ", ".join(r.value for r in Role if r in roles) + " |"
        assert row in docs, f"docs/api.md lacks the row {row}"


def test_every_route_with_every_role(client: httpx.Client, app: FastAPI, keys: dict[Role, str]) -> None:
    checked = 0
    for template, route in api_routes(app):
        (call,) = declarations(route)
        roles = declared_roles(call)
        if roles is None:
            continue
        method = sorted(route.methods)[0]
        path = concrete_path(template, route)
        body = {} if method == "POST" else None
        anonymous = client.request(method, path, json=body)
        assert anonymous.status_code == 401, f"{method} {path} without a key: {anonymous.status_code}"
        assert anonymous.json()["error"]["code"] == "unauthenticated"
        assert anonymous.headers["www-authenticate"] == "Bearer"
        for role in Role:
            response = client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {keys[role]}"}
            )
            if role in roles:
                assert response.status_code not in (401, 403), f"{role} on {method} {path}: {response.text}"
            else:
                assert response.status_code == 403, f"{role} on {method} {path}: {response.status_code}"
                error = response.json()["error"]
                assert (error["code"], error["got"]) == ("forbidden", role.value)
            checked += 1
    assert checked > 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer rk_1",
        "Bearer rk_x_secret",
        "Bearer rk_999999_secret",
        "Bearer rk_99999999999999999999_secret",
        "Bearer sk_1_secret",
        "Bearer " + "x" * 5000,
    ],
)
def test_malformed_and_unknown_keys_are_401(client: httpx.Client, keys: dict[Role, str], header: str) -> None:
    response = client.get("/v1/customers", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["field"] == "Authorization"


def test_a_wrong_secret_is_401(client: httpx.Client, keys: dict[Role, str]) -> None:
    key_id = keys[Role.ADMIN].split("_")[1]
    response = client.get("/v1/customers", headers={"Authorization": f"Bearer rk_{key_id}_not-the-secret"})
    assert response.status_code == 401


def test_only_the_hash_of_the_secret_is_stored(ctx: BillingContext, keys: dict[Role, str]) -> None:
    with ctx.read() as conn:
        stored = conn.execute(select(api_keys)).mappings().all()
    assert len(stored) == len(Role)
    for row in stored:
        secret = keys[Role(row["role"])].split("_", 2)[2]
        assert secret not in str(dict(row))
        assert len(row["secret_sha256"]) == 64


def test_keys_from_the_command_line(
    ctx: BillingContext, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)  # no stray .env
    runner = CliRunner()
    created = runner.invoke(cli, ["api", "create-key", "--role", "finance", "--name", "ledger team"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rk_")
    key_id = int(key.split("_")[1])

    app = create_app(ctx, key_cache_seconds=0)
    with asgi_client(app) as client:
        finance = Api(client, {Role.FINANCE: key}, Role.FINANCE)
        assert finance.get("/v1/invoices").status_code == 200
        assert finance.post("/v1/usage_events", {}).status_code == 403

        listed = runner.invoke(cli, ["api", "list-keys"])
        assert listed.exit_code == 0
        assert "ledger team" in listed.output
        assert key.split("_", 2)[2] not in listed.output

        revoked = runner.invoke(cli, ["api", "revoke-key", str(key_id)])
        assert revoked.exit_code == 0, revoked.output
        assert finance.get("/v1/invoices").status_code == 401

    bad_role = runner.invoke(cli, ["api", "create-key", "--role", "root", "--name", "x"])
    assert bad_role.exit_code == 2
    assert "role" in bad_role.output
    unknown = runner.invoke(cli, ["api", "revoke-key", "424242"])
    assert unknown.exit_code == 2
    assert "not_found" in unknown.output


def test_the_openapi_document_from_the_command_line() -> None:
    result = CliRunner().invoke(cli, ["api", "openapi"])
    assert result.exit_code == 0
    assert '"/v1/usage_events/batch"' in result.stdout
