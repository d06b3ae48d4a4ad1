"""Shared set-up for the booking tests, the browser test and the benchmark: an owner with a public booking page,
one appointment type and three calendars on a real Radicale server (one receives bookings)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connectors.caldav import CalDAVConnector
from store.crypto import encrypt_credentials
from store.models import AppointmentType, BookingSettings, Calendar, CalendarConnection, Owner
from tests.radicale_server import RadicaleServer


@dataclass
class BookingOwner:
    owner_id: int
    type_id: int
    slug: str
    type_slug: str
    connection_id: int
    calendar_urls: dict[str, str]  # work (receives bookings), personal, family

    def connector(self, server: RadicaleServer) -> CalDAVConnector:
        return CalDAVConnector({"url": server.url, "username": server.username, "password": server.password})

    def events(self, server: RadicaleServer, name: str = "work", *, start: datetime, days: int = 60) -> list:
        changes = self.connector(server).changes(self.calendar_urls[name], None, window_start=start,
                                                 window_end=start + timedelta(days=days))
        return sorted(changes.upserted, key=lambda o: o.starts_at)


def make_booking_owner(session: Session, server: RadicaleServer, secret_key: str, now: datetime, *,
                       tz: str = "Europe/Madrid", locale: str = "es", rules: dict | None = None,
                       slug: str | None = None, policy: dict | None = None, password: str | None = None,
                       buffer_after: int = 0) -> BookingOwner:
    tag = uuid.uuid4().hex[:8]
    owner = Owner(email=f"ana-{tag}@example.com", name="Ana", business_name="Estudio Lumen", timezone=tz,
                  locale=locale, policy=policy or {}, invoice_seq=0, created_at=now)
    session.add(owner)
    session.flush()
    slug = slug or f"lumen-{tag}"
    session.add(BookingSettings(owner_id=owner.id, slug=slug, rules=rules or {}, meeting_link="",
                                updated_at=now))
    atype = AppointmentType(owner_id=owner.id, slug="sesion", name="Sesión", duration_minutes=60,
                            buffer_before_minutes=0, buffer_after_minutes=buffer_after, location="",
                            meeting="none", active=True, created_at=now)
    session.add(atype)
    creds = {"url": server.url, "username": server.username, "password": password or server.password}
    conn = CalendarConnection(owner_id=owner.id, provider="caldav", account=server.username,
                              credentials=encrypt_credentials(secret_key, creds), status="ok", status_detail="",
                              created_at=now)
    session.add(conn)
    session.flush()
    urls = {}
    for name in ("work", "personal", "family"):
        url = server.make_calendar(f"{name}-{tag}")
        urls[name] = url
        session.add(Calendar(connection_id=conn.id, external_id=url, name=name, watched=True,
                             receives_bookings=(name == "work")))
    session.flush()
    return BookingOwner(owner_id=owner.id, type_id=atype.id, slug=slug, type_slug="sesion",
                        connection_id=conn.id, calendar_urls=urls)


def busy_event(uid: str, start: datetime, end: datetime, title: str = "Ocupado") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{end:%Y%m%dT%H%M%SZ}\r\nSUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
