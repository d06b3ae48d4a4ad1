"""Domain events on appointments (new, moved, cancelled) and what they do to the plan.

The calendar sync engine, the booking pages and the tests all go through these functions, so every path that
changes an appointment re-plans it the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, Client, Owner
from workflows import ledger
from workflows.policy import Policy
from workflows.steps import client_policy, plan_new_appointments, replan_appointment


def client_for(session: Session, owner: Owner, email: str, *, name: str = "", now: datetime,
               timezone: str | None = None, locale: str | None = None) -> Client:
    """The owner's client with this email, created on first sight."""
    email = email.strip().lower()
    client = session.scalar(select(Client).where(Client.owner_id == owner.id, Client.email == email))
    if client is None:
        client = new_client(owner, email, name=name, now=now, timezone=timezone, locale=locale)
        session.add(client)
        session.flush()
    return client


def new_client(owner: Owner, email: str, *, name: str = "", now: datetime, timezone: str | None = None,
               locale: str | None = None) -> Client:
    """A client row not yet in the session (callers adding many flush them together)."""
    return Client(owner_id=owner.id, email=email.strip().lower(), name=name, phone="", timezone=timezone,
                  locale=locale, preferred_channel="email", opted_out=[], state="active", created_at=now)


@dataclass(frozen=True)
class NewAppointment:
    """What the calendar (or a booking) says about an appointment Reagenda has not seen before."""

    client: Client
    external_uid: str
    starts_at: datetime
    ends_at: datetime
    title: str = ""
    location: str = ""
    meeting_link: str = ""
    calendar_id: int | None = None
    recurrence_id: str = ""


def record_new(session: Session, *, owner: Owner, client: Client, external_uid: str, starts_at: datetime,
               ends_at: datetime, now: datetime, title: str = "", location: str = "", meeting_link: str = "",
               calendar_id: int | None = None, recurrence_id: str = "") -> Appointment:
    """One new appointment (see ``record_new_many``)."""
    [appointment_id] = record_new_many(session, owner, [NewAppointment(
        client=client, external_uid=external_uid, starts_at=starts_at, ends_at=ends_at, title=title,
        location=location, meeting_link=meeting_link, calendar_id=calendar_id, recurrence_id=recurrence_id)], now)
    appt = session.get(Appointment, appointment_id)
    assert appt is not None
    return appt


def record_new_many(session: Session, owner: Owner, items: list[NewAppointment], now: datetime) -> list[int]:
    """New appointments: snapshot the owner's policy (with each client's stricter overrides) onto each, take its
    deposit (or the one carried over from a cancellation in grace) and plan its steps. Returns their ids.

    One call for a whole batch because a first sync of a calendar used for years brings thousands at once: the
    appointments go in as one multi-row insert, their deposits and steps as two more, instead of a dozen
    statements per appointment. The rows bypass the ORM's per-object bookkeeping (measured at two thirds of
    the cost); load an appointment with ``session.get`` to work on it."""
    if not items:
        return []
    if any(item.client.id is None for item in items):
        session.flush()  # clients first seen in this batch need their ids
    policies: dict[int, tuple[Policy, dict]] = {}  # client id → (policy, its snapshot)
    rows = []
    for item in items:
        client = item.client
        if client.id not in policies:
            policy = client_policy(owner, client)
            policies[client.id] = (policy, policy.to_dict())
        rows.append(dict(
            owner_id=owner.id, client_id=client.id, calendar_id=item.calendar_id, external_uid=item.external_uid,
            recurrence_id=item.recurrence_id, title=item.title, starts_at=item.starts_at, ends_at=item.ends_at,
            location=item.location, meeting_link=item.meeting_link, status="scheduled", confirmation="pending",
            attendance="unknown", policy=policies[client.id][1], start_seen_at=now, created_at=now,
            updated_at=now, confirmed_at=None, cancelled_at=None, attendance_at=None, move_count=0,
            late_move_count=0, late_cancel=False, cancelled_by="", calendar_state="active",
        ))
    table = Appointment.__table__
    session.flush()  # anything pending goes first, as the ORM would order it
    ids = list(session.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
    # What planning and deposits read of an appointment, without building ORM objects for thousands of rows.
    new: list[tuple[Any, Policy]] = [
        (SimpleNamespace(**row, id=appointment_id, owner=owner, client=item.client), policies[item.client.id][0])
        for row, appointment_id, item in zip(rows, ids, items)
    ]
    ledger.deposits_for_new(session, new, now)
    plan_new_appointments(session, new, now)
    returning = {item.client.id: item.client for item in items if item.client.state in ("ghosting", "closed")}
    for client in returning.values():
        # Booking again is the clearest answer there is: the ultimatum stops and a closed file reopens.
        from workflows.steps import replan_client

        client.state, client.ghost_started_at = "active", None
        replan_client(session, client, now)
    return ids


def record_move(session: Session, appt: Appointment, *, starts_at: datetime, ends_at: datetime,
                now: datetime) -> None:
    """The appointment has a new time: every pending step is re-planned from it and the client is told the new
    time. Moved less than the policy window before the original start counts as a late move (deposit kept or fee
    owed); in time, the deposit carries over to the new time."""
    if appt.starts_at == starts_at and appt.ends_at == ends_at:
        return
    if appt.starts_at != starts_at:
        late = ledger.is_late(Policy.from_dict(appt.policy), appt.starts_at, now)
        ledger.apply_policy(session, appt, event="move", starts_at=appt.starts_at, now=now)
        appt.move_count = (appt.move_count or 0) + 1
        appt.late_move_count = (appt.late_move_count or 0) + int(late)
        appt.start_seen_at = now
        if appt.attendance == "waiting":
            appt.attendance, appt.attendance_at = "unknown", None
    appt.starts_at, appt.ends_at, appt.updated_at = starts_at, ends_at, now
    replan_appointment(session, appt, now)


def record_cancel(session: Session, appt: Appointment, *, now: datetime, by: str = "calendar") -> None:
    """Cancelled (``by``: calendar | client | owner): pending steps stop, the cancellation policy is applied (an
    owner who cancels on their own account charges nothing) and the cancellation flow starts."""
    if appt.status == "cancelled":
        return
    policy = Policy.from_dict(appt.policy)
    appt.status, appt.updated_at, appt.cancelled_at, appt.cancelled_by = "cancelled", now, now, by
    appt.late_cancel = ledger.is_late(policy, appt.starts_at, now)
    if by != "owner":
        ledger.apply_policy(session, appt, event="cancel", starts_at=appt.starts_at, now=now)
    replan_appointment(session, appt, now)
    if appt.late_cancel and by != "owner":
        from workflows.history import apply_stricter_policy

        session.flush()
        apply_stricter_policy(session, session.get(Client, appt.client_id), now)
