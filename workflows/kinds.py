"""Step handlers: given a step that is due now, re-decide from the current state what (if anything) to do.

A handler never trusts what was true at planning time: the appointment may have moved, been cancelled or
confirmed since. Handlers only read and decide; ``workflows.executor`` records and sends.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy.orm import Session

from store.models import Appointment, Step
from workflows.decisions import Decision, Send, Skip

Handler = Callable[[Session, Step, datetime], Decision]
HANDLERS: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for kind in kinds:
            HANDLERS[kind] = fn
        return fn

    return deco


def handler_for(kind: str) -> Handler | None:
    if kind in HANDLERS:
        return HANDLERS[kind]
    if kind.startswith("reminder_"):
        return reminder
    return None


def still_current(appt: Appointment | None, step: Step) -> Skip | None:
    """The common re-decision for appointment steps: gone, cancelled or moved since planning means no send."""
    if appt is None:
        return Skip("appointment no longer exists")
    if appt.status != "scheduled":
        return Skip(f"appointment is {appt.status}")
    planned = step.payload.get("starts_at")
    if planned and datetime.fromisoformat(planned) != appt.starts_at:
        return Skip("appointment moved since this step was planned")
    return None


def reminder(session: Session, step: Step, now: datetime) -> Decision:
    appt = session.get(Appointment, step.subject_id)
    stale = still_current(appt, step)
    if stale:
        return stale
    assert appt is not None
    if now >= appt.starts_at:
        return Skip("too late: the appointment has already started")
    return Send(kind="reminder", client_id=appt.client_id, appointment_id=appt.id,
                context={"hours": int(step.payload.get("hours", 48))})
