"""Booking and moving end to end against a real Radicale CalDAV server, on PostgreSQL and SQLite.

A slot busy in any of the owner's calendars is never offered and never booked; a booking writes the event and
plans the reminders; a reschedule moves the event in the calendar and re-plans; 20 concurrent requests for one slot
produce exactly one event; a calendar that is down or revoked leaves nothing half booked and tells the owner.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from store.models import Appointment, CalendarConnection, Message, SlotHold, Step
from tests.booking_helpers import BookingOwner, busy_event, make_booking_owner
from tests.radicale_server import RadicaleServer
from workflows.availability import SlotShape
from workflows.booking import (CalendarUnavailable, ClientDetails, OwnerCalendars, SlotTaken, book,
                               default_connectors, move, offer_slots)
from store.models import Owner

UTC = timezone.utc
MADRID = ZoneInfo("Europe/Madrid")
HOUR = SlotShape(duration=timedelta(hours=1))


@pytest.fixture(scope="module")
def radicale():
    with RadicaleServer() as server:
        yield server


@pytest.fixture
def owner(stack, radicale) -> BookingOwner:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return make_booking_owner(s, radicale, stack.settings.secret_key, stack.clock.now())


def _slots(stack, bo: BookingOwner, days: int = 3) -> list[datetime]:  # type: ignore[no-untyped-def]
    factory = default_connectors(stack.settings)
    with stack.ctx.sessions() as s:
        owner = s.get(Owner, bo.owner_id)
        return offer_slots(s, owner, HOUR, OwnerCalendars(s, bo.owner_id, factory), now=stack.clock.now(),
                           days=days)


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=MADRID).astimezone(UTC)


def _count(stack, model, *where) -> int:  # type: ignore[no-untyped-def]
    with stack.ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)))


def test_a_slot_busy_in_any_calendar_is_never_offered_nor_booked(stack, radicale, owner):
    # Now is Monday 2 March 10:00 Madrid; with 2 h notice the first slot is 12:00.
    radicale.put(owner.calendar_urls["personal"], "p1.ics", busy_event("p1", _at(2, 12), _at(2, 13)))
    radicale.put(owner.calendar_urls["family"], "f1.ics", busy_event("f1", _at(2, 15) + timedelta(minutes=30),
                                                                      _at(2, 16)))
    slots = _slots(stack, owner, days=1)
    monday = [s.astimezone(MADRID).strftime("%H:%M") for s in slots if s.astimezone(MADRID).day == 2]
    assert monday == ["14:00", "14:30", "16:00", "16:30", "17:00"]

    factory = default_connectors(stack.settings)
    with pytest.raises(SlotTaken):
        book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=_at(2, 12),
             details=ClientDetails(email="marta@example.com", name="Marta"), factory=factory)
    # Busy in a calendar after the page was shown: the re-check at the moment of booking refuses it.
    radicale.put(owner.calendar_urls["family"], "f2.ics", busy_event("f2", _at(2, 14), _at(2, 14) +
                                                                      timedelta(minutes=10)))
    with pytest.raises(SlotTaken):
        book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=_at(2, 14),
             details=ClientDetails(email="marta@example.com", name="Marta"), factory=factory)
    assert _count(stack, SlotHold) == 0
    assert _count(stack, Appointment) == 0
    assert owner.events(radicale, start=stack.clock.now()) == []


def test_booking_writes_the_event_plans_reminders_and_confirms(stack, radicale, owner):
    factory = default_connectors(stack.settings)
    starts = _at(4, 10)
    appt = book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=starts,
                details=ClientDetails(email="Marta@Example.com", name="Marta", phone="+34 600 000 000",
                                      locale="en", channel="email", timezone="America/Mexico_City"),
                factory=factory)
    events = owner.events(radicale, start=stack.clock.now())
    assert [(e.starts_at, e.ends_at) for e in events] == [(starts, starts + timedelta(hours=1))]
    assert events[0].uid == appt.external_uid
    assert [a.email for a in events[0].attendees] == ["marta@example.com"]
    with stack.session() as s:
        row = s.get(Appointment, appt.id)
        assert row.confirmation == "confirmed" and row.client.phone == "+34 600 000 000"
        assert row.client.locale == "en" and row.client.timezone == "America/Mexico_City"
        kinds = {st.kind: st.state for st in s.scalars(select(Step).where(Step.subject_id == appt.id))}
    assert kinds.get("reminder_48h") == "pending"
    assert kinds.get("booking_confirmation") == "pending"
    assert kinds.get("confirm_request") in (None, "cancelled")
    assert _count(stack, SlotHold) == 0
    # The slot is gone from the page.
    assert starts not in _slots(stack, owner, days=4)

    stack.run_due()
    with stack.ctx.sessions() as s:
        sent = list(s.scalars(select(Message).where(Message.kind == "booking_confirmed")))
    assert len(sent) == 1 and sent[0].status == "sent" and sent[0].recipient == "marta@example.com"
    assert "Appointment booked" in sent[0].subject and "http://reagenda.test/reschedule/" in sent[0].body_text
    assert "3:00" in sent[0].subject  # 10:00 Madrid (UTC+1) shown in Mexico City (UTC-6)
    from channels.compose import outgoing_for

    with stack.ctx.sessions() as s:  # what the email channel is given: the ICS invitation for the new time
        attachments = outgoing_for(stack.settings, s, s.get(Message, sent[0].id)).attachments
    assert len(attachments) == 1 and b"METHOD:REQUEST" in attachments[0].data
    assert starts.strftime("%Y%m%dT%H%M%SZ").encode() in attachments[0].data


def test_reschedule_moves_the_event_and_replans_the_reminders(stack, radicale, owner):
    factory = default_connectors(stack.settings)
    first = _at(5, 10)
    appt = book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=first,
                details=ClientDetails(email="marta@example.com", name="Marta"), factory=factory)
    uid = appt.external_uid
    # Busy right before it in another calendar: providers merge touching intervals, its own time is still freed.
    radicale.put(owner.calendar_urls["personal"], "gym.ics", busy_event("gym", _at(5, 9), _at(5, 10)))
    with stack.ctx.sessions() as s:
        own = s.get(Appointment, appt.id)
        offered = offer_slots(s, own.owner, HOUR, OwnerCalendars(s, owner.owner_id, factory),
                              now=stack.clock.now(), start=_at(5, 0), days=1, exclude=own)
    assert first + timedelta(minutes=30) in offered and _at(5, 9) not in offered
    new = _at(6, 16)
    # An overlapping move (one hour later, overlapping its own current time) is allowed.
    moved = move(stack.ctx, appointment_id=appt.id, starts_at=first + timedelta(minutes=30), factory=factory)
    assert moved.starts_at == first + timedelta(minutes=30)
    moved = move(stack.ctx, appointment_id=appt.id, starts_at=new, factory=factory)
    events = owner.events(radicale, start=stack.clock.now())
    assert [(e.uid, e.starts_at) for e in events] == [(uid, new)]
    with stack.session() as s:
        row = s.get(Appointment, appt.id)
        assert row.starts_at == new and row.external_uid == uid and row.move_count == 2
        steps = list(s.scalars(select(Step).where(Step.subject_id == appt.id, Step.kind == "reminder_48h")))
    live = [st for st in steps if st.state == "pending"]
    assert [st.due_at for st in live] == [new - timedelta(hours=48)]
    assert all(st.state == "cancelled" for st in steps if st not in live)
    assert _count(stack, SlotHold) == 0


def test_moving_onto_a_busy_slot_is_refused_and_nothing_moves(stack, radicale, owner):
    factory = default_connectors(stack.settings)
    appt = book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=_at(5, 10),
                details=ClientDetails(email="marta@example.com"), factory=factory)
    radicale.put(owner.calendar_urls["personal"], "dentist.ics", busy_event("d", _at(5, 16), _at(5, 17)))
    with pytest.raises(SlotTaken):
        move(stack.ctx, appointment_id=appt.id, starts_at=_at(5, 16), factory=factory)
    assert [e.starts_at for e in owner.events(radicale, start=stack.clock.now())] == [_at(5, 10)]


def test_twenty_concurrent_requests_for_one_slot_make_exactly_one_booking(stack, radicale, owner):
    factory = default_connectors(stack.settings)
    starts = _at(3, 11)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=starts,
                 details=ClientDetails(email=f"client{i}@example.com", name=f"Client {i}"), factory=factory)
            result = "booked"
        except SlotTaken:
            result = "taken"
        except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below
            result = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["booked"] + ["taken"] * 19, outcomes
    events = owner.events(radicale, start=stack.clock.now())
    assert [e.starts_at for e in events] == [starts]
    assert _count(stack, Appointment, Appointment.status == "scheduled") == 1
    assert _count(stack, SlotHold) == 0


@pytest.mark.parametrize("failure", ["revoked", "down"])
def test_calendar_failure_books_nothing_and_tells_the_owner(stack, radicale, failure):
    now = stack.clock.now()
    if failure == "revoked":
        with stack.session() as s:
            bo = make_booking_owner(s, radicale, stack.settings.secret_key, now, password="wrong-password")
    else:  # a server that was there when the calendar was connected, and is down now
        with RadicaleServer() as gone, stack.session() as s:
            bo = make_booking_owner(s, gone, stack.settings.secret_key, now)
    with pytest.raises(CalendarUnavailable):
        book(stack.ctx, owner_id=bo.owner_id, type_id=bo.type_id, starts_at=_at(4, 10),
             details=ClientDetails(email="marta@example.com", name="Marta"), factory=default_connectors(stack.settings))
    assert _count(stack, Appointment) == 0 and _count(stack, SlotHold) == 0
    with stack.session() as s:
        conn = s.get(CalendarConnection, bo.connection_id)
        assert conn.status == ("needs_reconnect" if failure == "revoked" else "ok")
        assert "marta@example.com" in conn.status_detail
        step = s.scalar(select(Step).where(Step.kind == "booking_failed"))
        assert step is not None and step.payload["reason"] == ("revoked" if failure == "revoked" else "unavailable")
    stack.run_due()
    with stack.ctx.sessions() as s:
        note = s.scalar(select(Message).where(Message.kind == "booking_failed_owner"))
    assert note is not None and note.recipient.startswith("ana-") and note.status == "sent"
    assert "marta@example.com" in note.body_text


@pytest.mark.parametrize("tz,now_utc,after", [
    # Madrid springs forward on Sunday 29 March 2026: 09:00 is 08:00 UTC before and 07:00 UTC after.
    ("Europe/Madrid", datetime(2026, 3, 26, 7, 0, tzinfo=UTC), datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),
    # Santiago falls back at midnight 4-5 April 2026: 09:00 is 12:00 UTC before and 13:00 UTC after.
    ("America/Santiago", datetime(2026, 4, 2, 11, 0, tzinfo=UTC), datetime(2026, 4, 6, 13, 0, tzinfo=UTC)),
    # Mexico City has no DST: 09:00 is 15:00 UTC across Madrid's and Santiago's changes.
    ("America/Mexico_City", datetime(2026, 3, 26, 13, 0, tzinfo=UTC), datetime(2026, 3, 30, 15, 0, tzinfo=UTC)),
])
def test_dst_week_on_radicale_keeps_wall_clock_hours_and_books_the_right_instant(stack, radicale, tz, now_utc, after):
    stack.clock.set(now_utc)
    with stack.session() as s:
        bo = make_booking_owner(s, radicale, stack.settings.secret_key, now_utc, tz=tz,
                                rules={"hours": {d: [["09:00", "11:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
                                       "step_minutes": 60, "min_notice_minutes": 60})
    zone = ZoneInfo(tz)
    slots = _slots(stack, bo, days=7)
    firsts = {}
    for s_ in slots:
        firsts.setdefault(s_.astimezone(zone).date(), s_)
    assert {f.astimezone(zone).strftime("%H:%M") for f in firsts.values()} == {"09:00"}
    assert len(firsts) == 5 and after in slots
    appt = book(stack.ctx, owner_id=bo.owner_id, type_id=bo.type_id, starts_at=after,
                details=ClientDetails(email="marta@example.com", name="Marta", timezone="Europe/Madrid"),
                factory=default_connectors(stack.settings))
    events = bo.events(radicale, start=now_utc)
    assert [(e.starts_at, e.ends_at) for e in events] == [(after, after + timedelta(hours=1))]
    assert appt.starts_at == after
