"""Tables of the billing core's notifications part: notifications sent from the outbox (email, SMS, call tasks).

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0004 creates them.
"""

from __future__ import annotations

from billing_core.db.schema import metadata

__all__ = ["metadata"]
