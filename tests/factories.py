"""Small builders for domain objects, going through the same lifecycle functions the app uses."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from store.models import Appointment, Owner
from workflows.lifecycle import client_for, record_new


def make_owner(session: Session, now: datetime, *, email: str = "lumen@example.com", tz: str = "Europe/Madrid",
               locale: str = "es", policy: dict | None = None) -> Owner:
    owner = Owner(email=email, name="Ana", business_name="Estudio Lumen", timezone=tz, locale=locale,
                  policy=policy or {}, invoice_seq=0, created_at=now)
    session.add(owner)
    session.flush()
    return owner


def make_appointment(session: Session, owner: Owner, now: datetime, starts_at: datetime, *,
                     client_email: str = "marta@example.com", client_tz: str | None = None,
                     client_locale: str | None = None, meeting_link: str = "https://meet.google.com/abc-defg-hij",
                     uid: str | None = None) -> Appointment:
    client = client_for(session, owner, client_email, name="Marta", now=now, timezone=client_tz,
                        locale=client_locale)
    return record_new(session, owner=owner, client=client, external_uid=uid or f"evt-{starts_at:%Y%m%d%H%M}",
                      starts_at=starts_at, ends_at=starts_at + timedelta(hours=1), now=now, title="Sesión",
                      meeting_link=meeting_link)
