"""API keys: their format, their roles, and how a presented key is checked.

A key reads ``rk_<id>_<secret>``: the id finds the row, and the secret (256 random bits,
URL-safe base64) is compared, in constant time, with the SHA-256 stored for it. The secret itself
is never stored: it is shown once, when the key is created.

This module imports no web framework: the use cases that create and revoke keys use it too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

PREFIX = "rk"
MAX_KEY_LENGTH = 200


class Role(StrEnum):
    """What a key may do. Every route declares the roles it admits; ``admin`` is admitted everywhere."""

    SERVICE = "service"  # machines: usage, customers, subscriptions, payments
    FINANCE = "finance"  # people: reviews, refunds, write-offs, voids, credit notes, disputes
    ANALYST = "analyst"  # read only
    ADMIN = "admin"  # everything, including api keys and the catalog


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def format_key(key_id: int, secret: str) -> str:
    return f"{PREFIX}_{key_id}_{secret}"


def parse_key(text: str) -> tuple[int, str] | None:
    """``(id, secret)`` of a presented key, or None if it is not shaped like one."""
    if len(text) > MAX_KEY_LENGTH:
        return None
    parts = text.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isdigit() or not parts[2]:
        return None
    if len(parts[1]) > 10:
        return None
    return int(parts[1]), parts[2]


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(secret_sha256(secret), stored_sha256)
