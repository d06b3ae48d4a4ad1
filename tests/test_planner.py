"""The pure reminder rules: windows, bookings inside a window, quiet hours."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workflows.planner import AppointmentFacts, earlier_if_quiet, in_quiet_hours, plan_reminders, step_key
from workflows.policy import Policy

UTC = timezone.utc
SEEN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def facts(starts_at: datetime, *, seen: datetime = SEEN, tz: str = "Europe/Madrid",
          status: str = "scheduled") -> AppointmentFacts:
    return AppointmentFacts(id=7, owner_id=1, starts_at=starts_at, status=status, start_seen_at=seen,
                            client_timezone=tz)


def by_kind(steps):  # type: ignore[no-untyped-def]
    return {s.kind: s for s in steps}


def test_reminders_at_48_and_2_hours():
    start = SEEN + timedelta(days=5)
    steps = by_kind(plan_reminders(facts(start), Policy()))
    assert steps["reminder_48h"].due_at == start - timedelta(hours=48)
    assert steps["reminder_2h"].due_at == start - timedelta(hours=2)


def test_booked_inside_the_48h_window_sends_at_once():
    start = SEEN + timedelta(hours=30)
    steps = by_kind(plan_reminders(facts(start), Policy()))
    assert steps["reminder_48h"].due_at == SEEN
    assert steps["reminder_48h"].payload["immediate"] is True
    assert steps["reminder_2h"].due_at == start - timedelta(hours=2)


def test_booked_inside_both_windows_sends_one_reminder_at_once():
    start = SEEN + timedelta(hours=1)
    steps = plan_reminders(facts(start), Policy())
    assert [s.kind for s in steps] == ["reminder_48h"]
    assert steps[0].due_at == SEEN and steps[0].payload["covers"] == [48, 2]


def test_cancelled_appointment_has_no_reminders():
    assert plan_reminders(facts(SEEN + timedelta(days=5), status="cancelled"), Policy()) == []


def test_moving_changes_the_key():
    a, b = SEEN + timedelta(days=5), SEEN + timedelta(days=6)
    assert step_key(7, "reminder_48h", a) != step_key(7, "reminder_48h", b)
    assert step_key(7, "reminder_48h", a).replace("-", "").replace("_", "").isalnum()


def test_night_reminder_moves_earlier_never_later():
    # An appointment at 08:30 Madrid time: the 2 h reminder would be 06:30, inside quiet hours (21:00-08:00).
    start = datetime(2026, 3, 10, 7, 30, tzinfo=UTC)  # 08:30 CET
    steps = by_kind(plan_reminders(facts(start), Policy()))
    due = steps["reminder_2h"].due_at
    assert due < start - timedelta(hours=2)
    assert not in_quiet_hours(due, "Europe/Madrid", Policy())
    assert due.astimezone(UTC) == datetime(2026, 3, 9, 19, 59, tzinfo=UTC)  # 20:59 the evening before


def test_quiet_hours_follow_the_clients_zone():
    # 06:30 UTC is night in Mexico City (00:30) and morning in Madrid (07:30 is still quiet; 08:30 is not).
    instant = datetime(2026, 3, 10, 7, 30, tzinfo=UTC)
    assert in_quiet_hours(instant, "America/Mexico_City", Policy())
    assert not in_quiet_hours(instant, "Europe/Madrid", Policy())


def test_quiet_shift_never_goes_before_the_booking():
    due = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)  # 06:00 Madrid
    booked = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
    assert earlier_if_quiet(due, "Europe/Madrid", Policy(), not_before=booked) == due


def test_policy_snapshot_roundtrip_ignores_unknown_keys():
    p = Policy.from_dict({"reminder_hours": [2, 72], "deposit_cents": 2000, "removed_setting": 1})
    assert p.reminder_hours == (72, 2) and p.deposit_cents == 2000
    assert Policy.from_dict(p.to_dict()) == p
