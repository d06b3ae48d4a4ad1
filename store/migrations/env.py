"""Alembic environment. The URL comes from ``config.attributes['url']`` (set by ``store.migrate``) or from
``DATABASE_URL`` via the settings module when alembic is run by hand."""
from __future__ import annotations

from alembic import context

from store.db import make_engine
from store.models import Base

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return url
    from reagenda.settings import load

    return load().database_url


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
