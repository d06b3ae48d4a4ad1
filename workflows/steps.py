"""Writing plans into the ``steps`` table: the durable timers every workflow runs on.

``replan_appointment`` is the one entry point after anything about an appointment changes (new, moved, cancelled,
policy): it asks the pure planner for the steps the appointment should have and makes the table agree, cancelling
pending steps that are no longer wanted and inserting new ones. Keys make it idempotent: replanning twice changes
nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Appointment, Client, Owner, Reply, Step
from workflows.planner import AppointmentFacts, ClientFacts, PlannedStep, plan_appointment, plan_client
from workflows.policy import Policy

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "queued")


def last_reply_at(session: Session, client_id: int) -> datetime | None:
    """The client's latest real answer (auto-replies do not count)."""
    return session.scalar(select(func.max(Reply.received_at)).where(Reply.client_id == client_id,
                                                                    Reply.auto_reply.is_(False)))


_UNSET: Any = object()


def facts_for(appt: Appointment, session: Session | None = None, *, last_reply: datetime | None = _UNSET,
              policy: Policy | None = None) -> AppointmentFacts:
    """The planner's view of an appointment. The client's last reply is read with ``session`` unless the caller
    already has it (``last_reply``, loaded for a whole batch)."""
    if last_reply is _UNSET:
        last_reply = last_reply_at(session, appt.client_id) if session is not None else None
    owner_tz = appt.owner.timezone if appt.owner else "UTC"
    policy = policy or Policy.from_dict(appt.policy)
    return AppointmentFacts(
        id=appt.id,
        owner_id=appt.owner_id,
        starts_at=appt.starts_at,
        status=appt.status,
        start_seen_at=appt.start_seen_at,
        client_timezone=(appt.client.timezone if appt.client and appt.client.timezone else owner_tz),
        created_at=appt.created_at,
        confirmation=appt.confirmation,
        attendance=appt.attendance,
        attendance_at=appt.attendance_at,
        move_count=appt.move_count or 0,
        cancelled_at=appt.cancelled_at,
        late_cancel=bool(appt.late_cancel),
        last_reply_at=last_reply,
        deposit_cents=policy.deposit_cents,
    )


def client_policy(owner: Owner, client: Client) -> Policy:
    """The policy for client-level sequences and new appointments: the owner's, with the client's stricter
    overrides (a repeat offender) on top."""
    return Policy.from_dict({**(owner.policy or {}), **(client.policy_overrides or {})})


def client_facts(session: Session, client: Client, owner: Owner) -> ClientFacts:
    return ClientFacts(id=client.id, owner_id=client.owner_id, state=client.state,
                       ghost_started_at=client.ghost_started_at, last_reply_at=last_reply_at(session, client.id),
                       timezone=client.timezone or owner.timezone)


def replan_client(session: Session, client: Client, now: datetime) -> list[Step]:
    """Make the client's own steps (ghosting) match the plan."""
    session.flush()
    owner = session.get(Owner, client.owner_id)
    assert owner is not None
    planned = plan_client(client_facts(session, client, owner), client_policy(owner, client))
    return apply_plan(session, client.owner_id, "client", client.id, planned, now)


def replan_appointment(session: Session, appt: Appointment, now: datetime) -> list[Step]:
    """Make the appointment's open steps match the plan; return the steps created."""
    session.flush()  # the appointment needs its id
    planned = plan_appointment(facts_for(appt, session), Policy.from_dict(appt.policy))
    return apply_plan(session, appt.owner_id, "appointment", appt.id, planned, now)


def plan_new_appointments(session: Session, new: list[tuple[Any, Policy]], now: datetime) -> int:
    """``replan_appointment`` for appointments just inserted (each with its policy; an appointment here is anything
    with its attributes, see ``lifecycle.record_new_many``), in bulk: they have no steps
    yet, so there is nothing to compare with; the clients' last replies come from one query and the steps go in
    as one multi-row insert. Returns how many steps were planned."""
    if not new:
        return 0
    client_ids = {appt.client_id for appt, _ in new}
    replies = dict(session.execute(
        select(Reply.client_id, func.max(Reply.received_at))
        .where(Reply.client_id.in_(client_ids), Reply.auto_reply.is_(False)).group_by(Reply.client_id)).all())
    rows = []
    for appt, policy in new:
        facts = facts_for(appt, last_reply=replies.get(appt.client_id), policy=policy)
        for p in plan_appointment(facts, policy):
            rows.append({"owner_id": appt.owner_id, "kind": p.kind, "subject_type": "appointment",
                         "subject_id": appt.id, "due_at": p.due_at, "idempotency_key": p.key, "payload": p.payload,
                         "created_at": now, "state": "pending", "attempts": 0, "max_attempts": 5, "outcome": "",
                         "claimed_at": None, "finished_at": None})
    if rows:
        session.execute(Step.__table__.insert(), rows)  # Core executemany: no ORM bookkeeping per row
    log.debug("planned %d step(s) for %d new appointment(s)", len(rows), len(new))
    return len(rows)


def apply_plan(session: Session, owner_id: int, subject_type: str, subject_id: int,
               planned: list[PlannedStep], now: datetime) -> list[Step]:
    existing = {
        s.idempotency_key: s
        for s in session.scalars(select(Step).where(Step.subject_type == subject_type, Step.subject_id == subject_id))
    }
    wanted = {p.key: p for p in planned}
    for key, step in existing.items():
        if key not in wanted and step.state in OPEN_STATES:
            step.state = "cancelled"
            step.finished_at = now
            step.outcome = "no longer part of the plan (appointment changed)"
    created = []
    for key, p in wanted.items():
        step = existing.get(key)
        if step is None:
            step = Step(owner_id=owner_id, kind=p.kind, subject_type=subject_type, subject_id=subject_id,
                        due_at=p.due_at, idempotency_key=key, payload=p.payload, created_at=now, state="pending",
                        attempts=0, max_attempts=5, outcome="")
            session.add(step)
            created.append(step)
        elif step.state == "pending" and step.due_at != p.due_at and not (step.payload or {}).get("deferred"):
            step.due_at = p.due_at  # a step deferred by the daily limit or quiet hours keeps its later time
        elif step.state == "cancelled" and step.outcome.startswith("no longer part of the plan"):
            # The plan wants it again (e.g. moved away and back): reopen rather than violate the unique key.
            step.state, step.due_at, step.finished_at, step.outcome = "pending", p.due_at, None, ""
    session.flush()
    if created:
        log.debug("planned %d step(s) for %s %s", len(created), subject_type, subject_id)
    return created


def cancel_open_steps(session: Session, subject_type: str, subject_id: int, now: datetime, reason: str) -> int:
    """Stop every pending step of a subject (a reply arrived, the file was closed...). Returns how many."""
    count = 0
    for step in session.scalars(select(Step).where(Step.subject_type == subject_type, Step.subject_id == subject_id,
                                                   Step.state.in_(OPEN_STATES))):
        step.state, step.finished_at, step.outcome = "cancelled", now, reason
        count += 1
    return count
