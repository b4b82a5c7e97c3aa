"""Tables of the billing core's api part: api keys and idempotent responses of the REST API.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0002 creates them.

* ``api_keys``: who may call the API, with which role. The secret is never stored, only its
  SHA-256 (a key is ``rk_<id>_<secret>``, and the secret is 256 random bits, so a plain hash is
  as good as a slow one). Revoking a key sets ``revoked_at``; rows are never deleted, so the audit
  log's references to a key keep their meaning.
* ``idempotency_keys``: the first response to a POST sent with an ``Idempotency-Key`` header,
  per api key, written in the same transaction as the request's effect. A retry with the same key
  and the same request gets it back; rows expire after 24 hours (``expires_at``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from billing_core.db.schema import metadata
from billing_core.db.types import UTCDateTime

_AUTO: dict[str, Any] = {"sqlite_autoincrement": True}

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),  # service, finance, analyst, admin
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    **_AUTO,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", Integer, ForeignKey("api_keys.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("path", String(512), nullable=False),
    # sha256 of the method, the path and the canonical JSON body: "the same request"
    Column("request_sha256", String(64), nullable=False),
    Column("response_status", Integer),
    Column("response_body", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)
