"""Migrations build exactly the schema the code declares, and can be undone and redone."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from billing_core.db.migrate import current_revision, downgrade, upgrade
from billing_core.db.schema import metadata


def diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_migrated_schema_matches_the_declared_tables(engine: Engine) -> None:
    assert current_revision(engine) is not None
    assert diffs(engine) == []


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    downgrade(engine, "base")
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    upgrade(engine)
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    assert diffs(engine) == []
