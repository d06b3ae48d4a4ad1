"""Pure limits on client messages: quiet hours at night and at most N messages per client per day.

A message over a limit is deferred (its step re-planned for later, with the reason in ``Step.outcome``), never
dropped. Exempt: what the client triggered and what would be useless later (``Send.urgent``); owner notes.
A deferral that would land after the appointment starts is not made: a late message beats a useless one.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from workflows.planner import end_of_quiet, in_quiet_hours
from workflows.policy import Policy


def day_bounds(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """The client's local calendar day around ``now``, as UTC instants."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone).date()
    start = datetime.combine(local, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(local + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start.astimezone(now.tzinfo), end.astimezone(now.tzinfo)


def defer_until(now: datetime, tz: str, policy: Policy, *, sent_today: int,
                deadline: datetime | None) -> tuple[datetime, str] | None:
    """When a non-urgent client message due ``now`` should go instead, and why; ``None``: send now.

    ``sent_today``: counted messages already sent (or being sent) to the client today in their zone.
    ``deadline``: after this instant the message is useless (the appointment's start), or ``None``.
    """
    later: tuple[datetime, str] | None = None
    if in_quiet_hours(now, tz, policy):
        later = (end_of_quiet(now, tz, policy), "quiet hours in the client's zone")
    elif sent_today >= policy.max_messages_per_day:
        _, tomorrow = day_bounds(now, tz)
        morning = end_of_quiet(tomorrow - timedelta(minutes=1), tz, policy)
        later = (max(tomorrow, morning), f"daily limit of {policy.max_messages_per_day} message(s) reached")
    if later is None:
        return None
    if deadline is not None and later[0] >= deadline:
        return None
    return later
