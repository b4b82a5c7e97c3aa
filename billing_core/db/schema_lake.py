"""Tables of the billing core's lake part: the lake export's position and history.

Declared on the shared :data:`billing_core.db.schema.metadata`; migration 0005 creates them.

* ``lake_exports``: one row per committed export run of :mod:`billing_core.lake`, with the
  ranges it covered: outbox sequence numbers ``(outbox_from, outbox_to]`` and, for the tables read
  by id instead of through the outbox, ids ``(<table>_from, <table>_to]``. The row with the
  highest ``id`` is the lake's position: the next run starts where it ends. The row is written in
  the same transaction that mirrors ``outbox_to`` into ``consumer_offsets`` (consumer ``lake``),
  and only after every parquet file of the run is in place under its final name.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, Table, Text

from billing_core.db.schema import metadata
from billing_core.db.types import UTCDateTime

#: the sources an export run covers, each a range ``(<source>_from, <source>_to]``
LAKE_SOURCES = (
    "outbox",
    "customers",
    "payment_methods",
    "subscriptions",
    "usage_events",
    "dunning_actions",
)

lake_exports = Table(
    "lake_exports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    *(
        Column(f"{source}_{end}", BigInteger, nullable=False)
        for source in LAKE_SOURCES
        for end in ("from", "to")
    ),
    # when the event at outbox_to occurred: no row of the run carries a later event time
    Column("outbox_head_at", UTCDateTime),
    Column("started_at", UTCDateTime, nullable=False),
    Column("committed_at", UTCDateTime, nullable=False),
    Column("rows", Text, nullable=False),  # JSON object: lake table -> rows written
    Column("files", Integer, nullable=False),
)

__all__ = ["LAKE_SOURCES", "lake_exports", "metadata"]
