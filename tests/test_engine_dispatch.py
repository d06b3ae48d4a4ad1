"""Engine guarantees: concurrent dispatchers on PostgreSQL claim disjoint sets (FOR UPDATE SKIP LOCKED); a step whose
appointment was deleted ends quietly; a final failure is visible and blocks nothing; a dropped database connection
loses nothing."""
from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import timedelta

import psycopg
import pytest
from rq.job import Job
from sqlalchemy import func, select

from reagenda import runtime
from store.models import Appointment, Message, Owner, Step
from tests import flowkit as fk
from tests.conftest import _make_stack, _settings
from tests.factories import make_appointment, make_owner
from workflows import dispatcher


@pytest.fixture
def pg_stack(tmp_path, postgres_url, real_redis_url):  # type: ignore[no-untyped-def]
    """PostgreSQL + real Redis only: these faults and SKIP LOCKED exist only there (SQLite runs one dispatcher)."""
    s = _make_stack("postgres", tmp_path, postgres_url, real_redis_url)
    runtime.install(s.ctx)
    yield s
    runtime.install(None)
    s.ctx.close()


def _seed_due(stack, n: int) -> None:  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        s.add_all([Step(owner_id=owner.id, kind="reminder_48h", subject_type="appointment", subject_id=10_000 + i,
                        due_at=now - timedelta(seconds=i % 50), state="pending", attempts=0, max_attempts=5,
                        idempotency_key=f"bulk-{i}", payload={}, outcome="", created_at=now) for i in range(n)])


def test_two_dispatchers_on_postgres_claim_disjoint_sets(pg_stack, tmp_path):
    stack = pg_stack
    _seed_due(stack, 3000)
    other = runtime.build(_settings(tmp_path / "b", stack.settings.database_url, stack.settings.redis_url),
                          stack.clock)
    counts = {"a": 0, "b": 0}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def drain(name: str, ctx) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            while (n := dispatcher.dispatch_due(ctx, limit=50)) > 0:
                counts[name] += n
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=("a", stack.ctx)), threading.Thread(target=drain, args=("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    other.close()
    assert not errors
    assert counts["a"] > 0 and counts["b"] > 0, f"both dispatchers took part: {counts}"
    assert counts["a"] + counts["b"] == 3000
    jobs = Job.fetch_many(stack.ctx.queue().get_job_ids(), connection=stack.ctx.redis)
    carried = [sid for job in jobs for sid in (job.args[0] if isinstance(job.args[0], list) else [job.args[0]])]
    assert len(carried) == 3000 and len(set(carried)) == 3000, "every step in exactly one job: none claimed twice"
    assert len(jobs) < 3000, "steps travel in batches, not one job each"
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(Step).where(Step.state != "queued")) == 0


def test_a_step_whose_appointment_was_deleted_ends_quietly(stack, caplog):
    _, _, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    with stack.session() as s:
        s.delete(s.get(Appointment, appt_id))
    caplog.set_level(logging.INFO, logger="workflows.executor")
    stack.run_due()
    st = fk.steps(stack, appt_id)
    assert st["confirm_request"].state == "skipped"
    assert st["confirm_request"].outcome == "appointment no longer exists"
    assert any("appointment no longer exists" in r.getMessage() for r in caplog.records)


def test_final_failure_is_visible_and_blocks_nothing(stack, monkeypatch):
    _, _, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    monkeypatch.setattr(stack.ctx, "settings", dataclasses.replace(stack.settings, email_backend="pigeon"))
    stack.run_due()
    st = fk.steps(stack, appt_id)["confirm_request"]
    assert st.state == "failed" and "EMAIL_BACKEND=pigeon" in st.outcome
    monkeypatch.undo()
    fk.run_until(stack, stack.clock.now() + timedelta(days=1, hours=1))
    assert fk.sent(stack, kind="reminder"), "later steps still run"
    with stack.session() as s:
        assert s.scalar(select(Message.status).where(Message.step_id == st.id)) == "failed"


def test_a_dropped_database_connection_loses_nothing(pg_stack):
    stack = pg_stack
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now, policy={"confirmations": False})
        for i in range(20):
            make_appointment(s, owner, now, now + timedelta(hours=30, minutes=i), client_email=f"c{i}@example.com",
                             uid=f"evt-{i}")
    dbname = stack.settings.database_url.rsplit("/", 1)[-1]
    admin_url = stack.settings.database_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchone()[0]
    assert killed >= 1, "the pool held connections to drop"
    stack.run_due()  # pre-ping replaces the dead connections; a step that still met one is retried with backoff
    stack.clock.advance(timedelta(minutes=2))
    stack.run_due()
    assert len(fk.sent(stack, kind="reminder")) == 20
    dispatcher.reconcile(stack.ctx, timedelta(0))
    stack.run_due()
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 20
        assert s.scalar(select(func.count()).select_from(Owner)) == 1
