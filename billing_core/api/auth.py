"""Who is calling, and may they: ``Authorization: Bearer rk_<id>_<secret>`` and roles per route.

Every route declares the roles it admits in one place, its :func:`allow` dependency
(``admin`` is always admitted). Without a valid key the answer is 401; with a key whose role is
not admitted, 403. ``tests/api`` walks every route with every role.

Keys are checked against the database (the stored SHA-256 of the secret, compared in constant
time) and remembered for ``key_cache_seconds`` (1 s by default), so that a busy meter does not
pay a database read per request. A key revoked through the API is forgotten at once by the
process that revoked it; other processes stop accepting it within ``key_cache_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from billing_core.api.errors import ApiError
from billing_core.api.keys import Role, parse_key, secret_matches
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An api key: `Authorization: Bearer rk_<id>_<secret>` (see `recoup api create-key`).",
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    name: str
    role: Role


class KeyVerifier:
    """Checks presented keys against ``api_keys``; remembers good ones for a short while."""

    def __init__(self, ctx: BillingContext, cache_seconds: float = 1.0, max_entries: int = 10_000) -> None:
        self.ctx = ctx
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def cached(self, presented: str) -> Principal | None:
        hit = self._cache.get(presented)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def verify(self, presented: str) -> Principal | None:
        """The key's owner, or None if the key is malformed, unknown, wrong or revoked."""
        hit = self.cached(presented)
        if hit is not None:
            return hit
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self.ctx.read() as conn:
            rows = Bulk(conn).query(
                "SELECT name, role, secret_sha256, revoked_at FROM api_keys WHERE id = ?", (key_id,)
            )
        if not rows:
            return None
        name, role, digest, revoked_at = rows[0]
        if revoked_at is not None or not secret_matches(secret, digest):
            return None
        principal = Principal(key_id, name, Role(role))
        if self.cache_seconds > 0:
            with self._lock:
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                self._cache[presented] = (principal, time.monotonic() + self.cache_seconds)
        return principal

    def forget(self, key_id: int) -> None:
        with self._lock:
            for presented, (principal, _) in list(self._cache.items()):
                if principal.key_id == key_id:
                    del self._cache[presented]


@dataclass(frozen=True, slots=True)
class Caller:
    """What a route knows about its request: who calls, the context, the idempotency key."""

    principal: Principal
    ctx: BillingContext
    request: Request
    idempotency_key: str | None = None
    body: bytes = b""


def _unauthenticated(message: str) -> ApiError:
    return ApiError(
        401,
        "unauthenticated",
        message,
        field="Authorization",
        expected="Bearer rk_<id>_<secret>, a key that is not revoked",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None:
        raise _unauthenticated("no api key: send `Authorization: Bearer <key>`")
    verifier: KeyVerifier = request.app.state.keys
    presented = credentials.credentials
    principal = verifier.cached(presented)
    if principal is None:
        principal = await run_in_threadpool(verifier.verify, presented)
    if principal is None:
        raise _unauthenticated("unknown or revoked api key")
    return principal


def _authorize(principal: Principal, admitted: frozenset[Role], request: Request) -> None:
    if principal.role not in admitted:
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role} key may not {request.method} {request.url.path}",
            field="Authorization",
            expected="a key with one of the roles " + ", ".join(sorted(admitted)),
            got=principal.role.value,
        )


def _check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise ApiError(
            400,
            "invalid_input",
            f"{IDEMPOTENCY_HEADER}: expected 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
            field=IDEMPOTENCY_HEADER,
            expected=f"1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, such as a UUID",
            got=key,
        )
    return key


def allow(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """The dependency that declares (and enforces) which roles may call a reading route."""
    admitted = frozenset(roles) | {Role.ADMIN}

    async def caller(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Caller:
        principal = await _principal(request, credentials)
        _authorize(principal, admitted, request)
        return Caller(principal, request.app.state.ctx, request)

    caller.roles = admitted  # type: ignore[attr-defined]
    caller.writes = False  # type: ignore[attr-defined]
    return caller


def allow_write(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """The same for a POST: it also takes the ``Idempotency-Key`` header (see ``idempotency``)."""
    admitted = frozenset(roles) | {Role.ADMIN}

    async def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias=IDEMPOTENCY_HEADER,
                description=(
                    "Makes the request safe to retry for 24 hours: a retry with the same key and the same "
                    "body gets the first response back and changes nothing."
                ),
            ),
        ] = None,
    ) -> Caller:
        principal = await _principal(request, credentials)
        _authorize(principal, admitted, request)
        key = _check_idempotency_key(idempotency_key)
        body = await request.body() if key is not None else b""
        return Caller(principal, request.app.state.ctx, request, key, body)

    caller.roles = admitted  # type: ignore[attr-defined]
    caller.writes = True  # type: ignore[attr-defined]
    return caller


async def public() -> None:
    """The dependency of the few routes anyone may call (the health check)."""


public.public = True  # type: ignore[attr-defined]


def declared_roles(dependency: object) -> frozenset[Role] | None:
    """The roles an :func:`allow` / :func:`allow_write` dependency admits (None for others)."""
    roles = getattr(dependency, "roles", None)
    return roles if isinstance(roles, frozenset) else None
