"""Fault 5: daylight-saving transitions in the owner's and the client's zones, and a clock that jumps.

Proves, on a simulated clock and the real dispatcher + RQ worker, that around each 2026 transition (New York and
Madrid, spring and autumn, owner and client in different zones) every planned step fires exactly once and none is
left behind: reminders keep their absolute offsets (48 h before is 48 real hours, never an hour late) unless quiet
hours move them earlier; a clock stepped back (NTP correction) re-sends nothing, and a clock that jumps forward
runs what fell in the gap once, skipping (with the reason) what has become pointless.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from store.models import Message, Step
from tests.factories import make_appointment, make_owner
from tests.faults.harness import DeliveryCounter, first_lines

pytestmark = [pytest.mark.faults, pytest.mark.slow]

UTC = timezone.utc
# (transition instant in UTC, owner zone, client zone)
TRANSITIONS = [
    (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), "America/New_York", "Europe/Madrid"),  # NY springs forward
    (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Europe/Madrid", "America/New_York"),  # Madrid springs forward
    (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "Europe/Madrid", "America/New_York"),  # Madrid falls back
    (datetime(2026, 11, 1, 6, 0, tzinfo=UTC), "America/New_York", "Europe/Madrid"),  # NY falls back
]
OFFSETS_H = (-3, 1, 25, 47, 49)  # appointment starts relative to the transition


def _run_until(stack, until: datetime) -> None:  # type: ignore[no-untyped-def]
    while True:
        stack.run_due()
        with stack.session() as s:
            nxt = s.scalar(select(Step.due_at).where(Step.state == "pending").order_by(Step.due_at).limit(1))
        if nxt is None or nxt > until:
            stack.clock.set(until)
            stack.run_due()
            return
        stack.clock.set(max(nxt, stack.clock.now()))


def _settled(counter: DeliveryCounter) -> dict[str, int]:
    time.sleep(0.2)  # let inotify report the last renames
    return dict(counter.snapshot())


def test_dst_transitions_and_clock_jumps_fire_every_step_once(stack):  # type: ignore[no-untyped-def]
    counter = DeliveryCounter(stack.settings.outbox_dir)
    try:
        appts: list[tuple[int, datetime]] = []
        for n, (transition, owner_tz, client_tz) in enumerate(TRANSITIONS):
            stack.clock.set(transition - timedelta(days=5))
            with stack.session() as s:
                owner = make_owner(s, stack.clock.now(), email=f"owner{n}@example.com", tz=owner_tz)
                for h in OFFSETS_H:
                    starts = transition + timedelta(hours=h)
                    a = make_appointment(s, owner, stack.clock.now(), starts, client_email=f"c{n}-{h}@example.com",
                                         client_tz=client_tz, uid=f"dst-{n}-{h}")
                    appts.append((a.id, starts))
            _run_until(stack, transition + timedelta(days=3))

            # An NTP step back by two hours: nothing already done runs again.
            before = _settled(counter)
            stack.clock.set(stack.clock.now() - timedelta(hours=2))
            stack.run_due()
            assert _settled(counter) == before, "a clock stepped back re-sent something"

        # A clock that jumps forward a whole day at once: what fell in the gap runs once.
        stack.clock.set(stack.clock.now() + timedelta(days=1))
        stack.run_due()
        stack.run_due()

        with stack.session() as s:
            left = list(s.scalars(select(Step).where(Step.state.in_(("pending", "queued", "running")),
                                                     Step.due_at <= stack.clock.now())))
            assert not left, "steps that never fired: " + first_lines(f"{x.kind}@{x.due_at}" for x in left)
            dup_rows = s.execute(select(Message.idempotency_key, func.count()).group_by(Message.idempotency_key)
                                 .having(func.count() > 1)).all()
            assert not dup_rows
            reminders = list(s.scalars(select(Step).where(Step.kind.like("reminder_%"))))
            sent = {m.idempotency_key: m for m in s.scalars(select(Message).where(Message.status == "sent"))}

        delivered = _settled(counter)
        twice = {k: v for k, v in delivered.items() if v > 1}
        assert not twice, f"delivered more than once: {twice}"
        assert set(delivered) == set(sent), "every sent message was delivered, and nothing else"

        starts_of = dict(appts)
        for step in reminders:
            starts = starts_of[step.subject_id]
            hours = int(step.payload["hours"])
            if not step.payload.get("immediate"):
                # Absolute offset, never later than planned; quiet hours may only move it earlier.
                assert step.due_at <= starts - timedelta(hours=hours) or step.attempts > 1, (step.kind, step.due_at)
            if step.state == "done":
                msg = sent[step.idempotency_key]
                assert msg.sent_at is not None and msg.sent_at < starts, (step.kind, msg.sent_at, starts)
            else:
                assert step.state == "skipped" and step.outcome, (step.kind, step.state, step.outcome)
    finally:
        counter.close()
