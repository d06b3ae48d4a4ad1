"""Helpers for the sync tests: ICS text builders and a connected owner + calendar row in the store."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from store.crypto import encrypt_credentials
from store.models import Appointment, Calendar, CalendarConnection, Owner

OWNER_EMAIL = "lumen@example.com"


def ics(uid: str, start: datetime, end: datetime, *, title: str = "Sesión", attendees: tuple[str, ...] = (),
        partstat: dict[str, str] | None = None, rrule: str = "", extra: str = "", overrides: str = "",
        status: str = "") -> str:
    """One VCALENDAR with one event (and optional override VEVENTs), owner as organizer."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Reagenda tests//EN", "BEGIN:VEVENT", f"UID:{uid}",
             f"DTSTAMP:{_utc(datetime(2026, 1, 1, tzinfo=timezone.utc))}", f"DTSTART:{_utc(start)}",
             f"DTEND:{_utc(end)}", f"SUMMARY:{title}", f"ORGANIZER:mailto:{OWNER_EMAIL}"]
    for email in attendees:
        lines.append(f"ATTENDEE;PARTSTAT={(partstat or {}).get(email, 'ACCEPTED')}:mailto:{email}")
    if rrule:
        lines.append(f"RRULE:{rrule}")
    if status:
        lines.append(f"STATUS:{status}")
    if extra:
        lines.extend(extra.strip().splitlines())
    lines.append("END:VEVENT")
    if overrides:
        lines.extend(overrides.strip().splitlines())
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def override(uid: str, original: datetime, start: datetime, end: datetime, *, attendees: tuple[str, ...] = (),
             title: str = "Sesión (cambio)") -> str:
    lines = ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{_utc(datetime(2026, 1, 1, tzinfo=timezone.utc))}",
             f"RECURRENCE-ID:{_utc(original)}", f"DTSTART:{_utc(start)}", f"DTEND:{_utc(end)}",
             f"SUMMARY:{title}", f"ORGANIZER:mailto:{OWNER_EMAIL}"]
    lines += [f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{e}" for e in attendees]
    lines.append("END:VEVENT")
    return "\n".join(lines)


def _utc(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def connect(stack: Any, provider: str, credentials: dict[str, Any], external_id: str, *,
            owner_email: str = OWNER_EMAIL) -> int:
    """An owner with one connection (credentials encrypted) and one watched calendar; returns the calendar id."""
    now = stack.clock.now()
    with stack.session() as s:
        owner = s.scalar(select(Owner).where(Owner.email == owner_email))
        if owner is None:
            owner = Owner(email=owner_email, name="Ana", business_name="Estudio Lumen", timezone="Europe/Madrid",
                          locale="es", policy={}, invoice_seq=0, created_at=now)
            s.add(owner)
            s.flush()
        conn = CalendarConnection(owner_id=owner.id, provider=provider, account=owner_email,
                                  credentials=encrypt_credentials(stack.settings.secret_key, credentials),
                                  status="ok", status_detail="", created_at=now)
        s.add(conn)
        s.flush()
        cal = Calendar(connection_id=conn.id, external_id=external_id, name="work", watched=True,
                       receives_bookings=False, cursor=None)
        s.add(cal)
        s.flush()
        return cal.id


def appointments(stack: Any, calendar_id: int) -> dict[tuple[str, str], tuple[str, datetime, str]]:
    """(uid, recurrence_id) → (status, starts_at, client email) of the calendar's appointments."""
    with stack.session() as s:
        rows = s.scalars(select(Appointment).where(Appointment.calendar_id == calendar_id)).unique()
        return {(a.external_uid, a.recurrence_id): (a.status, a.starts_at, a.client.email) for a in rows}


def calendar_row(stack: Any, calendar_id: int) -> Calendar:
    with stack.session() as s:
        cal = s.get(Calendar, calendar_id)
        s.expunge(cal)
        return cal


def connection_row(stack: Any, calendar_id: int) -> CalendarConnection:
    with stack.session() as s:
        cal = s.get(Calendar, calendar_id)
        conn = s.get(CalendarConnection, cal.connection_id)
        s.expunge(conn)
        return conn
