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
    created_at: datetime | None = None  # when first seen (None: start_seen_at)
    confirmation: str = "pending"  # pending | confirmed
    attendance: str = "unknown"  # unknown | waiting (owner said "not yet") | arrived | no_show
    attendance_at: datetime | None = None
    move_count: int = 0
    cancelled_at: datetime | None = None
    late_cancel: bool = False
    last_reply_at: datetime | None = None  # the client's latest answer (any appointment), auto-replies excluded
    deposit_cents: int = 0  # the deposit in force for this appointment (policy snapshot)

    def answered_since(self, instant: datetime | None) -> bool:
        return bool(instant and self.last_reply_at and self.last_reply_at >= instant)


@dataclass(frozen=True)
class ClientFacts:
    """What the planner needs to know about a client for client-level sequences (ghosting)."""

    id: int
    owner_id: int
    state: str  # active | ghosting | closed
    ghost_started_at: datetime | None
    last_reply_at: datetime | None
    timezone: str


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
        due = morning_if_quiet(appt.start_seen_at, appt.client_timezone, policy, before=appt.starts_at)
        steps.append(PlannedStep(kind, due, step_key(appt.id, kind, appt.starts_at),
                                 {"hours": hours, "starts_at": appt.starts_at.isoformat(), "immediate": True,
                                  "covers": passed}))
    for hours in offsets:
        if hours in passed:
            continue
        kind = f"reminder_{hours}h"
        due = appt.starts_at - timedelta(hours=hours)
        due = earlier_if_quiet(due, appt.client_timezone, policy, not_before=appt.start_seen_at)
        due = morning_if_quiet(due, appt.client_timezone, policy, before=appt.starts_at)
        steps.append(PlannedStep(kind, due, step_key(appt.id, kind, appt.starts_at),
                                 {"hours": hours, "starts_at": appt.starts_at.isoformat()}))
    return steps


def plan_appointment(appt: AppointmentFacts, policy: Policy) -> list[PlannedStep]:
    """Every step an appointment should have now. Steps not in the result are obsolete and get cancelled."""
    if appt.status == "cancelled":
        return plan_after_cancellation(appt, policy)
    if appt.attendance == "no_show":
        return plan_no_show_followup(appt, policy)
    if appt.status != "scheduled":
        return []
    return (plan_confirmation(appt, policy) + plan_reminders(appt, policy) + plan_moved_notice(appt)
            + plan_arrival(appt, policy))


def once_key(appointment_id: int, kind: str) -> str:
    """Key for a step an appointment has at most once, whatever its start time (confirmation request, aftercare)."""
    return f"a{appointment_id}-{kind}"


def plan_confirmation(appt: AppointmentFacts, policy: Policy) -> list[PlannedStep]:
    """A confirmation request when the appointment appears; unconfirmed ``confirm_nudge_hours`` before: one nudge
    to the client and a note to the owner. Booked later than the nudge moment: the request is enough."""
    created = appt.created_at or appt.start_seen_at
    if not policy.confirmations or appt.confirmation != "pending" or appt.starts_at <= created:
        return []
    starts = appt.starts_at.isoformat()
    steps = [PlannedStep("confirm_request", created, once_key(appt.id, "confirm_request"), {"starts_at": starts})]
    nudge = appt.starts_at - timedelta(hours=policy.confirm_nudge_hours)
    if nudge > appt.start_seen_at and not appt.answered_since(created):
        nudge = earlier_if_quiet(nudge, appt.client_timezone, policy, not_before=appt.start_seen_at)
        steps.append(PlannedStep("confirm_nudge", nudge, step_key(appt.id, "confirm_nudge", appt.starts_at),
                                 {"starts_at": starts}))
        steps.append(PlannedStep("confirm_owner_note", nudge,
                                 step_key(appt.id, "confirm_owner_note", appt.starts_at), {"starts_at": starts}))
    return steps


def plan_moved_notice(appt: AppointmentFacts) -> list[PlannedStep]:
    """Each move tells the client the new time once; a notice not yet sent for an older time is replaced."""
    if appt.move_count <= 0 or appt.starts_at <= appt.start_seen_at:
        return []
    return [PlannedStep("moved_notice", appt.start_seen_at, step_key(appt.id, "moved_notice", appt.starts_at),
                        {"starts_at": appt.starts_at.isoformat(), "client_triggered": False})]


def plan_arrival(appt: AppointmentFacts, policy: Policy) -> list[PlannedStep]:
    """The wait: ask the owner at start + check minutes (or, in automatic mode, write to the client straight away);
    on "not yet" the client gets the link/address again and the wait-until time; at the wait-until time without
    an arrival, a no-show."""
    if appt.attendance in ("arrived", "no_show"):
        return []
    starts = appt.starts_at.isoformat()
    check = appt.starts_at + timedelta(minutes=policy.no_show_check_minutes)
    deadline = appt.starts_at + timedelta(minutes=policy.no_show_wait_minutes)
    payload = {"starts_at": starts, "wait_until": deadline.isoformat()}
    steps: list[PlannedStep] = []
    if appt.attendance == "unknown" and policy.no_show_mode != "automatic":
        steps.append(PlannedStep("arrival_check", check, step_key(appt.id, "arrival_check", appt.starts_at), payload))
        return steps
    notice_at = check if appt.attendance == "unknown" else max(appt.attendance_at or check, appt.starts_at)
    steps.append(PlannedStep("not_yet_notice", notice_at, step_key(appt.id, "not_yet_notice", appt.starts_at),
                             payload))
    steps.append(PlannedStep("noshow_deadline", deadline, step_key(appt.id, "noshow_deadline", appt.starts_at),
                             payload))
    return steps


def plan_no_show_followup(appt: AppointmentFacts, policy: Policy) -> list[PlannedStep]:
    """After a no-show: "we waited for you" at once; no answer in ``no_show_followup_days``: the no-show policy and
    a request for a new time; no answer ``ghost_after_days`` after that: the ghosting sequence starts."""
    at = appt.attendance_at or appt.starts_at
    if appt.answered_since(at):
        return [PlannedStep("noshow_waited", at, once_key(appt.id, "noshow_waited"))]
    policy_at = at + timedelta(days=policy.no_show_followup_days)
    return [
        PlannedStep("noshow_waited", at, once_key(appt.id, "noshow_waited")),
        PlannedStep("noshow_policy", policy_at, once_key(appt.id, "noshow_policy"), {"since": at.isoformat()}),
        PlannedStep("noshow_ghost", policy_at + timedelta(days=policy.ghost_after_days),
                    once_key(appt.id, "noshow_ghost"), {"since": at.isoformat()}),
    ]


def plan_after_cancellation(appt: AppointmentFacts, policy: Policy) -> list[PlannedStep]:
    """Thanks + "why?" + reschedule at once; one casual follow-up after ``followup_days``; one re-engagement
    after the business cycle; never more. A deposit carried over has a grace check at the original date + grace."""
    at = appt.cancelled_at or appt.start_seen_at
    since = {"since": at.isoformat()}
    steps = [PlannedStep("cancel_thanks", at, once_key(appt.id, "cancel_thanks"), since)]
    if not appt.answered_since(at):
        steps.append(PlannedStep("cancel_followup", at + timedelta(days=policy.followup_days),
                                 once_key(appt.id, "cancel_followup"), since))
        steps.append(PlannedStep("reengage", add_months(at, policy.business_cycle_months),
                                 once_key(appt.id, "reengage"), since))
    if appt.deposit_cents > 0 and not appt.late_cancel:
        steps.append(PlannedStep("grace_check", appt.starts_at + timedelta(days=policy.grace_days),
                                 once_key(appt.id, "grace_check"), since))
    return steps


def plan_client(client: ClientFacts, policy: Policy) -> list[PlannedStep]:
    """Client-level sequences. Ghosting: a check-in; ``ghost_wait_days`` later an ultimatum naming the closing
    date; on that date (``ultimatum_days`` later) the file is closed. Any answer stops it."""
    started = client.ghost_started_at
    if client.state != "ghosting" or started is None:
        return []
    if client.last_reply_at and client.last_reply_at >= started:
        return []
    ultimatum = started + timedelta(days=policy.ghost_wait_days)
    closing = ultimatum + timedelta(days=policy.ultimatum_days)
    stamp = f"{started:%Y%m%dT%H%M%SZ}"
    payload = {"started": started.isoformat(), "closing": closing.isoformat()}
    return [
        PlannedStep("ghost_checkin", started, f"c{client.id}-ghost_checkin-{stamp}", payload),
        PlannedStep("ghost_ultimatum", earlier_if_quiet(ultimatum, client.timezone, policy, not_before=started),
                    f"c{client.id}-ghost_ultimatum-{stamp}", payload),
        PlannedStep("ghost_close", closing, f"c{client.id}-ghost_close-{stamp}", payload),
    ]


def add_months(instant: datetime, months: int) -> datetime:
    """Same day-of-month ``months`` later (clamped to the month's last day): a business cycle is calendar months."""
    import calendar

    month0 = instant.month - 1 + months
    year, month = instant.year + month0 // 12, month0 % 12 + 1
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)


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


MORNING_MARGIN = timedelta(minutes=30)


def end_of_quiet(now: datetime, tz: str, policy: Policy) -> datetime:
    """The next moment quiet hours end in ``tz`` (plus a minute), in ``now``'s zone."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    end = _parse_hhmm(policy.quiet_end)
    candidate = datetime.combine(local.date(), end, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=zone)
    return (candidate + timedelta(minutes=1)).astimezone(now.tzinfo)


def morning_if_quiet(due: datetime, tz: str, policy: Policy, *, before: datetime) -> datetime:
    """A reminder that could not move earlier and still falls at night (booked late in the evening, say) waits for
    the morning, when the morning is at least ``MORNING_MARGIN`` before the appointment; otherwise it goes at night:
    a late reminder beats none."""
    if not in_quiet_hours(due, tz, policy):
        return due
    morning = end_of_quiet(due, tz, policy)
    return morning if morning + MORNING_MARGIN <= before else due


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
