"""Moves due steps from the database onto RQ, and recovers steps that were lost on the way.

The database is the truth: a step is claimed (state ``queued``) in one transaction, then enqueued. One RQ job
carries up to ``STEPS_PER_JOB`` steps (RQ's own bookkeeping, about sixty Redis commands and 4 ms of a worker's CPU
per job, is paid once per batch), and a pass makes at least as many jobs as there are live workers, so a small
pass is spread over them rather than queued behind one); its id is deterministic (``step-<id>`` for one step, ``steps-<first id>-<count>-<hash of the ids>`` for
several) and kept in ``steps.job_id``. If Redis loses the job (flushed, restarted) or a worker dies mid-step, the
reconciler returns the step to ``pending`` after ``reconcile_after_s`` and it is dispatched again; the executor's
guarded claim and the message idempotency key make the second run safe.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from sqlalchemy import func, select, update

from reagenda.runtime import Context
from workflows import schedule
from store.db import is_postgres
from store.models import Step

log = logging.getLogger(__name__)

JOB_FUNC = "workflows.jobs.execute_step"
BATCH_JOB_FUNC = "workflows.jobs.execute_steps"


def job_id(step_id: int) -> str:
    return f"step-{step_id}"


def batch_job_id(step_ids: list[int]) -> str:
    """The job id for a batch: the same steps always give the same id (a re-dispatch replaces, never doubles)."""
    if len(step_ids) == 1:
        return job_id(step_ids[0])
    digest = hashlib.sha1(",".join(map(str, step_ids)).encode()).hexdigest()[:12]
    return f"steps-{step_ids[0]}-{len(step_ids)}-{digest}"


def batches(step_ids: list[int], per_job: int) -> list[list[int]]:
    return [step_ids[i:i + per_job] for i in range(0, len(step_ids), max(1, per_job))]


def job_size(due: int, workers: int, steps_per_job: int) -> int:
    """Steps per job for a pass of ``due`` steps: every live worker gets a share, and no job carries more than
    ``steps_per_job``."""
    return max(1, min(steps_per_job, -(-due // max(1, workers))))


def live_workers(ctx: Context) -> int:
    try:
        return Worker.count(queue=ctx.queue())
    except (redis.exceptions.RedisError, OSError):
        return 1  # enqueueing will fail too and hand the steps back; the size does not matter then


def dispatch_due(ctx: Context, limit: int | None = None) -> int:
    """Claim up to ``limit`` due steps and enqueue them. Returns how many were enqueued."""
    limit = limit or ctx.settings.dispatch_batch
    now = ctx.clock.now()
    workers = live_workers(ctx)
    with ctx.session() as session:
        query = (select(Step.id).where(Step.state == "pending", Step.due_at <= now)
                 .order_by(Step.due_at).limit(limit))
        if is_postgres(ctx.engine):
            query = query.with_for_update(skip_locked=True)  # several dispatchers may run side by side
        ids = list(session.scalars(query))
        if not ids:
            return 0
        per_job = job_size(len(ids), workers, ctx.settings.steps_per_job)
        for batch in batches(ids, per_job):
            session.execute(update(Step).where(Step.id.in_(batch))
                            .values(state="queued", claimed_at=now, job_id=batch_job_id(batch)))
    try:
        enqueue(ctx.queue(), ids, per_job=per_job)
    except (redis.exceptions.RedisError, OSError) as exc:
        # Hand the steps back so the next tick retries them rather than waiting for the reconciler.
        with ctx.session() as session:
            session.execute(update(Step).where(Step.id.in_(ids), Step.state == "queued")
                            .values(state="pending", claimed_at=None))
        log.warning("could not enqueue %d step(s), will retry: %s", len(ids), exc)
        return 0
    log.debug("dispatched %d step(s)", len(ids))
    return len(ids)


def enqueue(queue: Queue, step_ids: list[int], per_job: int = 1) -> None:
    """Put the steps on RQ, ``per_job`` to a job, in one pipeline."""
    jobs = []
    for batch in batches(step_ids, per_job):
        if len(batch) == 1:
            jobs.append(Queue.prepare_data(JOB_FUNC, args=(batch[0],), job_id=job_id(batch[0]), result_ttl=60,
                                           failure_ttl=86400, description=f"step {batch[0]}"))
        else:
            jobs.append(Queue.prepare_data(BATCH_JOB_FUNC, args=(batch,), job_id=batch_job_id(batch),
                                           result_ttl=60, failure_ttl=86400,
                                           description=f"{len(batch)} steps from {batch[0]}"))
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def reconcile(ctx: Context, stale_after: timedelta | None = None) -> int:
    """Return stale ``queued``/``running`` steps to ``pending`` when their RQ job is gone or finished.

    A step still waiting in Redis or running on a live worker is left alone, so a long backlog is not duplicated.
    """
    stale_after = stale_after or timedelta(seconds=ctx.settings.reconcile_after_s)
    now = ctx.clock.now()
    cutoff = now - stale_after
    recovered = 0
    with ctx.session() as session:
        stale = list(session.scalars(select(Step).where(Step.state.in_(("queued", "running")),
                                                        Step.claimed_at <= cutoff).limit(1000)))
        for step in stale:
            if _job_alive(ctx, step.job_id or job_id(step.id), stale_after):
                continue
            step.state, step.claimed_at, step.job_id = "pending", None, None
            step.outcome = "recovered by the reconciler (job lost: Redis flushed or worker died)"
            recovered += 1
    if recovered:
        log.warning("reconciler returned %d lost step(s) to pending", recovered)
    return recovered


def _job_alive(ctx: Context, jid: str, stale_after: timedelta) -> bool:
    try:
        job = Job.fetch(jid, connection=ctx.redis)
    except Exception:  # noqa: BLE001 - NoSuchJobError, or a job whose data was flushed
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED:
        # A worker killed with SIGKILL leaves its job STARTED until RQ's own registry cleanup, minutes later;
        # a started job whose worker has not sent a heartbeat for ``stale_after`` (wall clock) is abandoned.
        beat = job.last_heartbeat or job.started_at
        if beat is None:
            return False
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=timezone.utc)
        return datetime.now(timezone.utc) - beat < stale_after
    if status == JobStatus.QUEUED:
        # A worker that dies between taking the job off the queue and starting it leaves it QUEUED but in no
        # queue (RQ parks it in an intermediate list until its own cleanup): only a job still waiting counts.
        return ctx.redis.lpos(ctx.queue().key, job.id) is not None
    return status in (JobStatus.DEFERRED, JobStatus.SCHEDULED)


@dataclass
class Backlog:
    queue_depth: int
    due_not_dispatched: int
    oldest_lag_s: float
    failed_steps: int


def backlog(ctx: Context, now: datetime | None = None) -> Backlog:
    now = now or ctx.clock.now()
    with ctx.session() as session:
        due = session.scalar(select(func.count()).select_from(Step)
                             .where(Step.state == "pending", Step.due_at <= now)) or 0
        oldest = session.scalar(select(func.min(Step.due_at))
                                .where(Step.state.in_(("pending", "queued")), Step.due_at <= now))
        failed = session.scalar(select(func.count()).select_from(Step).where(Step.state == "failed")) or 0
    lag = (now - oldest).total_seconds() if oldest else 0.0
    return Backlog(queue_depth=len(ctx.queue()), due_not_dispatched=due, oldest_lag_s=max(lag, 0.0),
                   failed_steps=failed)


def run_forever(ctx: Context, stop: threading.Event) -> None:
    """The dispatcher process: dispatch every ``dispatch_interval_s``; reconcile once a minute, or twice per
    ``reconcile_after_s`` when that is shorter, so a lost step waits at most about 1.5 times that threshold."""
    interval = ctx.settings.dispatch_interval_s
    reconcile_every = min(60.0, ctx.settings.reconcile_after_s / 2)
    last_reconcile = 0.0
    import time

    log.info("dispatcher started (every %.2fs, batch %d)", interval, ctx.settings.dispatch_batch)
    while not stop.is_set():
        try:
            while dispatch_due(ctx) >= ctx.settings.dispatch_batch and not stop.is_set():
                pass  # a full batch means more are due: keep draining before sleeping
            if time.monotonic() - last_reconcile > reconcile_every:
                reconcile(ctx)
                last_reconcile = time.monotonic()
            schedule.tick(ctx)  # periodic work (calendar sync, push renewal), declared in workflows/schedule.py
        except Exception:  # noqa: BLE001 - a database blip must not kill the dispatcher
            log.exception("dispatcher tick failed; retrying")
            stop.wait(min(5.0, interval * 10))
            continue
        stop.wait(interval)
