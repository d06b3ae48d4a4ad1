"""The sync engine against a real Radicale, on both backends: idempotency, moves, cancellations, declines,
restores, recurring overrides, token expiry, credentials, faults and malformed events."""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from store.models import Appointment, Calendar, Step
from tests.radicale_server import free_port
from tests.sync_support import appointments, calendar_row, connect, connection_row, ics, override
from workflows.sync import sync_calendar

CLIENT = "marta@example.com"


def _setup(stack, radicale, **quirks):  # type: ignore[no-untyped-def]
    cal_url = radicale.make_calendar(f"c{uuid.uuid4().hex[:10]}")
    creds = {"url": radicale.url, "username": radicale.username, "password": radicale.password}
    if quirks:
        creds["quirks"] = quirks
    return cal_url, connect(stack, "caldav", creds, cal_url)


def _snapshot(stack):  # type: ignore[no-untyped-def]
    with stack.session() as s:
        appts = [(a.id, a.status, a.starts_at, a.updated_at, a.calendar_state)
                 for a in s.scalars(select(Appointment).order_by(Appointment.id)).unique()]
        steps = [(st.id, st.state, st.due_at) for st in s.scalars(select(Step).order_by(Step.id))]
    return appts, steps


def _set_external_id(stack, cal_id: int, url: str) -> None:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        s.get(Calendar, cal_id).external_id = url


def test_full_sync_then_same_sync_again_changes_and_emits_nothing(stack, radicale):
    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    radicale.put(cal_url, "a.ics", ics("a", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                                       attendees=(CLIENT, "lumen@example.com")))
    radicale.put(cal_url, "busy.ics", ics("busy", now + timedelta(days=1), now + timedelta(days=1, hours=2),
                                          title="Dentist"))  # owner-only: busy time, never an appointment
    radicale.put(cal_url, "weekly.ics", ics("weekly", now + timedelta(days=1), now + timedelta(days=1, hours=1),
                                            attendees=("pablo@example.com",), rrule="FREQ=WEEKLY;COUNT=3"))
    first = sync_calendar(stack.ctx, cal_id)
    assert first.status == "ok" and first.full and first.count("new") == 4
    got = appointments(stack, cal_id)
    assert set(got) == {("a.ics", ""), *(("weekly.ics", (now + timedelta(days=1, weeks=w)).isoformat())
                                         for w in range(3))}
    assert got[("a.ics", "")][2] == CLIENT
    before = _snapshot(stack)

    stack.clock.advance(timedelta(minutes=10))
    again = sync_calendar(stack.ctx, cal_id)
    assert again.status == "ok" and not again.full and again.events == []
    assert _snapshot(stack) == before
    # A full resync of the same data (cursor dropped) also changes and emits nothing.
    with stack.session() as s:
        s.get(Calendar, cal_id).cursor = None
    full = sync_calendar(stack.ctx, cal_id, force=True)
    assert full.full and full.events == [] and _snapshot(stack) == before


def test_move_cancel_decline_restore_and_recurring_override(stack, radicale):
    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    start = now + timedelta(days=4)
    radicale.put(cal_url, "a.ics", ics("a", start, start + timedelta(hours=1), attendees=(CLIENT,)))
    radicale.put(cal_url, "b.ics", ics("b", start, start + timedelta(hours=1), attendees=("luis@example.com",)))
    series_start = now + timedelta(days=2)
    radicale.put(cal_url, "s.ics", ics("s", series_start, series_start + timedelta(hours=1),
                                       attendees=("eva@example.com",), rrule="FREQ=WEEKLY;COUNT=2"))
    assert sync_calendar(stack.ctx, cal_id).count("new") == 4

    moved_to = start + timedelta(days=1, hours=2)
    radicale.put(cal_url, "a.ics", ics("a", moved_to, moved_to + timedelta(hours=1), attendees=(CLIENT,)))
    radicale.delete(cal_url, "b.ics")
    second = series_start + timedelta(weeks=1)
    radicale.put(cal_url, "s.ics", ics("s", series_start, series_start + timedelta(hours=1),
                                       attendees=("eva@example.com",), rrule="FREQ=WEEKLY;COUNT=2",
                                       overrides=override("s", second, second + timedelta(hours=3),
                                                          second + timedelta(hours=4),
                                                          attendees=("eva@example.com",))))
    result = sync_calendar(stack.ctx, cal_id, force=True)
    assert sorted(e.kind for e in result.events) == ["cancelled", "moved", "moved"]
    got = appointments(stack, cal_id)
    assert got[("a.ics", "")][:2] == ("scheduled", moved_to)
    assert got[("b.ics", "")][0] == "cancelled"
    assert got[("s.ics", second.isoformat())][1] == second + timedelta(hours=3)

    radicale.put(cal_url, "a.ics", ics("a", moved_to, moved_to + timedelta(hours=1), attendees=(CLIENT,),
                                       partstat={CLIENT: "DECLINED"}))
    assert [e.kind for e in sync_calendar(stack.ctx, cal_id, force=True).events] == ["declined"]
    assert appointments(stack, cal_id)[("a.ics", "")][0] == "cancelled"

    radicale.put(cal_url, "a.ics", ics("a", moved_to, moved_to + timedelta(hours=1), attendees=(CLIENT,)))
    radicale.put(cal_url, "b.ics", ics("b", start, start + timedelta(hours=1), attendees=("luis@example.com",)))
    assert sorted(e.kind for e in sync_calendar(stack.ctx, cal_id, force=True).events) == ["restored", "restored"]
    assert appointments(stack, cal_id)[("a.ics", "")][0] == "scheduled"
    with stack.session() as s:
        open_steps = s.scalar(select(func.count()).select_from(Step).where(Step.state == "pending"))
    assert open_steps, "a restored appointment has its steps planned again"
    assert sync_calendar(stack.ctx, cal_id, force=True).events == []


def test_invalid_token_means_one_full_resync_without_duplicates(stack, radicale):
    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    radicale.put(cal_url, "a.ics", ics("a", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                                       attendees=(CLIENT,)))
    sync_calendar(stack.ctx, cal_id)
    with stack.session() as s:
        s.get(Calendar, cal_id).cursor = '{"m":"sync","t":"http://radicale.org/ns/sync/expired"}'
    radicale.put(cal_url, "b.ics", ics("b", now + timedelta(days=5), now + timedelta(days=5, hours=1),
                                       attendees=("luis@example.com",)))
    result = sync_calendar(stack.ctx, cal_id, force=True)
    assert result.status == "ok" and result.full and [e.kind for e in result.events] == ["new"]
    assert len(appointments(stack, cal_id)) == 2
    assert "expired" not in (calendar_row(stack, cal_id).cursor or "")


def test_expired_password_marks_needs_reconnect_once_and_stops_asking(stack, radicale):
    now = stack.clock.now()
    cal_url = radicale.make_calendar(f"c{uuid.uuid4().hex[:10]}")
    radicale.put(cal_url, "a.ics", ics("a", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                                       attendees=(CLIENT,)))
    cal_id = connect(stack, "caldav", {"url": radicale.url, "username": radicale.username, "password": "revoked"},
                     cal_url)
    first = sync_calendar(stack.ctx, cal_id)
    assert first.status == "needs_reconnect" and [e.kind for e in first.events] == ["needs_reconnect"]
    assert "app password" in first.error and "revoked" not in first.error
    conn = connection_row(stack, cal_id)
    assert conn.status == "needs_reconnect" and "reconnect" in conn.status_detail
    second = sync_calendar(stack.ctx, cal_id, force=True)
    assert second.status == "needs_reconnect" and second.events == []
    assert calendar_row(stack, cal_id).cursor is None


def test_unreachable_server_backs_off_keeps_cursor_and_appointments(stack, radicale):
    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    radicale.put(cal_url, "a.ics", ics("a", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                                       attendees=(CLIENT,)))
    sync_calendar(stack.ctx, cal_id)
    cursor = calendar_row(stack, cal_id).cursor
    dead_url = cal_url.replace(f":{radicale.port}/", f":{free_port()}/")
    _set_external_id(stack, cal_id, dead_url)  # the server is down: nothing listens there
    stack.clock.advance(timedelta(minutes=10))
    results = [sync_calendar(stack.ctx, cal_id, force=True) for _ in range(3)]
    assert [r.status for r in results] == ["backoff"] * 3 and all(r.events == [] for r in results)
    cal = calendar_row(stack, cal_id)
    assert cal.cursor == cursor and cal.sync_failures == 3 and "unreachable" in cal.sync_error
    assert cal.next_sync_at > stack.clock.now() + timedelta(minutes=2)  # 3rd failure: 2-4 minutes
    assert sync_calendar(stack.ctx, cal_id).status == "not_due"
    assert appointments(stack, cal_id)[("a.ics", "")][0] == "scheduled"
    _set_external_id(stack, cal_id, cal_url)  # back up
    stack.clock.advance(timedelta(minutes=5))
    healed = sync_calendar(stack.ctx, cal_id)
    assert healed.status == "ok" and healed.events == [] and calendar_row(stack, cal_id).sync_failures == 0


def test_malformed_event_is_skipped_and_never_deletes_its_appointment(stack, radicale):
    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    start = now + timedelta(days=3)
    radicale.put(cal_url, "a.ics", ics("a", start, start + timedelta(hours=1), attendees=(CLIENT,)))
    radicale.put(cal_url, "b.ics", ics("b", start, start + timedelta(hours=1), attendees=("luis@example.com",)))
    sync_calendar(stack.ctx, cal_id)
    broken = ics("a", start, start + timedelta(hours=1), attendees=(CLIENT,)).replace(
        "DTSTART:", "DTSTART;TZID=Mars/Olympus:").replace("Z\r\nDTEND", "\r\nDTEND", 1)
    radicale.put(cal_url, "a.ics", broken)
    radicale.put(cal_url, "c.ics", ics("c", start, start + timedelta(hours=1), attendees=("eva@example.com",)))
    for cursor_dropped in (False, True):
        if cursor_dropped:
            with stack.session() as s:
                        s.get(Calendar, cal_id).cursor = None
        result = sync_calendar(stack.ctx, cal_id, force=True)
        assert result.status == "ok"
        assert any("a.ics" in item and "Mars/Olympus" in item for item in result.skipped)
    got = appointments(stack, cal_id)
    assert got[("a.ics", "")][0] == "scheduled" and got[("c.ics", "")][0] == "scheduled"


def test_rolling_horizon_brings_new_occurrences_of_an_unchanged_series(stack, radicale):
    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    radicale.put(cal_url, "w.ics", ics("w", now + timedelta(days=1), now + timedelta(days=1, hours=1),
                                       attendees=(CLIENT,), rrule="FREQ=WEEKLY;COUNT=30"))
    assert sync_calendar(stack.ctx, cal_id).count("new") == 13
    stack.clock.advance(timedelta(days=8))
    result = sync_calendar(stack.ctx, cal_id)
    assert result.full and result.count("new") == 1 and result.count("cancelled") == 0


def test_etag_fallback_when_the_server_has_no_sync_collection(stack, radicale, caplog):
    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale, sync_collection=False)
    radicale.put(cal_url, "a.ics", ics("a", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                                       attendees=(CLIENT,)))
    assert sync_calendar(stack.ctx, cal_id).count("new") == 1
    assert '"m":"etag"' in calendar_row(stack, cal_id).cursor
    radicale.delete(cal_url, "a.ics")
    assert [e.kind for e in sync_calendar(stack.ctx, cal_id, force=True).events] == ["cancelled"]
    assert sync_calendar(stack.ctx, cal_id, force=True).events == []


def test_periodic_job_enqueues_each_due_calendar_once_and_a_worker_syncs_it(stack, radicale):
    from workflows.sync import enqueue_due

    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    radicale.put(cal_url, "a.ics", ics("a", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                                       attendees=(CLIENT,)))
    assert enqueue_due(stack.ctx) == 1
    assert enqueue_due(stack.ctx) == 0, "already queued: not queued twice"
    stack.work()
    assert appointments(stack, cal_id)[("a.ics", "")][0] == "scheduled"
    assert enqueue_due(stack.ctx) == 0, "synced: not due for another few minutes"
    stack.clock.advance(timedelta(minutes=6))
    assert enqueue_due(stack.ctx) == 1


def test_unreadable_credentials_mean_needs_reconnect(stack, radicale):
    from store.crypto import encrypt_credentials
    from store.models import CalendarConnection

    cal_url, cal_id = _setup(stack, radicale)
    with stack.session() as s:
        conn = s.get(CalendarConnection, s.get(Calendar, cal_id).connection_id)
        conn.credentials = encrypt_credentials("a-secret-key-from-before-rotation", {"url": "x"})
    result = sync_calendar(stack.ctx, cal_id)
    assert result.status == "needs_reconnect" and "reconnect the calendar" in result.error
    assert connection_row(stack, cal_id).status == "needs_reconnect"


def test_rate_limit_backs_off_at_least_retry_after(stack, radicale):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Busy(BaseHTTPRequestHandler):
        def do_REPORT(self) -> None:  # noqa: N802
            self.send_response(429)
            self.send_header("Retry-After", "900")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cal/"
        cal_id = connect(stack, "caldav", {"url": url, "username": "ana", "password": "pw"}, url)
        result = sync_calendar(stack.ctx, cal_id)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == "backoff" and "RateLimited" in result.error
    assert calendar_row(stack, cal_id).next_sync_at >= stack.clock.now() + timedelta(seconds=900)


def test_owner_title_rule_and_a_client_removed_from_the_event(stack, radicale):
    from store.models import Owner

    now = stack.clock.now()
    cal_url, cal_id = _setup(stack, radicale)
    with stack.session() as s:
        owner = s.scalar(select(Owner))
        owner.policy = {**(owner.policy or {}), "appointment_title_prefixes": ["Cita:"]}
    start = now + timedelta(days=2)
    radicale.put(cal_url, "rule.ics", ics("rule", start, start + timedelta(hours=1), title="Cita: Eva",
                                          extra="DESCRIPTION:Reservado por eva@example.com"))
    radicale.put(cal_url, "inv.ics", ics("inv", start, start + timedelta(hours=1), attendees=(CLIENT,)))
    assert sync_calendar(stack.ctx, cal_id).count("new") == 2
    assert appointments(stack, cal_id)[("rule.ics", "")][2] == "eva@example.com"
    radicale.put(cal_url, "inv.ics", ics("inv", start, start + timedelta(hours=1)))  # the owner removed Marta
    assert [e.kind for e in sync_calendar(stack.ctx, cal_id, force=True).events] == ["cancelled"]
    assert appointments(stack, cal_id)[("inv.ics", "")][0] == "cancelled"
    assert sync_calendar(stack.ctx, cal_id, force=True).events == []
