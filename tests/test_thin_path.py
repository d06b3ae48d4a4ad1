"""Issue 2, item 6: the thin end-to-end path on a real database and a real Redis, with a real RQ worker.

An appointment 2 days and 1 minute ahead gets a 48-hour reminder step; moving the clock makes the dispatcher
enqueue it and a worker send exactly one message to the outbox. Moving the appointment re-plans the step; flushing
Redis loses nothing.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from store.models import Message, Step
from tests.factories import make_appointment, make_owner
from workflows import dispatcher
from workflows.lifecycle import record_move


def _sent(stack) -> list[Message]:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return list(s.scalars(select(Message).where(Message.status == "sent").order_by(Message.id)))


def _eml_files(stack) -> list:  # type: ignore[no-untyped-def]
    folder = stack.settings.outbox_dir
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def _setup(stack):  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    starts = now + timedelta(days=2, minutes=1)
    with stack.session() as s:
        owner = make_owner(s, now, policy={"confirmations": False})  # only the reminder here (flows: test_flow_*)
        appt = make_appointment(s, owner, now, starts)
        return appt.id, starts


def test_reminder_planned_dispatched_and_sent_once(stack):
    appt_id, starts = _setup(stack)
    with stack.session() as s:
        step = s.scalar(select(Step).where(Step.kind == "reminder_48h", Step.subject_id == appt_id))
        assert step is not None and step.state == "pending"
        assert step.due_at == starts - timedelta(hours=48)

    assert stack.run_due() == 0, "nothing is due yet"
    assert _sent(stack) == []

    stack.clock.advance(timedelta(minutes=1))
    assert stack.run_due() == 1
    sent = _sent(stack)
    assert len(sent) == 1
    assert sent[0].kind == "reminder" and sent[0].recipient == "marta@example.com"
    assert "Recordatorio" in sent[0].subject and "meet.google.com/abc-defg-hij" in sent[0].body_text
    assert "10:01" in sent[0].subject  # 09:01 UTC shown in the client's (owner's) zone, Madrid
    assert len(_eml_files(stack)) == 1

    # Running everything again sends nothing more.
    stack.clock.advance(timedelta(minutes=5))
    stack.run_due()
    dispatcher.reconcile(stack.ctx, timedelta(seconds=0))
    stack.run_due()
    assert len(_sent(stack)) == 1
    assert len(_eml_files(stack)) == 1


def test_moving_the_appointment_replans_the_reminder(stack):
    appt_id, starts = _setup(stack)
    new_start = starts + timedelta(days=1)
    with stack.session() as s:
        from store.models import Appointment

        appt = s.get(Appointment, appt_id)
        record_move(s, appt, starts_at=new_start, ends_at=new_start + timedelta(hours=1), now=stack.clock.now())

    stack.clock.advance(timedelta(minutes=1))  # the old reminder's moment
    assert stack.run_due() == 1  # only the "moved" notice (flow 3, tests/test_flow_moves.py), no old reminder
    assert [m.kind for m in _sent(stack)] == ["moved"]
    with stack.session() as s:
        states = {st.state for st in s.scalars(select(Step).where(Step.subject_id == appt_id))
                  if st.payload["starts_at"] == starts.isoformat()}
        assert states == {"cancelled"}

    stack.clock.advance(timedelta(days=1))  # the new reminder's moment
    assert stack.run_due() == 1
    sent = [m for m in _sent(stack) if m.kind == "reminder"]
    assert len(sent) == 1
    assert "10:01" in sent[0].subject and "5 de marzo" in sent[0].subject


def test_flushing_redis_after_planning_loses_nothing(stack):
    _setup(stack)
    stack.flush_redis()
    stack.clock.advance(timedelta(minutes=1))
    assert stack.run_due() == 1
    assert len(_sent(stack)) == 1


def test_flushing_redis_after_dispatch_is_recovered_by_the_reconciler(stack):
    _setup(stack)
    stack.clock.advance(timedelta(minutes=1))
    assert dispatcher.dispatch_due(stack.ctx) == 1
    stack.flush_redis()  # the job is gone before any worker saw it
    stack.work()
    assert _sent(stack) == []

    assert dispatcher.reconcile(stack.ctx) == 0, "not stale yet"
    stack.clock.advance(timedelta(seconds=stack.settings.reconcile_after_s + 1))
    assert dispatcher.reconcile(stack.ctx) == 1
    stack.run_due()
    assert len(_sent(stack)) == 1
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(Step).where(Step.state == "queued")) == 0


def test_a_job_delivered_twice_sends_once(stack):
    """RQ may deliver a step twice (re-dispatched after a reconcile while the first copy still waited)."""
    _setup(stack)
    stack.clock.advance(timedelta(minutes=1))
    assert dispatcher.dispatch_due(stack.ctx) == 1
    with stack.session() as s:
        step_id = s.scalar(select(Step.id).where(Step.state == "queued"))
    dispatcher.enqueue(stack.ctx.queue(), [step_id])  # a second copy of the same job
    stack.work()
    assert len(_sent(stack)) == 1


def test_a_batch_cut_off_after_sending_is_finished_by_the_reconciler_without_sending_again(stack):
    """Each delivery records its message at once; the batch marks its steps done together at the end. A worker
    that dies in between leaves sent steps ``running``: re-run by the reconciler, each finds its message sent and
    ends, even when its moment has passed since (a reminder after the appointment started is not 'skipped')."""
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now, policy={"confirmations": False})
        appt_ids = [make_appointment(s, owner, now, now + timedelta(days=2, minutes=1),
                                 client_email=f"c{i}@example.com", uid=f"batch-{i}").id
                    for i in range(3)]
    stack.clock.advance(timedelta(minutes=1))
    assert stack.run_due() == 3
    assert len(_sent(stack)) == 3 and len(_eml_files(stack)) == 3
    # What a worker killed between the last delivery and the batch's final update leaves behind:
    with stack.session() as s:
        s.execute(update(Step).where(Step.subject_id.in_(appt_ids)).values(state="running", finished_at=None))
    stack.clock.advance(timedelta(days=3))  # long enough for the appointments to have started
    assert dispatcher.reconcile(stack.ctx, timedelta(seconds=0)) == 3
    stack.run_due()
    with stack.session() as s:
        steps = list(s.scalars(select(Step).where(Step.subject_id.in_(appt_ids), Step.kind == "reminder_48h")))
    assert [st.state for st in steps] == ["done"] * 3
    assert all("earlier attempt" in st.outcome for st in steps)
    assert len(_sent(stack)) == 3 and len(_eml_files(stack)) == 3, "nothing delivered twice"
