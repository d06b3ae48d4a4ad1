"""Fault 1: workers killed with SIGKILL in the middle of sending, repeatedly, while 1,000 steps are due.

Proves at-least-once execution across worker crashes: every due step ends done, each message is delivered, and
the duplicates a crash can cause (killed after the provider accepted, before the database said "sent") are bounded
by the idempotency record: only a step whose Message row was left in "sending" can be delivered twice, once.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from rq import Worker
from rq.worker import WorkerStatus

from tests.faults.checks import settle, wait_progress
from tests.faults.harness import wait_for
from tests.faults.seed import due_step_ids, seed_due_appointments

pytestmark = [pytest.mark.faults, pytest.mark.slow]

STEPS = 1000
KILLS = 6


def _busy_workers(rig) -> list:  # type: ignore[no-untyped-def]
    """Our live worker processes that RQ reports as in the middle of a job right now."""
    conn = rig.redis.client()
    try:
        pids = {w.pid for w in Worker.all(connection=conn) if w.get_state() == WorkerStatus.BUSY and w.pid}
    finally:
        conn.close()
    return [p for p in rig.fleet.live("worker") if p.pid in pids]


def test_sigkilled_workers_lose_nothing_and_duplicates_are_bounded(rig, capsys):  # type: ignore[no-untyped-def]
    now = seed_due_appointments(rig.ctx, STEPS, now=datetime.now(timezone.utc))
    ids = due_step_ids(rig.ctx, now)
    assert len(ids) >= STEPS

    rig.fleet.start("dispatcher")
    for _ in range(2):
        # In-process jobs: a forked work horse costs ~1 s of cold start per job here (see docs/reliability.md).
        rig.fleet.start("worker", "--simple")

    kills = 0
    for k in range(1, KILLS + 1):
        # Spread the kills over the run: the k-th once k/(KILLS+1) of the steps are done.
        wait_progress(rig, ids, k * len(ids) // (KILLS + 1))
        busy = wait_for(lambda: _busy_workers(rig), 30, "a worker in the middle of a job", interval=0.01)
        busy[0].kill()
        kills += 1
        rig.fleet.start("worker", "--simple")

    out = settle(rig, ids)
    with capsys.disabled():
        print(f"\n[fault 1] {kills} worker SIGKILLs mid-job: {out.line()}")
    # Each kill interrupts at most one job per worker, so at most one message per kill can go out twice.
    assert out.duplicate_deliveries <= kills
    assert all(n == 1 for n in out.duplicates.values())

