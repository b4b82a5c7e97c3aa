"""Alembic environment for the billing core's schema.

Run through ``recoup db upgrade`` (or :func:`billing_core.db.migrate.upgrade`); a connection can be
handed over in ``config.attributes["connection"]``, otherwise the URL comes from the
``sqlalchemy.url`` option or the ``RECOUP_DATABASE_URL`` setting.
"""

from __future__ import annotations

from alembic import context

from billing_core.db.engine import create_engine
from billing_core.db.schema import compared_by_alembic, metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from recoup.settings import Settings

    return Settings().database_url


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=compared_by_alembic,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
