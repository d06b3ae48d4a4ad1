"""Client answers: an email reply or a one-click link. Recording one stops every sequence that was waiting on the
client, acts on the clear intents and hands the rest to the owner.

The channels engineer calls ``record_answer`` from inbound email and from the one-click link endpoints; the
signature is a contract: keep it stable, add only optional keyword arguments.

"Every pending sequence" means every step that chases or follows up (confirmation nudges, no-show follow-ups,
aftercare, ghosting). Reminders of an upcoming appointment are not a sequence waiting for an answer: a client who
replied "see you Tuesday" still gets the meeting link 2 h before. They stop when the appointment is cancelled.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, Client, Reply, Step
from workflows.steps import OPEN_STATES, replan_appointment, replan_client

log = logging.getLogger(__name__)

# Intents the classifier (channels issue) may pass. Anything else is treated as "other".
INTENTS = ("confirm", "cancel", "reschedule", "fine_busy", "fine", "running_late", "reason", "unsubscribe",
           "auto_reply", "other")  # replies.intent.INTENTS plus what the one-click links add
# Intents the engine acts on by itself; the rest go to the owner.
HANDLED = ("confirm", "cancel", "reason", "unsubscribe")


def record_answer(session: Session, client: Client, *, channel: str, text: str, intent: str, now: datetime,
                  appointment: Appointment | None = None, sender: str = "", subject: str = "",
                  raw_text: str | None = None, message_id: int | None = None,
                  dedup_key: str | None = None) -> Reply:
    """Record what the client said and act on it. Returns the ``Reply`` (an existing one for a repeated
    ``dedup_key``, so a link clicked twice or an email delivered twice counts once)."""
    if dedup_key:
        existing = session.scalar(select(Reply).where(Reply.dedup_key == dedup_key))
        if existing is not None:
            return existing
    intent = intent if intent in INTENTS else "other"
    auto = intent == "auto_reply"
    reply = Reply(owner_id=client.owner_id, client_id=client.id, message_id=message_id,
                  appointment_id=appointment.id if appointment else None, channel=channel,
                  sender=sender or client.email, subject=subject, raw_text=raw_text if raw_text is not None else text,
                  text=text, intent=intent, auto_reply=auto, needs_owner=not auto and intent not in HANDLED,
                  dedup_key=dedup_key, received_at=now)
    session.add(reply)
    session.flush()
    if auto:
        log.info("auto-reply from client %s recorded; sequences continue", client.id)
        return reply

    stopped = stop_sequences(session, client, now, reason=f"stopped: the client answered (reply {reply.id})")
    if client.state == "ghosting":
        client.state, client.ghost_started_at = "active", None
    target = appointment or next_appointment(session, client, now)
    upcoming = target is not None and target.status == "scheduled" and target.starts_at > now
    if intent == "confirm" and upcoming:
        target.confirmation, target.confirmed_at, target.updated_at = "confirmed", now, now
        if reply.appointment_id is None:
            reply.appointment_id = target.id
    elif intent == "cancel" and upcoming:
        from workflows.lifecycle import record_cancel

        record_cancel(session, target, now=now, by="client")
        if reply.appointment_id is None:
            reply.appointment_id = target.id
    elif intent == "unsubscribe":
        opted = list(client.opted_out or [])
        if channel not in ("link", "") and channel not in opted:
            opted.append(channel)
        if "email" not in opted and channel in ("link", "email"):
            opted.append("email")
        client.opted_out = opted
    elif intent in ("confirm", "cancel"):
        reply.needs_owner = True  # nothing to confirm or cancel: the owner reads it
    replan_client_everything(session, client, now)
    if reply.needs_owner:
        from workflows.handoff import hand_to_owner

        hand_to_owner(session, reply, now)
    log.info("client %s answered (%s via %s); %d pending step(s) stopped", client.id, intent, channel, stopped)
    return reply


def next_appointment(session: Session, client: Client, now: datetime) -> Appointment | None:
    """The client's next scheduled appointment, else the one that most recently started (a no-show follow-up)."""
    upcoming = session.scalar(select(Appointment).where(Appointment.client_id == client.id,
                                                        Appointment.status == "scheduled",
                                                        Appointment.starts_at > now)
                              .order_by(Appointment.starts_at).limit(1))
    if upcoming is not None:
        return upcoming
    return session.scalar(select(Appointment).where(Appointment.client_id == client.id,
                                                    Appointment.starts_at <= now)
                          .order_by(Appointment.starts_at.desc()).limit(1))


def stop_sequences(session: Session, client: Client, now: datetime, *, reason: str) -> int:
    """Cancel every open step that chases the client: client steps and appointment steps, except reminders of
    appointments still to come."""
    appt_ids = list(session.scalars(select(Appointment.id).where(Appointment.client_id == client.id)))
    query = select(Step).where(Step.state.in_(OPEN_STATES), Step.subject_type == "client", Step.subject_id == client.id)
    steps = list(session.scalars(query))
    if appt_ids:
        steps += list(session.scalars(select(Step).where(Step.state.in_(OPEN_STATES),
                                                         Step.subject_type == "appointment",
                                                         Step.subject_id.in_(appt_ids))))
    count = 0
    for step in steps:
        if step.kind.startswith("reminder_"):
            continue
        step.state, step.finished_at, step.outcome = "cancelled", now, reason
        count += 1
    session.flush()
    return count


def replan_client_everything(session: Session, client: Client, now: datetime) -> None:
    """Re-plan the client and all their appointments so the plans agree with the answer just recorded."""
    for appt in session.scalars(select(Appointment).where(Appointment.client_id == client.id)):
        replan_appointment(session, appt, now)
    replan_client(session, client, now)
