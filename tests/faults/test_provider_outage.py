"""Fault 4: the email provider (SendGrid, a local fake of its v3 API) unreachable for an hour, on a simulated clock.

Proves that an outage delays messages instead of losing them: a reminder that is still useful when the provider
comes back is sent late (once), and a message whose moment has passed (a reminder for an appointment that has
already started) is not sent, with the reason in the step's outcome for the owner to see.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from reagenda import runtime
from store.models import Message, Step
from tests.factories import make_appointment, make_owner
from tests.fakes.sendgrid import RunningFake

pytestmark = [pytest.mark.faults]

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused, as when the provider is down


def _use_provider(stack, host: str) -> None:  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(stack.settings, email_backend="sendgrid", sendgrid_api_key="SG.fault-test",
                                   sendgrid_host=host)
    runtime.install(dataclasses.replace(stack.ctx, settings=settings))


def _run_until(stack, until: datetime) -> None:  # type: ignore[no-untyped-def]
    """Move the clock from due step to due step (never past ``until``), running dispatcher + worker at each."""
    while True:
        stack.run_due()
        with stack.session() as s:
            nxt = s.scalar(select(Step.due_at).where(Step.state == "pending").order_by(Step.due_at).limit(1))
        if nxt is None or nxt > until:
            stack.clock.set(until)
            stack.run_due()
            return
        stack.clock.set(max(nxt, stack.clock.now()))


def _reminders(stack, appt_id: int) -> list[Step]:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return list(s.scalars(select(Step).where(Step.subject_id == appt_id, Step.kind.like("reminder_%"),
                                                 Step.subject_type == "appointment").order_by(Step.due_at)))


def test_an_hour_long_outage_sends_late_or_explains_why_not(stack):  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        later = make_appointment(s, owner, now, now + timedelta(hours=3), client_email="late@example.com")
        soon = make_appointment(s, owner, now, now + timedelta(minutes=40), client_email="soon@example.com")
        later_id, soon_id = later.id, soon.id

    with RunningFake() as fake:
        _use_provider(stack, UNREACHABLE)
        outage_end = now + timedelta(hours=1)
        _run_until(stack, outage_end)
        assert fake.sent == []
        with stack.session() as s:
            assert s.scalar(select(Step).where(Step.state == "failed")) is None, "an outage must not fail a step"

        _use_provider(stack, fake.url)
        _run_until(stack, now + timedelta(hours=4))

    # The 48-hour reminder (booked inside its window, due at once) went out late, exactly once.
    first = _reminders(stack, later_id)[0]
    assert first.state == "done", first.outcome
    assert first.attempts > 1
    with stack.session() as s:
        msg = s.scalar(select(Message).where(Message.idempotency_key == first.idempotency_key))
        assert msg is not None and msg.status == "sent" and msg.error == ""
        assert msg.sent_at >= outage_end
    to = [p["to"][0]["email"] for body in fake.sent for p in body["personalizations"]]
    subjects = [body["subject"] for body in fake.sent if body["personalizations"][0]["to"][0]["email"] == "late@example.com"]
    assert len(subjects) == len(set(subjects)), f"a message went out twice after the outage: {subjects}"
    # The appointment that started during the outage: its reminder is not sent, and the owner sees why.
    missed = _reminders(stack, soon_id)
    assert missed and all(st.state == "skipped" for st in missed), [(st.kind, st.state, st.outcome) for st in missed]
    assert all("started" in st.outcome or "too late" in st.outcome for st in missed)
    with stack.session() as s:
        for st in missed:
            msg = s.scalar(select(Message).where(Message.idempotency_key == st.idempotency_key))
            assert msg is None or msg.status != "sent", "a reminder for an appointment already started went out"
