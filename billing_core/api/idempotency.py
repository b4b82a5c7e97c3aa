"""``Idempotency-Key``: a POST that is safe to retry, its response stored with its effect.

A POST sent with an ``Idempotency-Key`` header claims the key for the calling api key in
``idempotency_keys``. A later request with the same key is a retry: with the same method, path
and body (compared by SHA-256 of the canonical JSON) it gets the first response again, with the
header ``Idempotent-Replayed: true``, and nothing else happens; with a different request it is
answered 409 ``idempotency_conflict`` naming the header. Keys are kept 24 hours
(:data:`KEY_LIFETIME`); expired keys are deleted as new ones are claimed.

How the response is kept with the effect depends on the use case:

**Use cases that write once and never call the payment gateway** (creating customers, catalog
entries, usage, voids, disputes, chargebacks...) run inside one database transaction that also
holds the key: claim, run (the use case's own transactions become savepoints of this one, see
:class:`BoundContext`), store the response, commit. The effect and its stored response are written
together or not at all; a crash before the commit leaves neither, and the retry simply runs.

**Use cases that call the gateway or run billing** (a subscription's first invoice, plan changes,
pause, resume, cancel, one-time charges, paying an invoice, refunds, credit notes) commit before
and after the gateway call, by design: no transaction waits on the network, and an attempt
committed as ``pending`` before the card is charged is what makes a crash repairable (its
gateway idempotency key is derived from its id, and a rolled-back id is not reused on
PostgreSQL). For these the key is claimed *in the use case's first transaction*
(:class:`ClaimingContext`), so it is on file exactly when the first effect is, and the response
is stored right after the use case returns. A crash in between leaves the key claimed without a
response: a retry is then answered 409 ``idempotency_key_in_use`` (as is a retry that arrives
while the first request is still running), never run a second time. Check the resource (the
customer's invoices, the payment's refunds) before sending the request again with a new key.

Only responses of requests that changed something are stored. A request refused before any
write (4xx) leaves no trace, so its retry runs again and may succeed once the cause is fixed.

Concurrent retries wait for each other: on SQLite a writing transaction holds the write lock,
and on PostgreSQL the second claim waits on the first one's uncommitted row, then sees it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection
from starlette.responses import Response

from billing_core import audit
from billing_core.api.auth import IDEMPOTENCY_HEADER, Caller
from billing_core.api.errors import ApiError, recoup_error_response
from billing_core.context import BillingContext, Tx
from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.errors import IdempotencyConflict, RecoupError

KEY_LIFETIME = timedelta(hours=24)
REPLAYED_HEADER = "Idempotent-Replayed"

M = TypeVar("M", bound=BaseModel)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the method, the path and the body (as canonical JSON when it is JSON)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def json_response(model: BaseModel, status_code: int) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


@dataclass(frozen=True)
class Stored:
    fingerprint: str
    status: int | None
    body: str | None
    path: str
    created_at: datetime


@dataclass(frozen=True)
class Claim:
    """One request's hold on its idempotency key."""

    api_key_id: int
    key: str
    method: str
    path: str
    fingerprint: str

    @classmethod
    def of(cls, caller: Caller) -> Claim:
        assert caller.idempotency_key is not None
        request = caller.request
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return cls(
            caller.principal.key_id,
            caller.idempotency_key,
            request.method,
            path[:512],
            request_fingerprint(request.method, path, caller.body),
        )

    def insert(self, bulk: Bulk, now: datetime) -> bool:
        """Claim the key inside the caller's transaction; False if it is already on file."""
        bulk.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (bulk.instant(now),))
        inserted = bulk.execute(
            "INSERT INTO idempotency_keys (api_key_id, key, method, path, request_sha256, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                self.api_key_id,
                self.key,
                self.method,
                self.path,
                self.fingerprint,
                bulk.instant(now),
                bulk.instant(now + KEY_LIFETIME),
            ),
        )
        return inserted > 0

    def lookup(self, bulk: Bulk, now: datetime) -> Stored | None:
        rows = bulk.query(
            "SELECT request_sha256, response_status, response_body, path, created_at FROM idempotency_keys"
            " WHERE api_key_id = ? AND key = ? AND expires_at > ?",
            (self.api_key_id, self.key, bulk.instant(now)),
        )
        if not rows:
            return None
        fingerprint, status, body, path, created_at = rows[0]
        return Stored(fingerprint, status, body, path, parse_instant_column(created_at))

    def store(self, bulk: Bulk, status: int, body: str) -> None:
        bulk.execute(
            "UPDATE idempotency_keys SET response_status = ?, response_body = ?"
            " WHERE api_key_id = ? AND key = ?",
            (status, body, self.api_key_id, self.key),
        )

    def answer(self, stored: Stored) -> Response:
        """What a retry gets: the first response, or why it cannot have it."""
        if stored.fingerprint != self.fingerprint:
            raise IdempotencyConflict(
                IDEMPOTENCY_HEADER,
                f"a key not used in the last 24 hours for another request (it was used for {stored.path})",
                self.key,
            )
        if stored.status is None or stored.body is None:
            raise ApiError(
                409,
                "idempotency_key_in_use",
                f"the request sent with this {IDEMPOTENCY_HEADER} at {stored.created_at.isoformat()} has not"
                " answered: it is still running, or it was interrupted after it changed something. Check the"
                " resource before sending the request again with a new key",
                field=IDEMPOTENCY_HEADER,
                expected="a key whose first request has answered",
                got=self.key,
            )
        return Response(
            stored.body,
            status_code=stored.status,
            media_type="application/json",
            headers={REPLAYED_HEADER: "true"},
        )


def _with_parent(parent: BillingContext) -> dict[str, Any]:
    return {
        "engine": parent.engine,
        "clock": parent.clock,
        "gateway": parent.gateway,
        "invoice_prefix": parent.invoice_prefix,
        "credit_note_prefix": parent.credit_note_prefix,
        "days_until_due": parent.days_until_due,
    }


class BoundContext(BillingContext):
    """A context whose transactions are savepoints of one open transaction, and whose reads see it."""

    def __init__(self, parent: BillingContext, conn: Connection) -> None:
        super().__init__(**_with_parent(parent))
        self.conn = conn

    @contextmanager
    def transaction(self, *, checked_references: bool = True) -> Iterator[Tx]:
        # foreign keys stay checked: SQLite cannot switch them off inside a transaction
        with self.conn.begin_nested():
            tx = Tx(self.conn, self.clock.now())
            yield tx
            audit.append(self.conn, tx.events)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        yield self.conn


class _Taken(Exception):
    """Another request claimed the key first (its effect is on file; this one's is rolled back)."""


class ClaimingContext(BillingContext):
    """A context that claims the idempotency key in the use case's first transaction."""

    def __init__(self, parent: BillingContext, claim: Claim) -> None:
        super().__init__(**_with_parent(parent))
        self.claim = claim
        self.claimed = False

    @contextmanager
    def transaction(self, *, checked_references: bool = True) -> Iterator[Tx]:
        claiming = not self.claimed
        try:
            with super().transaction(checked_references=checked_references) as tx:
                if claiming:
                    if not self.claim.insert(tx.bulk, tx.now):
                        raise _Taken
                    self.claimed = True
                yield tx
        except BaseException:
            if claiming:
                self.claimed = False  # rolled back with the transaction
            raise


def run(
    caller: Caller,
    action: Callable[[BillingContext], M],
    *,
    status_code: int = 200,
    atomic: bool = True,
) -> Response:
    """Run ``action`` (a use case and the read of its result) for a POST, idempotently if asked.

    ``atomic=False`` for use cases that call the payment gateway or run billing (see above).
    """
    if caller.idempotency_key is None:
        return json_response(action(caller.ctx), status_code)
    claim = Claim.of(caller)
    if atomic:
        return _run_atomic(caller.ctx, claim, action, status_code)
    return _run_claiming(caller.ctx, claim, action, status_code)


def _run_atomic(
    ctx: BillingContext, claim: Claim, action: Callable[[BillingContext], M], status_code: int
) -> Response:
    with ctx.engine.connect() as conn, conn.begin():
        bulk = Bulk(conn)
        now = ctx.clock.now()
        if not claim.insert(bulk, now):
            stored = claim.lookup(bulk, now)
            assert stored is not None  # claimed and not expired: it is on file
            return claim.answer(stored)
        text = action(BoundContext(ctx, conn)).model_dump_json()
        claim.store(bulk, status_code, text)
    return Response(text, status_code=status_code, media_type="application/json")


def _run_claiming(
    ctx: BillingContext, claim: Claim, action: Callable[[BillingContext], M], status_code: int
) -> Response:
    with ctx.read() as conn:
        stored = claim.lookup(Bulk(conn), ctx.clock.now())
    if stored is not None:
        return claim.answer(stored)
    claiming = ClaimingContext(ctx, claim)
    try:
        response = json_response(action(claiming), status_code)
    except _Taken:
        with ctx.read() as conn:
            stored = claim.lookup(Bulk(conn), ctx.clock.now())
        assert stored is not None
        return claim.answer(stored)
    except RecoupError as error:
        if not claiming.claimed:
            raise  # refused before anything was written: nothing to remember
        response = recoup_error_response(error)  # it changed something, then failed: remember how
    with ctx.engine.begin() as conn:
        bulk = Bulk(conn)
        if not claiming.claimed and not claim.insert(bulk, ctx.clock.now()):
            # the use case wrote nothing (it found its result on file) and a twin got here first
            stored = claim.lookup(bulk, ctx.clock.now())
            assert stored is not None
            return claim.answer(stored)
        claim.store(bulk, response.status_code, bytes(response.body).decode())
    return response
