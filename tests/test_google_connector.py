"""GoogleConnector through the real google-api-python-client and google-auth, against the local fake API."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from connectors.base import (Attendee, AuthExpired, CursorInvalid, EventDraft, ProviderUnavailable, RateLimited)
from connectors.google import GoogleConnector, authorization_url, exchange_code
from connectors.http_retry import Retrier
from tests.fakes.google_calendar import FakeGoogleCalendar

CAL = "primary@example.com"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
WINDOW = {"window_start": T0 - timedelta(days=1), "window_end": T0 + timedelta(days=90)}


@pytest.fixture
def fake() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar() as server:
        yield server


def connect(fake: FakeGoogleCalendar, credentials: dict | None = None, sleeps: list[float] | None = None,
            attempts: int = 4) -> GoogleConnector:
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return GoogleConnector(credentials or fake.issue_tokens(), client_id=fake.client_id,
                           client_secret=fake.client_secret, api_endpoint=fake.api_endpoint,
                           token_uri=fake.token_uri, retrier=Retrier(sleep=sleep, attempts=attempts,
                                                                     rng=lambda: 0.5))


def test_full_sync_follows_pages_and_expands_series(fake: FakeGoogleCalendar) -> None:
    fake.max_page_size = 2
    for i in range(3):
        fake.add_event(CAL, f"Cita {i}", T0 + timedelta(days=i), T0 + timedelta(days=i, hours=1),
                       attendees=[{"email": "Ana@Example.com", "responseStatus": "accepted", "displayName": "Ana"}],
                       meet=(i == 0))
    series = fake.add_event(CAL, "Terapia semanal", T0, T0 + timedelta(hours=1),
                            recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"], attendees=["luis@example.com"])
    connector = connect(fake)

    changes = connector.changes(CAL, None, **WINDOW)

    assert changes.full and not changes.deleted_uids
    assert len(changes.upserted) == 7
    assert len(fake.api_requests) == 4  # 7 items at 2 a page; nextSyncToken only on the last page
    first = next(o for o in changes.upserted if o.title == "Cita 0")
    assert first.meeting_link.startswith("https://meet.google.com/")
    assert first.attendees == (Attendee(email="ana@example.com", name="Ana", status="accepted"),)
    weekly = sorted((o for o in changes.upserted if o.uid == series), key=lambda o: o.starts_at)
    assert [o.recurrence_id for o in weekly] == [(T0 + timedelta(weeks=n)).isoformat() for n in range(4)]
    assert changes.cursor


def test_no_change_sync_costs_one_request(fake: FakeGoogleCalendar) -> None:
    fake.add_event(CAL, "Cita", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    connector = connect(fake)
    cursor = connector.changes(CAL, None, **WINDOW).cursor
    mark = len(fake.api_requests)

    changes = connector.changes(CAL, cursor, **WINDOW)

    assert fake.requests_since(mark) == 1
    assert not changes.full and changes.upserted == [] and changes.deleted_uids == []
    assert changes.cursor == cursor


def test_incremental_add_move_cancel(fake: FakeGoogleCalendar) -> None:
    moved = fake.add_event(CAL, "Se mueve", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    gone = fake.add_event(CAL, "Se cancela", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    series = fake.add_event(CAL, "Semanal", T0, T0 + timedelta(hours=1), recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"],
                            attendees=["luis@example.com"])
    connector = connect(fake)
    cursor = connector.changes(CAL, None, **WINDOW).cursor

    new = fake.add_event(CAL, "Nueva", T0 + timedelta(days=3), T0 + timedelta(days=3, hours=1),
                         attendees=["eva@example.com"])
    fake.update_event(CAL, moved, start=T0 + timedelta(hours=5), end=T0 + timedelta(hours=6))
    fake.delete_event(CAL, gone)
    fake.override_instance(CAL, series, T0 + timedelta(weeks=1), status="cancelled")
    fake.override_instance(CAL, series, T0 + timedelta(weeks=2), start=T0 + timedelta(weeks=2, hours=2),
                           end=T0 + timedelta(weeks=2, hours=3))

    changes = connector.changes(CAL, cursor, **WINDOW)

    by_uid = {(o.uid, o.recurrence_id): o for o in changes.upserted}
    assert by_uid[(new, "")].title == "Nueva"
    assert by_uid[(moved, "")].starts_at == T0 + timedelta(hours=5)
    assert changes.deleted_uids == [gone]
    assert by_uid[(series, (T0 + timedelta(weeks=1)).isoformat())].status == "cancelled"
    override = by_uid[(series, (T0 + timedelta(weeks=2)).isoformat())]
    assert override.starts_at == T0 + timedelta(weeks=2, hours=2) and override.status == "confirmed"
    again = connector.changes(CAL, changes.cursor, **WINDOW)
    assert again.upserted == [] and again.deleted_uids == []


def test_deleted_series_is_one_deletion(fake: FakeGoogleCalendar) -> None:
    series = fake.add_event(CAL, "Semanal", T0, T0 + timedelta(hours=1), recurrence=["RRULE:FREQ=WEEKLY"],
                            attendees=["luis@example.com"])
    connector = connect(fake)
    cursor = connector.changes(CAL, None, **WINDOW).cursor
    fake.delete_event(CAL, series)
    changes = connector.changes(CAL, cursor, **WINDOW)
    assert changes.deleted_uids == [series] and changes.upserted == []


def test_expired_sync_token_is_cursor_invalid_then_full_sync(fake: FakeGoogleCalendar) -> None:
    fake.add_event(CAL, "Cita", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    connector = connect(fake)
    cursor = connector.changes(CAL, None, **WINDOW).cursor
    fake.invalidate_sync_tokens()

    with pytest.raises(CursorInvalid):
        connector.changes(CAL, cursor, **WINDOW)
    full = connector.changes(CAL, None, **WINDOW)
    assert full.full and len(full.upserted) == 1


def test_horizon_moving_past_the_cursor_runs_a_full_sync(fake: FakeGoogleCalendar) -> None:
    fake.add_event(CAL, "Sin fin", T0, T0 + timedelta(hours=1), recurrence=["RRULE:FREQ=WEEKLY"],
                   attendees=["luis@example.com"])
    connector = connect(fake)
    first = connector.changes(CAL, None, **WINDOW)
    # a few days later the window still fits in the horizon fetched (window + slack): incremental
    later = {"window_start": WINDOW["window_start"] + timedelta(days=3),
             "window_end": WINDOW["window_end"] + timedelta(days=3)}
    assert not connector.changes(CAL, first.cursor, **later).full
    # weeks later it does not: a new full sync brings the occurrences that entered the horizon
    weeks = {"window_start": WINDOW["window_start"] + timedelta(days=30),
             "window_end": WINDOW["window_end"] + timedelta(days=30)}
    moved = connector.changes(CAL, first.cursor, **weeks)
    assert moved.full
    assert max(o.starts_at for o in moved.upserted) > max(o.starts_at for o in first.upserted)


def test_expired_access_token_is_refreshed_and_exposed(fake: FakeGoogleCalendar) -> None:
    creds = fake.issue_tokens()
    connector = connect(fake, creds)
    fake.expire_access_tokens()

    assert connector.list_calendars()[0].external_id == CAL
    assert fake.token_requests == ["refresh_token"]
    assert connector.credentials["token"] != creds["token"]
    assert connector.credentials["refresh_token"] == creds["refresh_token"]


def test_revoked_refresh_token_is_auth_expired(fake: FakeGoogleCalendar) -> None:
    connector = connect(fake)
    fake.revoke()
    with pytest.raises(AuthExpired, match="reconnect"):
        connector.changes(CAL, None, **WINDOW)


def test_rate_limits_back_off_with_jitter_and_honour_retry_after(fake: FakeGoogleCalendar) -> None:
    fake.add_event(CAL, "Cita", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    sleeps: list[float] = []
    connector = connect(fake, sleeps=sleeps)
    fake.fail_next(403, "rateLimitExceeded", times=2)
    fake.fail_next(429, "rateLimitExceeded", retry_after="3")

    changes = connector.changes(CAL, None, **WINDOW)

    assert len(changes.upserted) == 1
    assert sleeps == [0.25, 0.5, 3.0]  # jittered backoff (rng fixed at 0.5), then the server's Retry-After


def test_persistent_rate_limit_on_one_calendar_leaves_the_others_syncing(fake: FakeGoogleCalendar) -> None:
    other = fake.add_calendar("team@example.com", "Equipo")
    fake.add_event(other, "Cita", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    connector = connect(fake, attempts=3)
    fake.fail_next(429, "rateLimitExceeded", times=10, calendar_id=CAL)

    with pytest.raises(RateLimited):
        connector.changes(CAL, None, **WINDOW)
    assert len(connector.changes(other, None, **WINDOW).upserted) == 1


def test_server_errors_are_retried_then_unavailable(fake: FakeGoogleCalendar) -> None:
    connector = connect(fake, attempts=2)
    fake.fail_next(503, "backendError", times=1)
    assert connector.changes(CAL, None, **WINDOW).full
    fake.fail_next(500, "backendError", times=5)
    with pytest.raises(ProviderUnavailable):
        connector.changes(CAL, None, **WINDOW)


def test_malformed_event_is_skipped_and_the_rest_syncs(fake: FakeGoogleCalendar) -> None:
    good = fake.add_event(CAL, "Buena", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    bad = fake.add_event(CAL, "Mala", T0, T0 + timedelta(hours=1), attendees=["ana@example.com"])
    fake.events[CAL][bad]["start"] = {"dateTime": "not a time"}
    changes = connect(fake).changes(CAL, None, **WINDOW)
    assert [o.uid for o in changes.upserted] == [good]
    assert len(changes.skipped) == 1 and bad in changes.skipped[0]


def test_busy_intervals_skip_transparent_and_cancelled(fake: FakeGoogleCalendar) -> None:
    fake.add_event(CAL, "Ocupado", T0, T0 + timedelta(hours=1))
    fake.add_event(CAL, "Libre", T0 + timedelta(hours=2), T0 + timedelta(hours=3), transparency="transparent")
    gone = fake.add_event(CAL, "Cancelado", T0 + timedelta(hours=4), T0 + timedelta(hours=5))
    fake.delete_event(CAL, gone)
    busy = connect(fake).busy([CAL], T0 - timedelta(hours=1), T0 + timedelta(days=1))
    assert [(b.starts_at, b.ends_at) for b in busy] == [(T0, T0 + timedelta(hours=1))]


def test_create_with_meet_update_and_delete_twice(fake: FakeGoogleCalendar) -> None:
    connector = connect(fake)
    draft = EventDraft(title="Consulta", starts_at=T0, ends_at=T0 + timedelta(hours=1),
                       attendees=(Attendee(email="ana@example.com", name="Ana"),), request_conference=True,
                       timezone="Europe/Madrid")
    created = connector.create_event(CAL, draft)
    assert created.meeting_link.startswith("https://meet.google.com/")
    assert created.starts_at == T0 and created.attendees[0].email == "ana@example.com"

    moved = connector.update_event(CAL, created.uid, EventDraft(
        title="Consulta", starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=1, hours=1),
        attendees=draft.attendees, timezone="Europe/Madrid"))
    assert moved.uid == created.uid and moved.starts_at == T0 + timedelta(days=1)

    connector.delete_event(CAL, created.uid)
    connector.delete_event(CAL, created.uid)  # 410 deleted: success
    connector.delete_event(CAL, "never-existed")  # 404: success
    assert fake.events[CAL][created.uid]["status"] == "cancelled"


def test_watch_and_unwatch(fake: FakeGoogleCalendar) -> None:
    connector = connect(fake)
    watch = connector.watch(CAL, "https://reagenda.test/push/google")
    assert watch is not None and len(watch.secret) >= 32
    channel = fake.channels[watch.channel_id]
    assert channel["token"] == watch.secret and channel["resourceId"] == watch.resource_id
    assert watch.expires_at > datetime.now(timezone.utc) + timedelta(days=6)
    connector.unwatch(watch)
    assert watch.channel_id not in fake.channels
    connector.unwatch(watch)  # already stopped: success


def test_oauth_authorization_code_flow_against_the_fake(fake: FakeGoogleCalendar) -> None:
    url = authorization_url(fake.client_id, "https://reagenda.test/connect/google/callback", "st4te",
                            auth_uri=fake.auth_uri)
    redirect = requests.get(url, allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    query = parse_qs(urlparse(redirect.headers["Location"]).query)
    assert query["state"] == ["st4te"]
    creds = exchange_code(fake.client_id, fake.client_secret, query["code"][0],
                          "https://reagenda.test/connect/google/callback", token_uri=fake.token_uri)
    assert creds["refresh_token"] and creds["token"]
    assert connect(fake, creds).list_calendars()[0].primary
    with pytest.raises(AuthExpired):  # a code works once
        exchange_code(fake.client_id, fake.client_secret, query["code"][0],
                      "https://reagenda.test/connect/google/callback", token_uri=fake.token_uri)


def test_from_settings_uses_stored_token_uri_and_client(fake: FakeGoogleCalendar) -> None:
    """Credentials as google-auth-oauthlib leaves them (token_uri, client id and secret inside) need no settings."""
    from types import SimpleNamespace

    creds = dict(fake.issue_tokens(), token_uri=fake.token_uri, client_id=fake.client_id,
                 client_secret=fake.client_secret)
    settings = SimpleNamespace(google_client_id=None, google_client_secret=None)
    connector = GoogleConnector.from_settings(settings, creds, api_endpoint=fake.api_endpoint)
    fake.expire_access_tokens()
    assert connector.list_calendars()[0].primary
    assert connector.credentials["token_uri"] == fake.token_uri


def test_unreachable_token_endpoint_is_provider_unavailable_not_reconnect(fake: FakeGoogleCalendar) -> None:
    connector = GoogleConnector(fake.issue_tokens(), client_id=fake.client_id, client_secret=fake.client_secret,
                                api_endpoint=fake.api_endpoint, token_uri="http://127.0.0.1:9/token",
                                retrier=Retrier(sleep=lambda s: None, attempts=2))
    fake.expire_access_tokens()
    with pytest.raises(ProviderUnavailable):
        connector.list_calendars()
