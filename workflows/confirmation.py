"""Flow 1: the confirmation request when an appointment appears, and the one nudge (plus a note to the owner)
when it is still unconfirmed ``confirm_nudge_hours`` before."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from store.models import Appointment, Step
from workflows.decisions import Decision, Send, Skip
from workflows.kinds import handles, still_current


def _unconfirmed(session: Session, step: Step, now: datetime, *, check_moved: bool) -> Appointment | Skip:
    appt = session.get(Appointment, step.subject_id)
    if appt is None:
        return Skip("appointment no longer exists")
    if appt.status != "scheduled":
        return Skip(f"appointment is {appt.status}")
    if check_moved:
        stale = still_current(appt, step)
        if stale:
            return stale
    if appt.confirmation != "pending":
        return Skip(f"appointment already {appt.confirmation}")
    if now >= appt.starts_at:
        return Skip("too late: the appointment has already started")
    return appt


@handles("confirm_request")
def confirm_request(session: Session, step: Step, now: datetime) -> Decision:
    appt = _unconfirmed(session, step, now, check_moved=False)  # one request per appointment, at its current time
    if isinstance(appt, Skip):
        return appt
    return Send(kind="confirm_request", client_id=appt.client_id, appointment_id=appt.id)


@handles("confirm_nudge")
def confirm_nudge(session: Session, step: Step, now: datetime) -> Decision:
    appt = _unconfirmed(session, step, now, check_moved=True)
    if isinstance(appt, Skip):
        return appt
    return Send(kind="confirm_nudge", client_id=appt.client_id, appointment_id=appt.id)


@handles("confirm_owner_note")
def confirm_owner_note(session: Session, step: Step, now: datetime) -> Decision:
    appt = _unconfirmed(session, step, now, check_moved=True)
    if isinstance(appt, Skip):
        return appt
    return Send(kind="owner_unconfirmed", client_id=appt.client_id, appointment_id=appt.id, to_owner=True)
