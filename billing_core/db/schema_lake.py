"""Tables of the billing core's lake part: lake export batches.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0005 creates them.
"""

from __future__ import annotations

from billing_core.db.schema import metadata

__all__ = ["metadata"]
