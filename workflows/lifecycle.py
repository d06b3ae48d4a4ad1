"""Domain events on appointments (new, moved, cancelled) and what they do to the plan.

The calendar sync engine, the booking pages and the tests all go through these functions, so every path that
changes an appointment re-plans it the same way.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, Client, Owner
from workflows.policy import Policy
from workflows.steps import replan_appointment


def client_for(session: Session, owner: Owner, email: str, *, name: str = "", now: datetime,
               timezone: str | None = None, locale: str | None = None) -> Client:
    """The owner's client with this email, created on first sight."""
    email = email.strip().lower()
    client = session.scalar(select(Client).where(Client.owner_id == owner.id, Client.email == email))
    if client is None:
        client = Client(owner_id=owner.id, email=email, name=name, phone="", timezone=timezone, locale=locale,
                        preferred_channel="email", opted_out=[], state="active", created_at=now)
        session.add(client)
        session.flush()
    return client


def record_new(session: Session, *, owner: Owner, client: Client, external_uid: str, starts_at: datetime,
               ends_at: datetime, now: datetime, title: str = "", location: str = "", meeting_link: str = "",
               calendar_id: int | None = None, recurrence_id: str = "") -> Appointment:
    """A new appointment: snapshot the owner's policy onto it and plan its steps."""
    appt = Appointment(
        owner_id=owner.id, client_id=client.id, calendar_id=calendar_id, external_uid=external_uid,
        recurrence_id=recurrence_id, title=title, starts_at=starts_at, ends_at=ends_at, location=location,
        meeting_link=meeting_link, status="scheduled", confirmation="pending", attendance="unknown",
        policy=Policy.from_dict(owner.policy).to_dict(), start_seen_at=now, created_at=now, updated_at=now,
    )
    appt.owner, appt.client = owner, client
    session.add(appt)
    session.flush()
    replan_appointment(session, appt, now)
    return appt


def record_move(session: Session, appt: Appointment, *, starts_at: datetime, ends_at: datetime,
                now: datetime) -> None:
    """The appointment has a new time: every pending step is re-planned from it."""
    if appt.starts_at == starts_at and appt.ends_at == ends_at:
        return
    appt.starts_at, appt.ends_at, appt.start_seen_at, appt.updated_at = starts_at, ends_at, now, now
    replan_appointment(session, appt, now)


def record_cancel(session: Session, appt: Appointment, *, now: datetime) -> None:
    """Cancelled in the calendar: pending steps stop."""
    if appt.status == "cancelled":
        return
    appt.status, appt.updated_at = "cancelled", now
    replan_appointment(session, appt, now)
