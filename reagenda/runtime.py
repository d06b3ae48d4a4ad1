"""The runtime context: settings plus the live handles built from them (database engine, Redis connection, clock).

Processes build one ``Context`` at start (``build``) and ``install`` it; RQ jobs find it with ``current()``.
Tests install a context with a ``FrozenClock`` and their own database and Redis, so the same job code runs against
real parts on a virtual clock.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator
from contextlib import contextmanager

import redis
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from reagenda.clock import Clock, SystemClock
from reagenda.settings import Settings, mask_url
from store.db import make_engine, make_sessionmaker, ping

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """A dependency (database, Redis, port) is not usable; the message is one line an operator can act on."""


@dataclass
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    clock: Clock = field(default_factory=SystemClock)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session:
            with session.begin():
                yield session

    def queue(self) -> Queue:
        return Queue(self.settings.queue_name, connection=self.redis)

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


def redis_url_for(settings: Settings) -> str:
    """REDIS_URL, or the embedded server's socket when it is running under ``reagenda run``."""
    if settings.redis_url:
        return settings.redis_url
    sock = settings.embedded_redis_socket
    if sock.exists():
        return f"unix://{sock}"
    raise StartupError(
        "REDIS_URL is not set and no embedded Redis is running in "
        f"{settings.var_dir}; start everything with `reagenda run`, or set REDIS_URL=redis://host:6379/0"
    )


def connect_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def build(settings: Settings, clock: Clock | None = None, *, check: bool = True) -> Context:
    """Connect to the database and Redis named by ``settings``; with ``check``, fail fast with a one-line error."""
    engine = make_engine(settings.database_url)
    rurl = redis_url_for(settings)
    conn = connect_redis(rurl)
    if check:
        try:
            ping(engine)
        except Exception as exc:  # noqa: BLE001 - any driver error means "unreachable" to the operator
            engine.dispose()
            raise StartupError(f"database unreachable at {mask_url(settings.database_url)}: "
                               f"{_first_line(exc)}") from None
        try:
            conn.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            engine.dispose()
            raise StartupError(f"Redis unreachable at {mask_url(rurl)}: {_first_line(exc)}") from None
    return Context(settings=settings, engine=engine, sessions=make_sessionmaker(engine), redis=conn,
                   clock=clock or SystemClock())


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_current: Context | None = None


def install(ctx: Context | None) -> None:
    global _current
    _current = ctx


def current() -> Context:
    if _current is None:
        raise RuntimeError("no runtime context installed; worker.py installs one at start")
    return _current
