"""docs/features.md documents every feature of every table, with its type, and every on-demand feature."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from features.jobs.schemas import TABLES

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"
TYPES = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
}


def test_every_table_and_feature_is_documented() -> None:
    text = DOC.read_text()
    tables = text.split("## Feature tables", 1)[1].split("\n## ", 1)[0]
    sections = dict(re.findall(r"^### (\w+)\n(.*?)(?=^### |\Z)", tables, flags=re.S | re.M))
    assert list(sections) == list(TABLES)
    for name, table in TABLES.items():
        rows = re.findall(r"^\| `(\w+)` \| (\w+)(!?) \|", sections[name], flags=re.M)
        assert [r[0] for r in rows] == table.feature_names, name
        for column, kind, required in rows:
            declared = table.column(column)
            assert required == ("" if declared.nullable else "!"), (name, column)
            if kind == "timestamp":
                assert pa.types.is_timestamp(declared.type), (name, column)
            else:
                assert TYPES[kind] == declared.type, (name, column)


def test_every_on_demand_feature_and_service_is_documented() -> None:
    from features.repo.feature_services import SERVICES
    from features.repo.on_demand_feature_views import ON_DEMAND_VIEWS

    text = DOC.read_text()
    for view in ON_DEMAND_VIEWS.values():
        for feature in view.features:
            assert f"| `{view.name}` | `{feature.name}` |" in text, (view.name, feature.name)
    for service in SERVICES:
        assert f"| `{service}` |" in text
