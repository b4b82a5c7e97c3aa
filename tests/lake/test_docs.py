"""docs/lake.md describes every column of every lake table, with its type."""

from __future__ import annotations

import re
from pathlib import Path

from billing_core.lake import TABLES

DOC = Path(__file__).resolve().parents[2] / "docs" / "lake.md"


def test_every_column_is_documented() -> None:
    text = DOC.read_text()
    sections = dict(re.findall(r"^### (\w+)\n(.*?)(?=^### |^## )", text, flags=re.S | re.M))
    assert set(sections) == set(TABLES)
    for name, table in TABLES.items():
        columns = sections[name].strip().split("\n\n")[0]  # the first paragraph lists the columns
        listed = re.findall(r"`(\w+) ([^`]+)`", columns)
        assert [column for column, _ in listed] == table.schema.names, name
        for column, declared in listed:
            field = table.schema.field(column)
            assert declared.endswith("!") == (not field.nullable), (name, column)
