"""The Google and Outlook connectors driven by the real sync engine (workflows.sync) on both backends: what the
owner sees in the store after new, moved and cancelled events, a revoked token, and a throttled calendar."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from connectors.google import GoogleConnector
from connectors.http_retry import MailboxLimiter, Retrier
from connectors.outlook import OutlookConnector
from store.models import Appointment, Calendar, CalendarConnection
from tests.factories import make_owner
from tests.fakes.google_calendar import FakeGoogleCalendar
from tests.fakes.graph import FakeGraph, sign_in
from workflows.sync import sync_calendar

pytestmark = pytest.mark.backends
CLIENT = "marta@example.com"


@pytest.fixture
def google() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar() as server:
        yield server


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


def make_calendars(stack: Any, provider: str, *external_ids: str) -> list[int]:
    now = stack.clock.now()
    with stack.session() as session:
        owner = make_owner(session, now)
        conn = CalendarConnection(owner_id=owner.id, provider=provider, account=owner.email, credentials="",
                                  status="ok", status_detail="", created_at=now)
        session.add(conn)
        session.flush()
        cals = [Calendar(connection_id=conn.id, external_id=e, name=e, watched=True, receives_bookings=False)
                for e in external_ids]
        session.add_all(cals)
        session.flush()
        return [c.id for c in cals]


def appointments(stack: Any) -> list[tuple[str, str, Any, str]]:
    with stack.session() as session:
        return [(a.title, a.status, a.starts_at, a.meeting_link)
                for a in session.scalars(select(Appointment).order_by(Appointment.starts_at))]


def test_google_events_become_appointments_and_follow_changes(stack, google) -> None:
    (cal_id,) = make_calendars(stack, "google", "primary@example.com")
    connector = GoogleConnector(google.issue_tokens(), client_id=google.client_id,
                                client_secret=google.client_secret, api_endpoint=google.api_endpoint,
                                token_uri=google.token_uri, retrier=Retrier(sleep=lambda s: None))
    start = stack.clock.now() + timedelta(days=2)
    eid = google.add_event("primary@example.com", "Sesión", start, start + timedelta(hours=1), attendees=[CLIENT],
                           meet=True)
    google.add_event("primary@example.com", "Solo yo", start, start + timedelta(hours=1))  # owner-only: busy time

    first = sync_calendar(stack.ctx, cal_id, connector=connector, force=True)
    assert first.status == "ok" and first.count("new") == 1
    [(title, status, starts_at, link)] = appointments(stack)
    assert (title, status, starts_at) == ("Sesión", "scheduled", start) and link.startswith("https://meet.google")

    google.update_event("primary@example.com", eid, start=start + timedelta(hours=3), end=start + timedelta(hours=4))
    moved = sync_calendar(stack.ctx, cal_id, connector=connector, force=True)
    assert moved.count("moved") == 1 and not moved.full
    google.delete_event("primary@example.com", eid)
    cancelled = sync_calendar(stack.ctx, cal_id, connector=connector, force=True)
    assert cancelled.count("cancelled") == 1
    assert appointments(stack)[0][1] == "cancelled"
    assert sync_calendar(stack.ctx, cal_id, connector=connector, force=True).events == []


def test_google_revoked_token_marks_the_connection_needs_reconnect(stack, google) -> None:
    (cal_id,) = make_calendars(stack, "google", "primary@example.com")
    connector = GoogleConnector(google.issue_tokens(), client_id=google.client_id,
                                client_secret=google.client_secret, api_endpoint=google.api_endpoint,
                                token_uri=google.token_uri, retrier=Retrier(sleep=lambda s: None))
    google.revoke()
    result = sync_calendar(stack.ctx, cal_id, connector=connector, force=True)
    assert result.status == "needs_reconnect" and "invalid_grant" in result.error
    with stack.session() as session:
        assert session.scalars(select(CalendarConnection)).one().status == "needs_reconnect"


def test_google_throttled_calendar_backs_off_while_the_other_syncs(stack, google) -> None:
    google.add_calendar("team@example.com", "Equipo")
    busy_id, other_id = make_calendars(stack, "google", "primary@example.com", "team@example.com")
    connector = GoogleConnector(google.issue_tokens(), client_id=google.client_id,
                                client_secret=google.client_secret, api_endpoint=google.api_endpoint,
                                token_uri=google.token_uri, retrier=Retrier(sleep=lambda s: None, attempts=2))
    google.fail_next(403, "rateLimitExceeded", times=50, calendar_id="primary@example.com")
    assert sync_calendar(stack.ctx, busy_id, connector=connector, force=True).status == "backoff"
    assert sync_calendar(stack.ctx, other_id, connector=connector, force=True).status == "ok"
    with stack.session() as session:
        throttled = session.get(Calendar, busy_id)
        assert throttled.cursor is None and throttled.next_sync_at > stack.clock.now()


def test_outlook_series_occurrence_removed_cancels_that_appointment_only(stack, graph) -> None:
    cal = graph.default_calendar()
    (cal_id,) = make_calendars(stack, "outlook", cal)
    connector = OutlookConnector(sign_in(graph), client_id=graph.client_id, client_secret=graph.client_secret,
                                 authority=graph.authority, graph_url=graph.graph_url, session=graph.session(),
                                 limiter=MailboxLimiter(), retrier=Retrier(sleep=lambda s: None))
    start = stack.clock.now() + timedelta(days=1)
    _, ids = graph.add_series(cal, "Terapia", start, timedelta(hours=1), 3, attendees=(CLIENT,))
    assert sync_calendar(stack.ctx, cal_id, connector=connector, force=True).count("new") == 3
    graph.delete_event(cal, ids[1])
    result = sync_calendar(stack.ctx, cal_id, connector=connector, force=True)
    assert result.count("cancelled") == 1
    assert [status for _, status, _, _ in appointments(stack)] == ["scheduled", "cancelled", "scheduled"]
