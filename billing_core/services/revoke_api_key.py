"""Use case: revoke an API key; requests with it are refused from then on.

Revoking is final and idempotent: revoking a revoked key changes nothing. The row stays, so the
audit log's mentions of the key keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing_core.api.keys import Role
from billing_core.context import BillingContext
from billing_core.db.types import parse_instant_column
from billing_core.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class RevokedApiKey:
    id: int
    name: str
    role: Role
    revoked_at: datetime


def revoke_api_key(ctx: BillingContext, *, api_key_id: int) -> RevokedApiKey:
    if isinstance(api_key_id, bool) or not isinstance(api_key_id, int) or not 0 < api_key_id < 2**31:
        raise InvalidInput("api_key_id", "the id of an existing api key", api_key_id)
    with ctx.transaction() as tx:
        rows = tx.bulk.query("SELECT name, role, revoked_at FROM api_keys WHERE id = ?", (api_key_id,))
        if not rows:
            raise NotFound("api_key_id", "api key", api_key_id)
        name, role, revoked_at = rows[0]
        if revoked_at is not None:
            return RevokedApiKey(api_key_id, name, Role(role), parse_instant_column(revoked_at))
        tx.bulk.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (tx.bulk.instant(tx.now), api_key_id)
        )
        tx.emit("api_key.revoked", "api_key", api_key_id, api_key_id=api_key_id, name=name, role=role)
        return RevokedApiKey(api_key_id, name, Role(role), tx.now)
