"""Tables of the billing core's api part: api keys and idempotent responses of the REST API.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0002 creates them.
"""

from __future__ import annotations

from billing_core.db.schema import metadata

__all__ = ["metadata"]
