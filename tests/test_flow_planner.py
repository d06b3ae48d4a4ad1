"""Pure planning rules of the flows (no database): night bookings, confirmation, the wait, aftercare, ghosting."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workflows.planner import (AppointmentFacts, ClientFacts, add_months, plan_appointment, plan_client,
                               plan_reminders)
from workflows.policy import Policy

UTC = timezone.utc
NIGHT = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 in Madrid


def facts(starts_at: datetime, seen: datetime = NIGHT, **kw) -> AppointmentFacts:  # type: ignore[no-untyped-def]
    return AppointmentFacts(id=3, owner_id=1, starts_at=starts_at, status=kw.pop("status", "scheduled"),
                            start_seen_at=seen, client_timezone="Europe/Madrid", **kw)


def kinds(steps):  # type: ignore[no-untyped-def]
    return {s.kind: s for s in steps}


def test_booked_at_night_the_immediate_reminder_waits_for_the_morning():
    start = datetime(2026, 3, 3, 17, 0, tzinfo=UTC)  # 18:00 the next day: both windows not passed for 2 h
    r = kinds(plan_reminders(facts(start), Policy()))
    assert r["reminder_48h"].due_at == datetime(2026, 3, 3, 7, 1, tzinfo=UTC)  # 08:01 Madrid


def test_booked_at_night_for_early_next_morning_goes_at_once():
    start = datetime(2026, 3, 3, 7, 15, tzinfo=UTC)  # 08:15 Madrid: the morning is too close to the start
    r = kinds(plan_reminders(facts(start), Policy()))
    assert r["reminder_48h"].due_at == NIGHT


def test_confirmation_nudge_and_owner_note_only_when_booked_before_the_nudge_moment():
    seen = datetime(2026, 3, 2, 9, tzinfo=UTC)
    early = kinds(plan_appointment(facts(seen + timedelta(days=3), seen), Policy()))
    assert {"confirm_request", "confirm_nudge", "confirm_owner_note"} <= set(early)
    late = kinds(plan_appointment(facts(seen + timedelta(hours=20), seen), Policy()))
    assert "confirm_request" in late and "confirm_nudge" not in late
    confirmed = kinds(plan_appointment(facts(seen + timedelta(days=3), seen, confirmation="confirmed"), Policy()))
    assert "confirm_nudge" not in confirmed
    answered = kinds(plan_appointment(facts(seen + timedelta(days=3), seen, last_reply_at=seen + timedelta(hours=1)),
                                      Policy()))
    assert "confirm_nudge" not in answered


def test_the_wait_in_ask_and_automatic_modes():
    seen = datetime(2026, 3, 2, 9, tzinfo=UTC)
    start = seen + timedelta(days=2)
    ask = kinds(plan_appointment(facts(start, seen), Policy()))
    assert ask["arrival_check"].due_at == start + timedelta(minutes=5) and "noshow_deadline" not in ask
    waiting = kinds(plan_appointment(facts(start, seen, attendance="waiting",
                                           attendance_at=start + timedelta(minutes=6)), Policy()))
    assert waiting["not_yet_notice"].due_at == start + timedelta(minutes=6)
    assert waiting["noshow_deadline"].due_at == start + timedelta(minutes=15)
    auto = kinds(plan_appointment(facts(start, seen), Policy(no_show_mode="automatic")))
    assert auto["not_yet_notice"].due_at == start + timedelta(minutes=5) and "arrival_check" not in auto


def test_after_a_no_show_and_after_a_cancellation():
    seen = datetime(2026, 3, 2, 9, tzinfo=UTC)
    at = seen + timedelta(days=2, minutes=15)
    ns = kinds(plan_appointment(facts(seen + timedelta(days=2), seen, status="done", attendance="no_show",
                                      attendance_at=at), Policy()))
    assert ns["noshow_policy"].due_at == at + timedelta(days=2)
    assert ns["noshow_ghost"].due_at == at + timedelta(days=5)
    cancelled = kinds(plan_appointment(facts(seen + timedelta(days=5), seen, status="cancelled", cancelled_at=seen,
                                             deposit_cents=2000), Policy(business_cycle_months=12)))
    assert cancelled["cancel_followup"].due_at == seen + timedelta(days=7)
    assert cancelled["reengage"].due_at == datetime(2027, 3, 2, 9, tzinfo=UTC)
    assert cancelled["grace_check"].due_at == seen + timedelta(days=8)
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)


def test_ghosting_plan_and_an_answer_ends_it():
    started = datetime(2026, 3, 2, 9, tzinfo=UTC)
    c = ClientFacts(id=5, owner_id=1, state="ghosting", ghost_started_at=started, last_reply_at=None,
                    timezone="Europe/Madrid")
    g = kinds(plan_client(c, Policy()))
    assert g["ghost_checkin"].due_at == started
    assert g["ghost_ultimatum"].due_at == started + timedelta(days=7)
    assert g["ghost_close"].due_at == started + timedelta(days=14)
    answered = ClientFacts(**{**c.__dict__, "last_reply_at": started + timedelta(days=1)})
    assert plan_client(answered, Policy()) == []
