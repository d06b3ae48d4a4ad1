"""Periodic work declared in workflows/schedule.py runs once per interval, across dispatchers, on the clock."""
from __future__ import annotations

from datetime import timedelta

from rq.job import Job

from workflows import schedule
from workflows.schedule import Periodic

CALLS: list[str] = []


def record_call(ctx) -> None:  # type: ignore[no-untyped-def]
    CALLS.append("inline")


def broken(ctx) -> None:  # type: ignore[no-untyped-def]
    raise RuntimeError("provider exploded")


TEST_SCHEDULE = (
    Periodic("broken", timedelta(minutes=1), "tests.test_schedule.broken", inline=True),
    Periodic("inline", timedelta(minutes=1), "tests.test_schedule.record_call", inline=True),
)


def test_each_entry_runs_once_per_interval_across_dispatchers(stack, caplog):
    CALLS.clear()
    assert schedule.tick(stack.ctx, TEST_SCHEDULE) == ["inline"], "the broken entry is logged, the next one runs"
    assert "periodic broken failed" in caplog.text
    assert schedule.tick(stack.ctx, TEST_SCHEDULE) == [], "a second dispatcher in the same interval does nothing"
    assert CALLS == ["inline"]
    stack.clock.advance(timedelta(minutes=1))
    assert schedule.tick(stack.ctx, TEST_SCHEDULE) == ["inline"]
    assert CALLS == ["inline", "inline"]


def test_the_real_schedule_syncs_inline_and_enqueues_push_renewal(stack):
    ran = schedule.tick(stack.ctx)
    assert ran == ["calendar-sync", "push-renewal"]
    job = Job.fetch("periodic-push-renewal", connection=stack.ctx.redis)
    assert job.func_name == "workflows.push_renewal.renew_due_job"
    stack.work()  # a real worker runs the renewal job against the (empty) store
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value() == "0 channel(s) renewed, 0 opened"
