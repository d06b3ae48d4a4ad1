"""Fixtures for the fault tests: a private PostgreSQL cluster per session, and per test a fresh database, a
private Redis, a fleet of real Reagenda processes and a delivery counter, all torn down at the end."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from reagenda import runtime
from reagenda.settings import Settings, load
from store.migrate import upgrade
from tests.faults.harness import (DeliveryCounter, Fleet, HarnessError, PrivatePostgres, PrivateRedis,
                                  leftover_children, postgres_bin_dir, reagenda_env)


@pytest.fixture(scope="session")
def private_postgres(tmp_path_factory) -> Iterator[PrivatePostgres]:  # type: ignore[no-untyped-def]
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)")
    try:
        server = PrivatePostgres().start()
    except HarnessError as exc:
        pytest.skip(str(exc))
    yield server
    server.close()


@dataclass
class FaultRig:
    """Everything one fault test drives: its own database and Redis, the processes, and what was delivered."""

    root: Path
    pg: PrivatePostgres
    db_name: str
    redis: PrivateRedis
    settings: Settings
    ctx: runtime.Context
    fleet: Fleet
    deliveries: DeliveryCounter

    def env(self) -> dict[str, str]:
        return self.fleet.env


@pytest.fixture
def rig(private_postgres, tmp_path) -> Iterator[FaultRig]:  # type: ignore[no-untyped-def]
    db_name = f"fault_{uuid.uuid4().hex[:10]}"
    url = private_postgres.create_database(db_name)
    (tmp_path / "redis").mkdir()
    red = PrivateRedis(tmp_path / "redis").start()
    var_dir = tmp_path / "var"
    env = reagenda_env(var_dir, url, red.url, RECONCILE_AFTER="10", DISPATCH_INTERVAL="0.2")
    settings = load(env)
    upgrade(settings.database_url)
    ctx = runtime.build(settings)
    fleet = Fleet(tmp_path, env)
    deliveries = DeliveryCounter(settings.outbox_dir)
    rig = FaultRig(root=tmp_path, pg=private_postgres, db_name=db_name, redis=red, settings=settings, ctx=ctx,
                   fleet=fleet, deliveries=deliveries)
    try:
        yield rig
    finally:
        fleet.stop_all()
        orphans = [p.pid for p in fleet.procs if p.alive()] + leftover_children()
        deliveries.close()
        ctx.close()
        red.close()
        private_postgres.ensure_running()
        private_postgres.drop_database(db_name)
        assert not orphans, f"processes left running after the test: {orphans}"
