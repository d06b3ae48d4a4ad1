"""Writing plans into the ``steps`` table: the durable timers every workflow runs on.

``replan_appointment`` is the one entry point after anything about an appointment changes (new, moved, cancelled,
policy): it asks the pure planner for the steps the appointment should have and makes the table agree, cancelling
pending steps that are no longer wanted and inserting new ones. Keys make it idempotent: replanning twice changes
nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, Step
from workflows.planner import AppointmentFacts, PlannedStep, plan_appointment
from workflows.policy import Policy

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "queued")


def facts_for(appt: Appointment) -> AppointmentFacts:
    owner_tz = appt.owner.timezone if appt.owner else "UTC"
    return AppointmentFacts(
        id=appt.id,
        owner_id=appt.owner_id,
        starts_at=appt.starts_at,
        status=appt.status,
        start_seen_at=appt.start_seen_at,
        client_timezone=(appt.client.timezone if appt.client and appt.client.timezone else owner_tz),
    )


def replan_appointment(session: Session, appt: Appointment, now: datetime) -> list[Step]:
    """Make the appointment's open steps match the plan; return the steps created."""
    session.flush()  # the appointment needs its id
    planned = plan_appointment(facts_for(appt), Policy.from_dict(appt.policy))
    return apply_plan(session, appt.owner_id, "appointment", appt.id, planned, now)


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
        elif step.state == "pending" and step.due_at != p.due_at:
            step.due_at = p.due_at
        elif step.state == "cancelled":
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
