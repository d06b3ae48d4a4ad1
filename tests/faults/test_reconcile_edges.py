"""The reconciler's edge cases, found by the worker-kill fault test, made deterministic on both backends.

A worker killed after taking a job off the queue but before starting it leaves the job QUEUED in RQ's eyes while
no queue holds it (RQ parks it in an intermediate list); a worker killed mid-job leaves it STARTED with a heartbeat
that stops. Both steps must come back; a job genuinely waiting in the queue must be left alone.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rq.job import Job
from sqlalchemy import select

from store.models import Step
from tests.factories import make_appointment, make_owner
from workflows import dispatcher


def _due_step(stack) -> int:  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(hours=3))
    assert dispatcher.dispatch_due(stack.ctx) >= 1
    with stack.session() as s:
        return s.scalar(select(Step.id).where(Step.state == "queued", Step.kind.like("reminder_%")))


def _job_of(stack, step_id: int) -> str:  # type: ignore[no-untyped-def]
    """The RQ job carrying the step (a job may carry several due steps)."""
    with stack.session() as s:
        return s.get(Step, step_id).job_id


def _state(stack, step_id: int) -> str:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return s.get(Step, step_id).state


def test_a_job_taken_off_the_queue_by_a_worker_that_died_is_recovered(stack):  # type: ignore[no-untyped-def]
    step_id = _due_step(stack)
    stale = timedelta(seconds=stack.settings.reconcile_after_s + 1)
    stack.clock.advance(stale)
    assert dispatcher.reconcile(stack.ctx) == 0, "still waiting in the queue: left alone"
    assert _state(stack, step_id) == "queued"

    queue = stack.ctx.queue()
    stack.ctx.redis.lrem(queue.key, 0, _job_of(stack, step_id))  # what a dequeue does just before the kill
    assert Job.fetch(_job_of(stack, step_id), connection=stack.ctx.redis).get_status() == "queued"
    assert dispatcher.reconcile(stack.ctx) >= 1
    assert _state(stack, step_id) == "pending"


def test_a_started_job_whose_heartbeat_stopped_is_recovered(stack):  # type: ignore[no-untyped-def]
    step_id = _due_step(stack)
    job = Job.fetch(_job_of(stack, step_id), connection=stack.ctx.redis)
    stack.ctx.redis.lrem(stack.ctx.queue().key, 0, job.id)
    job.set_status("started")
    stale_after = timedelta(seconds=stack.settings.reconcile_after_s)
    job.heartbeat(datetime.now(timezone.utc), 60)
    stack.clock.advance(stale_after + timedelta(seconds=1))
    assert dispatcher.reconcile(stack.ctx) == 0, "a fresh heartbeat means a live worker"
    job.heartbeat(datetime.now(timezone.utc) - stale_after - timedelta(seconds=5), 60)
    assert dispatcher.reconcile(stack.ctx) >= 1
    assert _state(stack, step_id) == "pending"
