"""Use case: create an API key with a role; the key is returned once and never stored.

Only the SHA-256 of the key's secret is written. The ``api_key.created`` event in the audit log
names the key and its role, never its secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing_core.api.keys import Role, format_key, new_secret, secret_sha256
from billing_core.context import BillingContext
from billing_core.errors import InvalidInput

MAX_NAME_LENGTH = 128


@dataclass(frozen=True)
class CreatedApiKey:
    id: int
    name: str
    role: Role
    created_at: datetime
    key: str  # rk_<id>_<secret>: shown once


def create_api_key(ctx: BillingContext, *, name: str, role: str) -> CreatedApiKey:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"a non-empty name of at most {MAX_NAME_LENGTH} characters", name)
    if "\x00" in name:
        raise InvalidInput("name", "a name without NUL characters", name)
    try:
        kind = Role(role)
    except ValueError as exc:
        raise InvalidInput("role", "one of " + ", ".join(Role), role) from exc
    secret = new_secret()
    with ctx.transaction() as tx:
        (key_id,) = tx.bulk.reserve_ids("api_keys", 1)
        tx.bulk.insert(
            "api_keys",
            ["id", "name", "role", "secret_sha256", "created_at"],
            [(key_id, name.strip(), kind.value, secret_sha256(secret), tx.bulk.instant(tx.now))],
        )
        tx.emit("api_key.created", "api_key", key_id, api_key_id=key_id, name=name.strip(), role=kind.value)
        created_at = tx.now
    return CreatedApiKey(key_id, name.strip(), kind, created_at, format_key(key_id, secret))
