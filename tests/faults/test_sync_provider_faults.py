"""Fault 6: one owner's calendar provider answers 500s, then 429 with Retry-After, then times out, for simulated
minutes, while another owner's calendar on the same provider is healthy.

Proves, with the real Google connector against the local fake of the Calendar API and the real sync engine on a
simulated clock: the failing calendar backs off (exponentially, never sooner than Retry-After, far fewer requests
than ticks), the other owner keeps syncing on schedule, no local appointment is deleted or cancelled because its
provider is failing, and once the provider recovers the calendar converges (a new event and a move made during
the outage both arrive).
"""
from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from connectors.google import GoogleConnector
from connectors.http_retry import Retrier
from store.models import Appointment, Calendar, CalendarConnection
from tests.factories import make_owner
from tests.fakes.google_calendar import FakeGoogleCalendar
from workflows.sync import sync_calendar

pytestmark = [pytest.mark.faults]
CLIENT = "marta@example.com"


@pytest.fixture
def google() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar() as server:
        yield server


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: every request times out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


def _calendar(stack: Any, email: str) -> int:
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now, email=email)
        conn = CalendarConnection(owner_id=owner.id, provider="google", account=email, credentials="", status="ok",
                                  status_detail="", created_at=now)
        s.add(conn)
        s.flush()
        cal = Calendar(connection_id=conn.id, external_id=email, name=email, watched=True, receives_bookings=False)
        s.add(cal)
        s.flush()
        return cal.id


def _connector(google: FakeGoogleCalendar, endpoint: str | None = None, timeout_s: float = 30) -> GoogleConnector:
    return GoogleConnector(google.issue_tokens(), client_id=google.client_id, client_secret=google.client_secret,
                           api_endpoint=endpoint or google.api_endpoint, token_uri=google.token_uri,
                           retrier=Retrier(sleep=lambda s: None, attempts=2), timeout_s=timeout_s)


def _appointments(stack: Any, cal_id: int) -> list[tuple[str, str, Any]]:
    with stack.session() as s:
        return [(a.title, a.status, a.starts_at) for a in
                s.scalars(select(Appointment).where(Appointment.calendar_id == cal_id).order_by(Appointment.title))]


def test_a_failing_provider_backs_off_alone_deletes_nothing_and_converges(stack, google, black_hole) -> None:
    google.add_calendar("ana@example.com", "Ana")
    google.add_calendar("bea@example.com", "Bea")
    ana, bea = _calendar(stack, "ana@example.com"), _calendar(stack, "bea@example.com")
    good = _connector(google)
    start = stack.clock.now() + timedelta(days=3)
    a1 = google.add_event("ana@example.com", "A1", start, start + timedelta(hours=1), attendees=[CLIENT])
    google.add_event("bea@example.com", "B1", start, start + timedelta(hours=1), attendees=[CLIENT])
    assert sync_calendar(stack.ctx, ana, connector=good, force=True).status == "ok"
    assert sync_calendar(stack.ctx, bea, connector=good, force=True).status == "ok"
    before = _appointments(stack, ana)

    # During the outage Ana's calendar changes at the provider, and Bea keeps getting new bookings.
    google.add_event("ana@example.com", "A2", start, start + timedelta(hours=1), attendees=[CLIENT])
    google.update_event("ana@example.com", a1, start=start + timedelta(hours=2), end=start + timedelta(hours=3))

    phases = [
        ("500", lambda: google.fail_next(500, "backendError", times=10_000, calendar_id="ana@example.com"), good),
        ("429", lambda: google.fail_next(429, "rateLimitExceeded", times=10_000, calendar_id="ana@example.com",
                                         retry_after="900"), good),
        ("timeout", lambda: None, _connector(google, black_hole, timeout_s=0.3)),
    ]
    attempts = {}
    bea_synced = 0
    for name, inject, ana_connector in phases:
        google.faults.clear()
        inject()
        # One forced attempt (as "sync now" or a push notification would) so each kind of fault is really met;
        # the minute ticks after it must respect the backoff it set.
        forced = sync_calendar(stack.ctx, ana, connector=ana_connector, force=True)
        assert forced.status == "backoff", (name, forced.status, forced.error)
        attempts[name] = 1
        if name == "429":
            with stack.session() as s:
                assert s.get(Calendar, ana).next_sync_at - stack.clock.now() >= timedelta(seconds=900), \
                    "Retry-After is honoured"
        for minute in range(60):  # an hour per phase, one tick a minute
            stack.clock.advance(timedelta(minutes=1))
            result = sync_calendar(stack.ctx, ana, connector=ana_connector)
            assert result.status in ("backoff", "not_due"), (name, minute, result.status, result.error)
            if result.status == "backoff":
                attempts[name] += 1
                if name == "429":
                    with stack.session() as s:
                        wait = s.get(Calendar, ana).next_sync_at - stack.clock.now()
                    assert wait >= timedelta(seconds=900), "Retry-After is honoured"
            assert _appointments(stack, ana) == before, f"{name}: local appointments changed during the outage"
            if minute % 20 == 0:
                google.add_event("bea@example.com", f"B-{name}-{minute}", start, start + timedelta(hours=1),
                                 attendees=[CLIENT])
            b = sync_calendar(stack.ctx, bea, connector=good)
            assert b.status in ("ok", "not_due"), (name, b.status, b.error)
            bea_synced += b.status == "ok"
        assert 1 <= attempts[name] <= 10, f"{name}: {attempts[name]} attempts in an hour is not backing off"

    assert bea_synced >= 30, "the healthy owner kept syncing every 5 minutes"
    assert len(_appointments(stack, bea)) == 1 + 3 * 3, "every booking Bea got during Ana's outage arrived"

    # Recovery: the provider answers again; once the backoff expires, Ana's calendar converges.
    google.faults.clear()
    for _ in range(8 * 60):
        stack.clock.advance(timedelta(minutes=1))
        if sync_calendar(stack.ctx, ana, connector=good).status == "ok":
            break
    else:
        pytest.fail("Ana's calendar never synced again after the provider recovered")
    after = {title: (status, starts) for title, status, starts in _appointments(stack, ana)}
    assert after["A1"] == ("scheduled", start + timedelta(hours=2)), "the move made during the outage arrived"
    assert after["A2"][0] == "scheduled", "the booking made during the outage arrived"
