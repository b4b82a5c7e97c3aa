"""Tables of the billing core's dunning part: dunning processes and their actions.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0003 creates them.
"""

from __future__ import annotations

from billing_core.db.schema import metadata

__all__ = ["metadata"]
