"""Engines and sessions. Nothing connects at import time; callers build an engine from a URL when they need one."""
from __future__ import annotations

import os
from pathlib import Path

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Engine, any_, bindparam, create_engine, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite (web, worker and dispatcher share the file),
    pre-ping on PostgreSQL (survive a server restart), and a fresh pool in forked RQ work horses."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    # A forked child must not reuse the parent's sockets; dispose(close=False) leaves them to the parent.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def one_of(column: Any, values: Iterable[Any], bind: Any) -> ColumnElement[bool]:
    """``column IN values`` that reads the same to PostgreSQL whatever the number of values (``= ANY(array)``).

    Why: an IN list is one parameter per value, and psycopg neither caches the parsing of nor prepares a statement
    with more than 50 parameters; for a worker's batch of 100 steps that cost more than running the query
    (``bench/dispatch.py``). ``bind``: the engine or connection the statement will run on."""
    values = list(values)
    if bind.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def ping(engine: Engine) -> None:
    """Raise if the database cannot be reached."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
