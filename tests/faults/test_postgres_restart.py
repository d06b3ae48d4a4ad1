"""Fault 3: PostgreSQL restarted (fast shutdown: every session cut) in the middle of a run.

Proves that the dispatcher and workers reconnect by themselves (pool pre-ping, retried ticks), that no due step is
lost, and that no step is executed twice: one Message row per step, and duplicate deliveries counted (a send
interrupted between the provider accepting it and the database recording it is the only way to get one).
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.faults.checks import settle, wait_progress
from tests.faults.seed import due_step_ids, seed_due_appointments

pytestmark = [pytest.mark.faults, pytest.mark.slow]

STEPS = 400


def test_postgres_restart_mid_run_loses_nothing(rig, capsys):  # type: ignore[no-untyped-def]
    now = seed_due_appointments(rig.ctx, STEPS, now=datetime.now(timezone.utc))
    ids = due_step_ids(rig.ctx, now)
    rig.fleet.start("dispatcher")
    rig.fleet.start("worker", "--simple")
    rig.fleet.start("worker", "--simple")

    wait_progress(rig, ids, len(ids) // 3)
    rig.pg.restart("fast")
    rig.ctx.engine.dispose()  # the test's own pool held connections the restart cut
    out = settle(rig, ids)

    with capsys.disabled():
        print(f"\n[fault 3] PostgreSQL restarted mid-run: {out.line()}")
    for proc in rig.fleet.procs:
        assert proc.alive(), f"{proc.name} died when PostgreSQL restarted:\n{proc.tail()}"
    assert out.duplicate_deliveries == 0, f"steps delivered twice: {out.duplicates}"
