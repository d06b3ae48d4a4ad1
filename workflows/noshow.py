"""Flow 6: wait, then follow up. The owner's answers (``mark_arrived``, ``mark_not_yet``, ``mark_no_show``, called
from the one-click links and the dashboard) and the step handlers of the wait and the no-show follow-ups.

At start + ``no_show_check_minutes`` the owner is asked "has the client arrived?" (``arrival_check``); on "not
yet" the client gets the link or address again and the wait-until time (``not_yet_notice``); at start +
``no_show_wait_minutes`` without an arrival: a no-show (``noshow_deadline``). Then "we waited for you"
(``noshow_waited``), after ``no_show_followup_days`` without an answer the no-show policy and a request for a new
time (``noshow_policy``), and ``ghost_after_days`` later without an answer the ghosting sequence
(``noshow_ghost``). In automatic mode the owner is not asked: the client gets the wait note at the check time.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, Client, LedgerEntry, Step
from workflows import ledger
from workflows.decisions import Decision, Done, Send, Skip
from workflows.kinds import handles, still_current
from workflows.steps import replan_appointment

log = logging.getLogger(__name__)


def mark_arrived(session: Session, appointment: Appointment, now: datetime) -> None:
    """The client is here: the wait and any no-show follow-up stop. Marking after a no-show corrects it (the
    no-show charge is waived with that reason)."""
    if appointment.attendance == "arrived":
        return
    if appointment.attendance == "no_show" and _charged(session, appointment):
        ledger.waive(session, appointment, "marked as arrived after the no-show", now)
    appointment.attendance, appointment.attendance_at, appointment.updated_at = "arrived", now, now
    replan_appointment(session, appointment, now)


def mark_not_yet(session: Session, appointment: Appointment, now: datetime) -> None:
    """Not here yet: the client gets the link/address again and the wait-until time; the wait runs."""
    if appointment.attendance != "unknown" or appointment.status != "scheduled":
        return
    appointment.attendance, appointment.attendance_at, appointment.updated_at = "waiting", now, now
    replan_appointment(session, appointment, now)


def mark_no_show(session: Session, appointment: Appointment, now: datetime) -> None:
    """A no-show: the policy's charge is recorded and the follow-ups are planned. Idempotent."""
    if appointment.attendance == "no_show" or appointment.status == "cancelled":
        return
    appointment.attendance, appointment.attendance_at, appointment.updated_at = "no_show", now, now
    appointment.status = "done"
    ledger.apply_policy(session, appointment, event="no_show", starts_at=appointment.starts_at, now=now)
    replan_appointment(session, appointment, now)
    log.info("appointment %s: no-show recorded", appointment.id)
    from workflows.history import apply_stricter_policy

    session.flush()
    client = session.get(Client, appointment.client_id)
    if client is not None:
        apply_stricter_policy(session, client, now)


def _charged(session: Session, appointment: Appointment) -> bool:
    return session.scalar(select(LedgerEntry.id).where(LedgerEntry.appointment_id == appointment.id,
                                                       LedgerEntry.kind.in_(ledger.CHARGE_KINDS)).limit(1)) is not None


def _waiting(session: Session, step: Step) -> Appointment | Skip:
    appt = session.get(Appointment, step.subject_id)
    stale = still_current(appt, step)
    if stale:
        return stale
    assert appt is not None
    if appt.attendance in ("arrived", "no_show"):
        return Skip(f"attendance already known: {appt.attendance}")
    return appt


@handles("arrival_check")
def arrival_check(session: Session, step: Step, now: datetime) -> Decision:
    appt = _waiting(session, step)
    if isinstance(appt, Skip):
        return appt
    if appt.attendance != "unknown":
        return Skip(f"the owner already answered: {appt.attendance}")
    return Send(kind="owner_arrival_check", client_id=appt.client_id, appointment_id=appt.id, to_owner=True,
                context={"wait_until": step.payload.get("wait_until")})


@handles("not_yet_notice")
def not_yet_notice(session: Session, step: Step, now: datetime) -> Decision:
    appt = _waiting(session, step)
    if isinstance(appt, Skip):
        return appt
    wait_until = datetime.fromisoformat(step.payload["wait_until"])
    if now >= wait_until:
        return Skip("the wait is over")
    return Send(kind="not_yet", client_id=appt.client_id, appointment_id=appt.id, urgent=True,
                context={"wait_until": wait_until})


@handles("noshow_deadline")
def noshow_deadline(session: Session, step: Step, now: datetime) -> Decision:
    appt = _waiting(session, step)
    if isinstance(appt, Skip):
        return appt
    mark_no_show(session, appt, now)
    return Done("no-show recorded at the end of the wait")


def _no_show(session: Session, step: Step) -> Appointment | Skip:
    appt = session.get(Appointment, step.subject_id)
    if appt is None:
        return Skip("appointment no longer exists")
    if appt.attendance != "no_show":
        return Skip(f"no longer a no-show (attendance: {appt.attendance})")
    return appt


def rebooked_since(session: Session, client_id: int, since: datetime) -> bool:
    """The client has booked again (an appointment first seen after ``since``, not cancelled)."""
    return session.scalar(select(Appointment.id).where(Appointment.client_id == client_id,
                                                       Appointment.created_at > since,
                                                       Appointment.status != "cancelled").limit(1)) is not None


@handles("noshow_waited")
def noshow_waited(session: Session, step: Step, now: datetime) -> Decision:
    appt = _no_show(session, step)
    if isinstance(appt, Skip):
        return appt
    return Send(kind="noshow_waited", client_id=appt.client_id, appointment_id=appt.id)


@handles("noshow_policy")
def noshow_policy(session: Session, step: Step, now: datetime) -> Decision:
    appt = _no_show(session, step)
    if isinstance(appt, Skip):
        return appt
    if rebooked_since(session, appt.client_id, appt.attendance_at or appt.starts_at):
        return Skip("the client has booked again")
    charge = session.scalar(select(LedgerEntry).where(LedgerEntry.appointment_id == appt.id,
                                                      LedgerEntry.kind.in_(ledger.CHARGE_KINDS)).limit(1))
    bal = ledger.balance(session, appt.client_id)
    return Send(kind="noshow_policy", client_id=appt.client_id, appointment_id=appt.id,
                context={"charge_kind": charge.kind if charge else "", "charge_cents": charge.amount_cents if charge
                         else 0, "waived": bal.waived_cents > 0 and charge is not None})


@handles("noshow_ghost")
def noshow_ghost(session: Session, step: Step, now: datetime) -> Decision:
    appt = _no_show(session, step)
    if isinstance(appt, Skip):
        return appt
    if rebooked_since(session, appt.client_id, appt.attendance_at or appt.starts_at):
        return Skip("the client has booked again")
    client = session.get(Client, appt.client_id)
    if client is None:
        return Skip("client no longer exists")
    from workflows.ghosting import start_ghosting

    if not start_ghosting(session, client, now, reason=f"no answer after the no-show of appointment {appt.id}"):
        return Skip(f"client file is {client.state}")
    return Done("no answer after the no-show: ghosting sequence started")
