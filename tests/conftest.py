"""Shared fixtures: real PostgreSQL and Redis when present, SQLite and the embedded Redis always.

``stack`` runs a test once per backend pair (PostgreSQL + real Redis, SQLite + embedded Redis) with a
``FrozenClock`` installed as the runtime clock. Under ``CI=true`` every skip is turned into a failure: CI must have
every part present, so a green run never hides a test that did not run.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
import redis
from rq import SimpleWorker
from sqlalchemy import text

from reagenda import runtime
from reagenda.clock import FrozenClock
from reagenda.embedded_redis import EmbeddedRedis
from reagenda.settings import Settings, load
from store.db import make_engine
from store.migrate import upgrade
from store.models import Base
from workflows import dispatcher

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday, 10:00 in Madrid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must have every part present: {reason}"


# ------------------------------------------------------------------------------------------------ services


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    folder = Path(tempfile.mkdtemp(prefix="rg-redis-"))  # short path: unix sockets allow ~100 characters
    server = EmbeddedRedis(folder / "redis.sock").start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private, migrated database on the local PostgreSQL server, dropped at the end."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).strip().splitlines()[0]}")
    name = f"reagenda_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def real_redis_url() -> str:
    conn = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        conn.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis not reachable at {REDIS_TEST_URL}: {exc}")
    finally:
        conn.close()
    return REDIS_TEST_URL


# ------------------------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    """One backend pair with a frozen clock: what a test needs to run the engine for real."""

    name: str
    settings: Settings
    ctx: runtime.Context
    clock: FrozenClock

    def session(self):  # type: ignore[no-untyped-def]
        return self.ctx.session()

    def flush_redis(self) -> None:
        """Lose everything in Redis. FLUSHALL on the embedded server; on the shared server FLUSHDB of this run's
        database, which is all Reagenda has there, so parallel test runs on one machine do not wipe each other."""
        if self.name == "sqlite":
            self.ctx.redis.flushall()
        else:
            self.ctx.redis.flushdb()

    def run_due(self) -> int:
        """One dispatcher pass, then a real RQ worker drains the queue. Returns how many steps were dispatched."""
        n = dispatcher.dispatch_due(self.ctx)
        self.work()
        return n

    def work(self) -> None:
        SimpleWorker([self.ctx.queue()], connection=self.ctx.redis).work(burst=True, with_scheduler=False,
                                                                            logging_level="WARNING")


def _settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    return load({"REAGENDA_VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                 "SECRET_KEY": "test-secret-key-not-for-production", "BASE_URL": "http://reagenda.test"})


def _clean(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


def _make_stack(name: str, tmp_path: Path, database_url: str, redis_url: str) -> Stack:
    settings = _settings(tmp_path, database_url, redis_url)
    if database_url.startswith("sqlite"):
        upgrade(settings.database_url)
    clock = FrozenClock(START)
    ctx = runtime.build(settings, clock)
    _clean(ctx.engine)
    stack = Stack(name=name, settings=settings, ctx=ctx, clock=clock)
    stack.flush_redis()
    return stack


BACKENDS = ["postgres", "sqlite"]


@pytest.fixture(params=BACKENDS)
def stack(request, tmp_path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """Runs the test on PostgreSQL + real Redis, then on SQLite + embedded Redis."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        rurl = request.getfixturevalue("real_redis_url")
    else:
        url = f"sqlite:///{tmp_path / 'reagenda.db'}"
        rurl = request.getfixturevalue("embedded_redis").url
    s = _make_stack(request.param, tmp_path, url, rurl)
    runtime.install(s.ctx)
    yield s
    runtime.install(None)
    s.ctx.close()


@pytest.fixture
def sqlite_stack(tmp_path, embedded_redis) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """SQLite + embedded Redis only, for tests about logic rather than backends."""
    s = _make_stack("sqlite", tmp_path, f"sqlite:///{tmp_path / 'reagenda.db'}", embedded_redis.url)
    runtime.install(s.ctx)
    yield s
    runtime.install(None)
    s.ctx.close()


@pytest.fixture
def sqlite_settings(tmp_path) -> Settings:
    """Settings for a SQLite database in a temporary folder, migrated, with no Redis needed."""
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'reagenda.db'}", "redis://127.0.0.1:1/0")
    upgrade(settings.database_url)
    return settings


@pytest.fixture(scope="session")
def radicale() -> Iterator["RadicaleServer"]:  # noqa: F821 - imported lazily below
    """A real Radicale CalDAV server (subprocess, htpasswd auth, temporary storage) for the whole session.
    Tests make their own calendar on it (``radicale.make_calendar(name)``) so they do not see each other's events."""
    from tests.radicale_server import RadicaleServer

    server = RadicaleServer().start()
    yield server
    server.stop()
