"""Pure planning: which steps an appointment should have, given its state, its policy snapshot and now.

No database, no clock, no I/O: every input is an argument, so the rules can be tested exhaustively and the same
functions drive the workers, ``reagenda simulate`` and the dashboard timeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from workflows.policy import Policy


@dataclass(frozen=True)
class AppointmentFacts:
    """What the planner needs to know about an appointment (a plain value, detached from the ORM)."""

    id: int
    owner_id: int
    starts_at: datetime
    status: str  # scheduled | cancelled | done
    start_seen_at: datetime  # when the current start time was first seen
    client_timezone: str


@dataclass(frozen=True)
class PlannedStep:
    kind: str
    due_at: datetime
    key: str  # idempotency key: unique per (subject, kind, start time)
    payload: dict[str, Any] = field(default_factory=dict)


def step_key(appointment_id: int, kind: str, starts_at: datetime) -> str:
    """Deterministic, ``[A-Za-z0-9_-]`` only, so it can also name the RQ job."""
    return f"a{appointment_id}-{kind}-{starts_at:%Y%m%dT%H%M%SZ}"


def plan_reminders(appt: AppointmentFacts, policy: Policy) -> list[PlannedStep]:
    """Reminders at each offset before the start (48 h and 2 h by default).

    Booked inside a reminder's window (its moment had already passed when this start time was first seen): that
    reminder goes out at once instead of being skipped; when several windows have passed, one immediate reminder
    (the fullest one, with the largest offset) stands for all of them. Night in the client's zone moves a
    reminder earlier, never later than the appointment.
    """
    if appt.status != "scheduled":
        return []
    offsets = sorted(set(policy.reminder_hours), reverse=True)
    passed = [h for h in offsets if appt.starts_at - timedelta(hours=h) <= appt.start_seen_at]
    steps: list[PlannedStep] = []
    if passed:
        hours = passed[0]
        kind = f"reminder_{hours}h"
        steps.append(PlannedStep(kind, appt.start_seen_at, step_key(appt.id, kind, appt.starts_at),
                                 {"hours": hours, "starts_at": appt.starts_at.isoformat(), "immediate": True,
                                  "covers": passed}))
    for hours in offsets:
        if hours in passed:
            continue
        kind = f"reminder_{hours}h"
        due = appt.starts_at - timedelta(hours=hours)
        due = earlier_if_quiet(due, appt.client_timezone, policy, not_before=appt.start_seen_at)
        steps.append(PlannedStep(kind, due, step_key(appt.id, kind, appt.starts_at),
                                 {"hours": hours, "starts_at": appt.starts_at.isoformat()}))
    return steps


def plan_appointment(appt: AppointmentFacts, policy: Policy) -> list[PlannedStep]:
    """Every step an appointment should have now. Steps not in the result are obsolete and get cancelled."""
    return plan_reminders(appt, policy)


def _parse_hhmm(value: str) -> time:
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def in_quiet_hours(instant: datetime, tz: str, policy: Policy) -> bool:
    local = instant.astimezone(ZoneInfo(tz)).time()
    start, end = _parse_hhmm(policy.quiet_start), _parse_hhmm(policy.quiet_end)
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def earlier_if_quiet(due: datetime, tz: str, policy: Policy, *, not_before: datetime) -> datetime:
    """Move ``due`` back to just before quiet hours began that night in ``tz``.

    If that would be before ``not_before`` (the booking itself), keep ``due``: a message at night beats no
    reminder at all, and a reminder is never moved later than planned.
    """
    if not in_quiet_hours(due, tz, policy):
        return due
    zone = ZoneInfo(tz)
    local = due.astimezone(zone)
    start = _parse_hhmm(policy.quiet_start)
    day = local.date() if local.time() >= start else local.date() - timedelta(days=1)
    quiet_began = datetime.combine(day, start, tzinfo=zone)
    shifted = (quiet_began - timedelta(minutes=1)).astimezone(due.tzinfo)
    return shifted if shifted >= not_before else due
