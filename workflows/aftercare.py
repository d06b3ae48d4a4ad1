"""Flow 5 (after a cancellation) and the deposit's grace check (flow 4).

At once: thanks, the one-click "why?" and a reschedule link. ``followup_days`` later, if not rebooked: one casual
follow-up with the owner's optional offer. After the business cycle: one re-engagement. Never more: each is keyed
once per cancelled appointment. Any answer from the client stops the rest (``workflows.answers``).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, LedgerEntry, Step
from workflows import ledger
from workflows.decisions import Decision, Done, Send, Skip
from workflows.kinds import handles
from workflows.noshow import rebooked_since

REASONS = ("price", "service", "convenience", "availability", "expectations", "emergency", "other")


def _cancelled(session: Session, step: Step) -> Appointment | Skip:
    appt = session.get(Appointment, step.subject_id)
    if appt is None:
        return Skip("appointment no longer exists")
    if appt.status != "cancelled":
        return Skip(f"appointment is {appt.status} again")
    return appt


@handles("cancel_thanks")
def cancel_thanks(session: Session, step: Step, now: datetime) -> Decision:
    appt = _cancelled(session, step)
    if isinstance(appt, Skip):
        return appt
    return Send(kind="cancel_thanks", client_id=appt.client_id, appointment_id=appt.id,
                urgent=appt.cancelled_by == "client",  # the client's own action: answer it at once
                context={"reasons": REASONS, "late_cancel": bool(appt.late_cancel)})


@handles("cancel_followup", "reengage")
def follow_up(session: Session, step: Step, now: datetime) -> Decision:
    appt = _cancelled(session, step)
    if isinstance(appt, Skip):
        return appt
    if rebooked_since(session, appt.client_id, appt.cancelled_at or appt.updated_at):
        return Skip("the client has booked again")
    return Send(kind=step.kind, client_id=appt.client_id, appointment_id=appt.id)


@handles("grace_check")
def grace_check(session: Session, step: Step, now: datetime) -> Decision:
    """The grace period ended: a carried-over deposit that no new booking used is kept."""
    appt = _cancelled(session, step)
    if isinstance(appt, Skip):
        return appt
    carry = session.scalar(select(LedgerEntry).where(LedgerEntry.appointment_id == appt.id,
                                                     LedgerEntry.kind == "carry_over").limit(1))
    if carry is None:
        return Skip("no deposit was carried over")
    if ledger.carry_over_used(session, carry):
        return Done("the carried-over deposit went to the new appointment")
    ledger.record_outcome(session, appt, ledger.Outcome("deposit_kept", carry.amount_cents,
                                                        "not rebooked within the grace period: deposit kept"), now)
    return Done("not rebooked within the grace period: deposit kept")
