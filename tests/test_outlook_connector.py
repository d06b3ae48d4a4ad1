"""OutlookConnector through real msal (authorization-code flow, refresh) and requests, against the fake Graph."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from connectors import outlook
from connectors.base import (Attendee, AuthExpired, CursorInvalid, EventDraft, ProviderUnavailable, RateLimited)
from connectors.http_retry import MailboxLimiter, Retrier
from connectors.outlook import OutlookConnector, iana_zone, parse_datetime_timezone
from tests.fakes.graph import FakeGraph, sign_in

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
WINDOW = {"window_start": T0 - timedelta(days=1), "window_end": T0 + timedelta(days=90)}


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


def connect(fake: FakeGraph, credentials: dict[str, Any] | None = None, sleeps: list[float] | None = None,
            attempts: int = 4, limiter: MailboxLimiter | None = None) -> OutlookConnector:
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return OutlookConnector(credentials or sign_in(fake), client_id=fake.client_id,
                            client_secret=fake.client_secret, authority=fake.authority, graph_url=fake.graph_url,
                            session=fake.session(), limiter=limiter or MailboxLimiter(),
                            retrier=Retrier(sleep=sleep, attempts=attempts, rng=lambda: 0.5))


def test_sign_in_gives_storable_credentials(fake: FakeGraph) -> None:
    app = outlook.make_app(fake.client_id, fake.client_secret, authority=fake.authority, http_client=fake.session())
    flow = outlook.start_authorization(app, "https://reagenda.test/connect/outlook/callback", state="st4te")
    target, fields = fake.consent(flow["auth_uri"])
    assert target == "https://reagenda.test/connect/outlook/callback" and fields["state"] == "st4te"
    creds = outlook.finish_authorization(app, flow, fields)
    assert creds["account"] == fake.mailbox and creds["home_account_id"]
    assert "refresh_token" not in creds and "RefreshToken" in creds["token_cache"]  # inside msal's cache only
    calendars = connect(fake, creds).list_calendars()
    assert calendars[0].primary and calendars[0].external_id == fake.default_calendar()


def test_full_delta_follows_next_links_and_keeps_the_delta_link(fake: FakeGraph) -> None:
    fake.max_page_size = 2
    cal = fake.default_calendar()
    for i in range(3):
        fake.add_event(cal, f"Cita {i}", T0 + timedelta(days=i), T0 + timedelta(days=i, hours=1),
                       attendees=("Ana@Example.com",), teams=(i == 0))
    master, ids = fake.add_series(cal, "Semanal", T0, timedelta(hours=1), 3, attendees=("luis@example.com",))
    connector = connect(fake)

    changes = connector.changes(cal, None, **WINDOW)

    assert changes.full and len(changes.upserted) == 6
    assert len(fake.api_requests) == 3  # 6 items at 2 a page
    assert "$deltatoken=" in changes.cursor  # the whole deltaLink is in the cursor
    teams = next(o for o in changes.upserted if o.title == "Cita 0")
    assert teams.meeting_link.startswith("https://teams.microsoft.com/l/meetup-join/")
    assert teams.attendees[0].email == "ana@example.com"
    series = sorted((o for o in changes.upserted if o.title == "Semanal"), key=lambda o: o.starts_at)
    assert [o.uid for o in series] == [master] * 3
    assert [o.recurrence_id for o in series] == [(T0 + timedelta(weeks=n)).isoformat() for n in range(3)]


def test_no_change_sync_costs_one_request(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    fake.add_event(cal, "Cita", T0, T0 + timedelta(hours=1), attendees=("ana@example.com",))
    connector = connect(fake)
    cursor = connector.changes(cal, None, **WINDOW).cursor
    mark = len(fake.api_requests)
    changes = connector.changes(cal, cursor, **WINDOW)
    assert fake.requests_since(mark) == 1
    assert changes.upserted == [] and changes.deleted_uids == [] and not changes.full


def test_incremental_add_move_remove_and_override(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    moved = fake.add_event(cal, "Se mueve", T0, T0 + timedelta(hours=1), attendees=("ana@example.com",))
    gone = fake.add_event(cal, "Se borra", T0, T0 + timedelta(hours=1), attendees=("ana@example.com",))
    master, ids = fake.add_series(cal, "Semanal", T0, timedelta(hours=1), 3, attendees=("luis@example.com",))
    connector = connect(fake)
    cursor = connector.changes(cal, None, **WINDOW).cursor

    new = fake.add_event(cal, "Nueva", T0 + timedelta(days=2), T0 + timedelta(days=2, hours=1),
                         attendees=("eva@example.com",))
    fake.update_event(cal, moved, start=T0 + timedelta(hours=4), end=T0 + timedelta(hours=5))
    fake.delete_event(cal, gone)
    fake.delete_event(cal, ids[1])
    fake.update_event(cal, ids[2], start=T0 + timedelta(weeks=2, hours=1), end=T0 + timedelta(weeks=2, hours=2))
    fake.update_event(cal, new, isCancelled=True)

    changes = connector.changes(cal, cursor, **WINDOW)

    by_key = {(o.uid, o.recurrence_id): o for o in changes.upserted}
    assert by_key[(moved, "")].starts_at == T0 + timedelta(hours=4)
    assert by_key[(new, "")].status == "cancelled"
    assert changes.deleted_uids == [gone]
    # the removed occurrence (only its own id came back) is a cancelled occurrence of its series
    assert by_key[(master, (T0 + timedelta(weeks=1)).isoformat())].status == "cancelled"
    override = by_key[(master, (T0 + timedelta(weeks=2)).isoformat())]
    assert override.starts_at == T0 + timedelta(weeks=2, hours=1) and override.status == "confirmed"
    again = connector.changes(cal, changes.cursor, **WINDOW)
    assert again.upserted == [] and again.deleted_uids == []


def test_deleted_series_cancels_every_occurrence(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    master, _ = fake.add_series(cal, "Semanal", T0, timedelta(hours=1), 4, attendees=("luis@example.com",))
    connector = connect(fake)
    cursor = connector.changes(cal, None, **WINDOW).cursor
    fake.delete_event(cal, master)
    changes = connector.changes(cal, cursor, **WINDOW)
    assert changes.deleted_uids == []
    assert sorted(o.recurrence_id for o in changes.upserted if o.uid == master and o.status == "cancelled") == [
        (T0 + timedelta(weeks=n)).isoformat() for n in range(4)]


def test_lost_sync_state_is_cursor_invalid(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    fake.add_event(cal, "Cita", T0, T0 + timedelta(hours=1), attendees=("ana@example.com",))
    connector = connect(fake)
    cursor = connector.changes(cal, None, **WINDOW).cursor
    fake.invalidate_delta_tokens()
    with pytest.raises(CursorInvalid):
        connector.changes(cal, cursor, **WINDOW)
    fake.fail_next(400, "resyncRequired")
    with pytest.raises(CursorInvalid):
        connector.changes(cal, cursor, **WINDOW)
    assert len(connector.changes(cal, None, **WINDOW).upserted) == 1


def test_horizon_move_starts_a_new_delta_round(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    fake.add_event(cal, "Lejos", T0 + timedelta(days=100), T0 + timedelta(days=100, hours=1),
                   attendees=("ana@example.com",))
    connector = connect(fake)
    first = connector.changes(cal, None, **WINDOW)
    assert first.upserted == []  # beyond the window + slack
    later = {k: v + timedelta(days=14) for k, v in WINDOW.items()}
    moved = connector.changes(cal, first.cursor, **later)
    assert moved.full and [o.title for o in moved.upserted] == ["Lejos"]


def test_windows_zone_names_map_to_iana(fake: FakeGraph) -> None:
    assert iana_zone("Romance Standard Time").key == "Europe/Paris"
    assert iana_zone("Pacific Standard Time").key == "America/Los_Angeles"
    assert iana_zone("Europe/Madrid").key == "Europe/Madrid"
    assert parse_datetime_timezone({"dateTime": "2026-07-01T10:00:00.0000000",
                                    "timeZone": "Romance Standard Time"}) == datetime(2026, 7, 1, 8, 0,
                                                                                       tzinfo=timezone.utc)
    cal = fake.default_calendar()
    fake.add_event(cal, "En París", T0, T0 + timedelta(hours=1), attendees=("ana@example.com",))
    fake.add_event(cal, "Día entero", date(2026, 3, 3), date(2026, 3, 4), attendees=("ana@example.com",),
                   zone="Romance Standard Time")
    fake.output_zone = "Romance Standard Time"  # responses in a Windows zone, as with an outlook.timezone preference
    changes = connect(fake).changes(cal, None, **WINDOW)
    by_title = {o.title: o for o in changes.upserted}
    assert by_title["En París"].starts_at == T0
    all_day = by_title["Día entero"]
    assert all_day.all_day and all_day.starts_at == datetime(2026, 3, 2, 23, 0, tzinfo=timezone.utc)


def test_refresh_through_msal_and_revocation_is_auth_expired(fake: FakeGraph) -> None:
    creds = sign_in(fake)
    connector = connect(fake, creds)
    fake.expire_access_tokens()  # the server forgets the access token: 401, msal refreshes once
    assert connector.list_calendars()
    assert fake.token_requests == ["authorization_code", "refresh_token"]
    assert connector.credentials["token_cache"] != creds["token_cache"]

    fake.revoke()
    with pytest.raises(AuthExpired, match="reconnect"):
        connect(fake, connector.credentials).list_calendars()


def test_429_retry_after_is_honoured(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    sleeps: list[float] = []
    connector = connect(fake, sleeps=sleeps)
    fake.fail_next(429, "ApplicationThrottled", retry_after="7")
    fake.fail_next(503, "ServiceUnavailable")
    assert connector.changes(cal, None, **WINDOW).full
    assert sleeps == [7.0, 0.5]  # Retry-After as given, then jittered backoff
    fake.fail_next(429, "ApplicationThrottled", retry_after="3600", times=1)
    with pytest.raises(RateLimited) as caught:  # too long to wait inside a job: handed to the sync engine
        connector.changes(cal, None, **WINDOW)
    assert caught.value.retry_after_s == 3600
    fake.fail_next(500, "InternalServerError", times=10)
    with pytest.raises(ProviderUnavailable):
        connector.list_calendars()


def test_no_more_than_four_requests_in_flight_per_mailbox(fake: FakeGraph) -> None:
    fake.latency_s = 0.05
    calendars = [fake.add_calendar(f"AAMkCal{n}", f"Sala {n}") for n in range(8)]
    for cal in calendars:
        fake.add_event(cal, "Ocupado", T0, T0 + timedelta(hours=1))
    creds = sign_in(fake)
    limiter = MailboxLimiter()
    connectors = [connect(fake, creds, limiter=limiter) for _ in range(3)]  # three jobs for one mailbox
    results: list[int] = []

    def work(c: OutlookConnector) -> None:
        results.append(len(c.busy(calendars, T0, T0 + timedelta(days=1))))

    threads = [threading.Thread(target=work, args=(c,)) for c in connectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1, 1, 1]  # the same hour on 8 calendars merges into one interval
    assert fake.max_in_flight <= 4 and fake.throttled == 0


def test_busy_skips_free_and_cancelled(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    fake.add_event(cal, "Ocupado", T0, T0 + timedelta(hours=1))
    fake.add_event(cal, "Libre", T0 + timedelta(hours=2), T0 + timedelta(hours=3), show_as="free")
    fake.add_event(cal, "Cancelado", T0 + timedelta(hours=4), T0 + timedelta(hours=5), cancelled=True)
    busy = connect(fake).busy([cal], T0 - timedelta(hours=1), T0 + timedelta(days=1))
    assert [(b.starts_at, b.ends_at) for b in busy] == [(T0, T0 + timedelta(hours=1))]


def test_create_with_teams_update_delete_twice(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    connector = connect(fake)
    draft = EventDraft(title="Consulta", starts_at=T0, ends_at=T0 + timedelta(hours=1),
                       attendees=(Attendee(email="ana@example.com", name="Ana"),), request_conference=True,
                       timezone="Europe/Madrid")
    created = connector.create_event(cal, draft)
    assert created.meeting_link.startswith("https://teams.microsoft.com/")
    assert created.starts_at == T0 and created.attendees[0].email == "ana@example.com"
    moved = connector.update_event(cal, created.uid, EventDraft(
        title="Consulta", starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=1, hours=1),
        timezone="Romance Standard Time"))
    assert moved.uid == created.uid and moved.starts_at == T0 + timedelta(days=1)
    connector.delete_event(cal, created.uid)
    connector.delete_event(cal, created.uid)  # 404: already gone is success
    assert fake.events[cal][created.uid]["_deleted"]


def test_subscription_create_renew_delete(fake: FakeGraph) -> None:
    cal = fake.default_calendar()
    connector = connect(fake)
    watch = connector.watch(cal, "https://reagenda.test/push/graph")
    assert watch is not None
    sub = fake.subscriptions[watch.channel_id]
    assert sub["clientState"] == watch.secret and sub["resource"] == f"me/calendars/{cal}/events"
    assert watch.expires_at - datetime.now(timezone.utc) > timedelta(days=6)
    sub["expirationDateTime"] = "2026-01-01T00:00:00Z"
    renewed = connector.renew_watch(watch, "https://reagenda.test/push/graph")
    assert renewed.channel_id == watch.channel_id and renewed.secret == watch.secret
    assert fake.subscriptions[watch.channel_id]["expirationDateTime"] != "2026-01-01T00:00:00Z"
    connector.unwatch(watch)
    assert watch.channel_id not in fake.subscriptions
    connector.unwatch(watch)  # already gone: success


def test_a_bare_refresh_token_is_redeemed_once_into_msal_cache_credentials(fake: FakeGraph) -> None:
    """What a hand-rolled auth-code exchange stores ({"refresh_token": ...}) works, and comes back as msal's cache."""
    connector = connect(fake, {"refresh_token": fake.issue_refresh_token(), "access_token": "stale"})
    assert connector.list_calendars()[0].primary
    creds = connector.credentials
    assert creds["token_cache"] and creds["home_account_id"] == "fake-user-id.fake-tenant"
    fake.expire_access_tokens()
    assert connect(fake, creds).list_calendars()  # the cache form refreshes through msal as usual
    fake.revoke()
    with pytest.raises(AuthExpired):
        connect(fake, {"refresh_token": "0.revoked"}).list_calendars()
