"""Step handlers for the booking pages: the client's confirmation of a time they just chose, and the note to the
owner when a booking failed because their calendar could not be written.

Both are re-decided when they run, like every step: a confirmation for a time the appointment no longer has, or
for a cancelled appointment, is skipped.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from store.models import Appointment, Step
from workflows.decisions import Decision, Send, Skip
from workflows.kinds import handles


@handles("booking_confirmation")
def booking_confirmation(session: Session, step: Step, now: datetime) -> Decision:
    appt = session.get(Appointment, step.subject_id)
    if appt is None:
        return Skip("appointment no longer exists")
    if appt.status != "scheduled":
        return Skip(f"appointment is {appt.status}")
    planned = step.payload.get("starts_at")
    if planned and datetime.fromisoformat(planned) != appt.starts_at:
        return Skip("appointment moved again since this confirmation was planned")
    return Send(kind="booking_confirmed", client_id=appt.client_id, appointment_id=appt.id,
                context={"what": step.payload.get("what", "booked")}, urgent=True)


@handles("booking_failed")
def booking_failed(session: Session, step: Step, now: datetime) -> Decision:
    return Send(kind="booking_failed_owner", client_id=step.subject_id, appointment_id=None,
                context={"reason": step.payload.get("reason", "unavailable"),
                         "provider": step.payload.get("provider", "")}, to_owner=True, urgent=True)
