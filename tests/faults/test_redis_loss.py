"""Fault 2: Redis restarted (losing everything: no persistence) and then flushed, in the middle of a run.

Proves that the database, not Redis, is the source of truth: the dispatcher and workers reconnect on their own,
jobs lost with Redis are found by the reconciler and dispatched again, and every due step is sent exactly once.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.faults.checks import settle, wait_progress
from tests.faults.seed import due_step_ids, seed_due_appointments

pytestmark = [pytest.mark.faults, pytest.mark.slow]

STEPS = 400


def test_redis_restart_and_flush_mid_run_lose_nothing(rig, capsys):  # type: ignore[no-untyped-def]
    now = seed_due_appointments(rig.ctx, STEPS, now=datetime.now(timezone.utc))
    ids = due_step_ids(rig.ctx, now)
    rig.fleet.start("dispatcher")
    rig.fleet.start("worker", "--simple")
    rig.fleet.start("worker", "--simple")

    wait_progress(rig, ids, len(ids) // 4)
    rig.redis.restart()  # SIGKILL + start on the same port: every queued job is gone
    wait_progress(rig, ids, len(ids) // 2)
    rig.redis.flushall()  # and again, with the server up
    out = settle(rig, ids)

    with capsys.disabled():
        print(f"\n[fault 2] Redis restarted and flushed mid-run: {out.line()}")
    assert out.duplicate_deliveries == 0, "a lost job is re-dispatched, never re-sent"
    for proc in rig.fleet.procs:
        assert proc.alive(), f"{proc.name} died when Redis went away:\n{proc.tail()}"
