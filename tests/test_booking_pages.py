"""The booking and reschedule pages through the real app (Flask test client) on a real Radicale, both backends:
slots, the form, CSRF, "that time was just taken" with fresh slots, the reschedule link, es/en."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.links import make_token
from store.models import Appointment, CalendarConnection, Step
from tests.booking_helpers import BookingOwner, busy_event, make_booking_owner
from tests.radicale_server import RadicaleServer
from tests.web_fixtures import csrf_from
from workflows.booking import ClientDetails, book, default_connectors
from workflows.lifecycle import client_for, record_new

UTC = timezone.utc
MADRID = ZoneInfo("Europe/Madrid")
SLOT = re.compile(r'name="slot" value="([^"]+)"')


@pytest.fixture(scope="module")
def radicale():
    with RadicaleServer() as server:
        yield server


@pytest.fixture
def owner(stack, radicale) -> BookingOwner:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return make_booking_owner(s, radicale, stack.settings.secret_key, stack.clock.now(),
                                  policy={"deposit_cents": 3000, "currency": "EUR"})


@pytest.fixture
def app(stack):  # type: ignore[no-untyped-def]
    from web import create_app

    app = create_app(stack.settings, context=stack.ctx)
    app.config.update(TESTING=True)
    return app


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=MADRID).astimezone(UTC)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_booking_page_shows_only_free_slots_and_books_one(stack, radicale, owner, app):
    radicale.put(owner.calendar_urls["family"], "f.ics", busy_event("f", _at(3, 9), _at(3, 11)))
    client = app.test_client()
    page = client.get(f"/book/{owner.slug}/sesion?lang=en")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    slots = SLOT.findall(html)
    assert _iso(_at(3, 11)) in slots and _iso(_at(3, 9)) not in slots and _iso(_at(3, 10)) not in slots
    assert "Book your appointment" in html and "Tuesday, March 3, 2026" in html
    r = client.post(f"/book/{owner.slug}/sesion", data={
        "csrf_token": csrf_from(html), "slot": _iso(_at(3, 11)), "name": "Marta", "email": "marta@example.com",
        "phone": "+34 600 000 000", "channel": "whatsapp", "lang": "en", "tz": "America/Mexico_City"})
    assert r.status_code == 302, r.get_data(as_text=True)[:800]
    assert "/reschedule/" in r.headers["Location"] and "done=booked" in r.headers["Location"]
    done = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Booked!" in done and "4:00" in done  # 11:00 Madrid is 04:00 in Mexico City
    assert [e.starts_at for e in owner.events(radicale, start=stack.clock.now())] == [_at(3, 11)]
    with stack.session() as s:
        appt = s.scalar(select(Appointment))
        assert appt.client.preferred_channel == "whatsapp" and appt.client.locale == "en"
        assert appt.client.timezone == "America/Mexico_City"
    # The slot is no longer offered, even though the page caches free/busy.
    again = client.get(f"/book/{owner.slug}/sesion?lang=en").get_data(as_text=True)
    assert _iso(_at(3, 11)) not in SLOT.findall(again)


def test_that_time_was_just_taken_shows_fresh_slots(stack, radicale, owner, app):
    client = app.test_client()
    html = client.get(f"/book/{owner.slug}/sesion?lang=es").get_data(as_text=True)
    target = _iso(_at(3, 12))
    assert target in SLOT.findall(html)
    # Someone else books the slot through the owner's calendar after the page was shown (cached as free).
    radicale.put(owner.calendar_urls["personal"], "x.ics", busy_event("x", _at(3, 12), _at(3, 13)))
    r = client.post(f"/book/{owner.slug}/sesion", data={
        "csrf_token": csrf_from(html), "slot": target, "name": "Luis", "email": "luis@example.com", "lang": "es"})
    body = r.get_data(as_text=True)
    assert r.status_code == 409
    assert "Esa hora se acaba de ocupar" in body
    assert target not in SLOT.findall(body) and _iso(_at(3, 14)) in SLOT.findall(body)
    assert 'value="Luis"' in body  # what the client typed is kept
    with stack.session() as s:
        assert s.scalar(select(Appointment)) is None


def test_form_errors_csrf_and_unknown_pages(stack, owner, app):
    client = app.test_client()
    html = client.get(f"/book/{owner.slug}/sesion?lang=en").get_data(as_text=True)
    r = client.post(f"/book/{owner.slug}/sesion", data={"csrf_token": csrf_from(html), "email": "nope"})
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and "Choose a time." in body and "valid email" in body and "write your name" in body
    assert 'aria-invalid="true"' in body
    assert client.post(f"/book/{owner.slug}/sesion", data={"slot": "x"}).status_code == 400  # no CSRF token
    assert client.get(f"/book/{owner.slug}/nope").status_code == 404
    assert client.get("/book/nobody/sesion").status_code == 404


def test_reschedule_link_moves_the_appointment(stack, radicale, owner, app):
    factory = default_connectors(stack.settings)
    now = stack.clock.now()
    with stack.session() as s:  # the client usually books at 16:00
        from store.models import Owner

        o = s.get(Owner, owner.owner_id)
        c = client_for(s, o, "marta@example.com", name="Marta", now=now, locale="es")
        for weeks in (1, 2, 3):
            start = _at(2, 16) - timedelta(weeks=weeks)
            record_new(s, owner=o, client=c, external_uid=f"old-{weeks}", starts_at=start,
                       ends_at=start + timedelta(hours=1), now=start - timedelta(days=7))
    appt = book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=_at(6, 10),
                details=ClientDetails(email="marta@example.com", name="Marta", locale="es"), factory=factory)
    token = make_token(stack.settings, "reschedule", client_id=appt.client_id, appointment_id=appt.id)
    client = app.test_client()
    page = client.get(f"/reschedule/{token}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    assert "Cambia tu cita" in html and "viernes, 6 de marzo de 2026, 10:00" in html
    assert "tu depósito de 30,00" in html and "pasa a la nueva hora" in html
    assert "Tus horas habituales" in html
    suggested = html.split("Tus horas habituales", 1)[1].split("</div>", 2)[0]
    assert "16:00" in suggested
    new = _at(5, 16)
    assert _iso(new) in SLOT.findall(html)
    r = client.post(f"/reschedule/{token}", data={"csrf_token": csrf_from(html), "slot": _iso(new)})
    assert r.status_code == 302, r.get_data(as_text=True)[:800]
    moved = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "¡Cambiado!" in moved and "jueves, 5 de marzo de 2026, 16:00" in moved
    events = owner.events(radicale, start=now)
    assert [(e.uid, e.starts_at) for e in events] == [(appt.external_uid, new)]
    with stack.session() as s:
        pending = list(s.scalars(select(Step).where(Step.subject_id == appt.id, Step.kind == "reminder_48h",
                                                    Step.state == "pending")))
        assert [p.due_at for p in pending] == [new - timedelta(hours=48)]


def test_reschedule_link_errors(stack, radicale, owner, app):
    client = app.test_client()
    assert client.get("/reschedule/not-a-token").status_code == 400
    with stack.session() as s:
        conn = s.get(CalendarConnection, owner.connection_id)
        from store.crypto import encrypt_credentials

        conn.credentials = encrypt_credentials(stack.settings.secret_key, {
            "url": radicale.url, "username": radicale.username, "password": "revoked"})
    r = client.get(f"/book/{owner.slug}/sesion?lang=en")
    assert r.status_code == 503 and "cannot check or write the calendar" in r.get_data(as_text=True)
