"""Booking across providers: one owner with a CalDAV calendar (real Radicale), a Google calendar and an Outlook
calendar (the real Google and Graph client code against the local fakes). Busy time in any of them is never
offered; booking into Google asks for a Meet link and into Outlook for a Teams link, and the link is kept on the
appointment and survives a move."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from connectors.http_retry import MailboxLimiter, Retrier
from store.crypto import encrypt_credentials
from store.models import Appointment, AppointmentType, Calendar, CalendarConnection, Owner
from tests.booking_helpers import BookingOwner, busy_event, make_booking_owner
from tests.fakes.google_calendar import FakeGoogleCalendar
from tests.fakes.graph import FakeGraph, sign_in
from tests.radicale_server import RadicaleServer
from workflows.availability import SlotShape
from workflows.booking import ClientDetails, OwnerCalendars, book, default_connectors, move, offer_slots

UTC = timezone.utc
MADRID = ZoneInfo("Europe/Madrid")


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=MADRID).astimezone(UTC)


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer() as server:
        yield server


@pytest.fixture
def fakes() -> Iterator[tuple[FakeGoogleCalendar, FakeGraph]]:
    with FakeGoogleCalendar() as google, FakeGraph() as graph:
        yield google, graph


def _factory(stack, google: FakeGoogleCalendar, graph: FakeGraph):  # type: ignore[no-untyped-def]
    """The registry's connectors, configured as a deployment would be (client ids in settings) but pointed at
    the local fakes."""
    settings = dataclasses.replace(stack.settings, google_client_id=google.client_id,
                                   google_client_secret=google.client_secret, microsoft_client_id=graph.client_id,
                                   microsoft_client_secret=graph.client_secret)
    options: dict[str, dict[str, Any]] = {
        "google": {"api_endpoint": google.api_endpoint, "token_uri": google.token_uri,
                   "retrier": Retrier(sleep=lambda s: None)},
        "outlook": {"authority": graph.authority, "graph_url": graph.graph_url, "session": graph.session(),
                    "limiter": MailboxLimiter(), "retrier": Retrier(sleep=lambda s: None)},
    }
    return default_connectors(settings, options)


def _connect(stack, bo: BookingOwner, google: FakeGoogleCalendar, graph: FakeGraph,  # type: ignore[no-untyped-def]
             target: str) -> dict[str, int]:
    """Add the Google and Outlook connections; ``target`` (caldav | google | outlook) receives bookings."""
    now = stack.clock.now()
    key = stack.settings.secret_key
    ids = {}
    with stack.session() as s:
        if target != "caldav":
            for cal in s.query(Calendar).all():
                cal.receives_bookings = False
        for provider, creds, external in (("google", google.issue_tokens(), "primary@example.com"),
                                          ("outlook", sign_in(graph), graph.default_calendar())):
            conn = CalendarConnection(owner_id=bo.owner_id, provider=provider, account=f"ana@{provider}",
                                      credentials=encrypt_credentials(key, creds), status="ok", status_detail="",
                                      created_at=now)
            s.add(conn)
            s.flush()
            cal = Calendar(connection_id=conn.id, external_id=external, name=provider, watched=True,
                           receives_bookings=provider == target)
            s.add(cal)
            s.flush()
            ids[provider] = cal.id
        s.get(AppointmentType, bo.type_id).meeting = "conference"
    return ids


@pytest.fixture
def owner(stack, radicale) -> BookingOwner:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return make_booking_owner(s, radicale, stack.settings.secret_key, stack.clock.now())


def test_busy_in_google_outlook_or_caldav_is_never_offered(stack, radicale, owner, fakes):
    google, graph = fakes
    _connect(stack, owner, google, graph, "caldav")
    google.add_event("primary@example.com", "Dentista", _at(3, 10), _at(3, 11))
    graph.add_event(graph.default_calendar(), "Reunión", _at(3, 12), _at(3, 13))
    radicale.put(owner.calendar_urls["family"], "f.ics", busy_event("f", _at(3, 14), _at(3, 15)))
    factory = _factory(stack, google, graph)
    with stack.ctx.sessions() as s:
        o = s.get(Owner, owner.owner_id)
        slots = offer_slots(s, o, SlotShape(timedelta(hours=1)), OwnerCalendars(s, owner.owner_id, factory),
                            now=stack.clock.now(), days=3)
    tuesday = [x.astimezone(MADRID).strftime("%H:%M") for x in slots if x.astimezone(MADRID).day == 3]
    assert tuesday == ["09:00", "11:00", "15:00", "15:30", "16:00", "16:30", "17:00"]


@pytest.mark.parametrize("target,host", [("google", "meet.google.com"), ("outlook", "teams.microsoft.com")])
def test_booking_into_google_or_outlook_adds_the_meeting_link_and_keeps_it(stack, owner, fakes, target, host):
    google, graph = fakes
    ids = _connect(stack, owner, google, graph, target)
    factory = _factory(stack, google, graph)
    appt = book(stack.ctx, owner_id=owner.owner_id, type_id=owner.type_id, starts_at=_at(4, 10),
                details=ClientDetails(email="marta@example.com", name="Marta"), factory=factory)
    assert host in appt.meeting_link and appt.calendar_id == ids[target]
    link = appt.meeting_link
    moved = move(stack.ctx, appointment_id=appt.id, starts_at=_at(5, 16), factory=factory)
    assert moved.meeting_link == link
    with stack.session() as s:
        row = s.get(Appointment, appt.id)
        assert row.starts_at == _at(5, 16) and row.meeting_link == link
    connector = factory(_conn(stack, ids[target]))
    busy = connector.busy([_external(stack, ids[target])], _at(4, 0), _at(6, 0))
    assert [(b.starts_at, b.ends_at) for b in busy] == [(_at(5, 16), _at(5, 17))]


def _conn(stack, calendar_id: int) -> CalendarConnection:  # type: ignore[no-untyped-def]
    with stack.ctx.sessions() as s:
        cal = s.get(Calendar, calendar_id)
        return s.get(CalendarConnection, cal.connection_id)


def _external(stack, calendar_id: int) -> str:  # type: ignore[no-untyped-def]
    with stack.ctx.sessions() as s:
        return s.get(Calendar, calendar_id).external_id
