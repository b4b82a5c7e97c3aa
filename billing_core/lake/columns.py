"""Rows as the database driver returns them, turned into pyarrow columns of a declared schema.

SQLite returns instants as ISO text in UTC and booleans as 0/1; PostgreSQL returns aware
datetimes and booleans. Each column is converted whole, by pyarrow, never value by value in
Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

_NAIVE_US = pa.timestamp("us")


def to_array(values: Sequence[Any], type_: pa.DataType, *, sqlite: bool) -> pa.Array:
    """One column of driver values as an array of ``type_``."""
    if pa.types.is_timestamp(type_):
        if sqlite:
            return pa.array(values, pa.string()).cast(_NAIVE_US).cast(type_)
        return pa.array(values, type_)
    if pa.types.is_dictionary(type_):
        return pa.array(values, type_.value_type).dictionary_encode()
    if pa.types.is_boolean(type_):
        try:
            return pa.array(values, type_)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        try:
            return pa.array(values, pa.int8()).cast(type_)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([None if v is None else bool(v) for v in values], type_)
    if pa.types.is_date32(type_) and sqlite:
        return pa.array(values, pa.string()).cast(type_)
    return pa.array(values, type_)


def table_from_rows(rows: Sequence[Sequence[Any]], schema: pa.Schema, *, sqlite: bool) -> pa.Table:
    """A table of ``schema`` from row tuples whose values come in the schema's column order."""
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    if len(columns) != len(schema):
        raise ValueError(f"rows have {len(columns)} values, the schema {len(schema)} columns")
    arrays = [to_array(column, f.type, sqlite=sqlite) for column, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)
