"""Push endpoints and channel renewal, on both backends, with the real connectors against the fake providers."""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, Iterator

import pytest
from rq.job import Job
from sqlalchemy import select

from connectors.google import GoogleConnector
from connectors.http_retry import MailboxLimiter, Retrier
from connectors.outlook import OutlookConnector
from store.models import Calendar, CalendarConnection, PushChannel
from tests.factories import make_owner
from tests.fakes.google_calendar import FakeGoogleCalendar
from tests.fakes.graph import FakeGraph, sign_in
from tests.fakes.serving import ThreadedServer
from web import create_app
from workflows import push_renewal
from workflows.sync import job_id

pytestmark = pytest.mark.backends


@pytest.fixture
def google() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar() as server:
        yield server


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


@pytest.fixture(autouse=True)
def https_base_url(stack, monkeypatch):  # type: ignore[no-untyped-def]
    """Google only delivers to HTTPS callbacks (the fake refuses others, as the API does)."""
    monkeypatch.setattr(stack.ctx, "settings", dataclasses.replace(stack.settings, base_url="https://reagenda.test"))


@pytest.fixture
def client(stack, https_base_url):  # type: ignore[no-untyped-def]
    return create_app(stack.ctx.settings, context=stack.ctx).test_client()


def google_connector(fake: FakeGoogleCalendar) -> GoogleConnector:
    return GoogleConnector(fake.issue_tokens(), client_id=fake.client_id, client_secret=fake.client_secret,
                           api_endpoint=fake.api_endpoint, token_uri=fake.token_uri,
                           retrier=Retrier(sleep=lambda s: None))


def outlook_connector(fake: FakeGraph) -> OutlookConnector:
    return OutlookConnector(sign_in(fake), client_id=fake.client_id, client_secret=fake.client_secret,
                            authority=fake.authority, graph_url=fake.graph_url, session=fake.session(),
                            limiter=MailboxLimiter(), retrier=Retrier(sleep=lambda s: None))


def make_calendar(stack: Any, provider: str, external_id: str) -> int:
    now = stack.clock.now()
    with stack.session() as session:
        owner = make_owner(session, now)
        conn = CalendarConnection(owner_id=owner.id, provider=provider, account="owner@example.com",
                                  credentials="", status="ok", status_detail="", created_at=now)
        session.add(conn)
        session.flush()
        cal = Calendar(connection_id=conn.id, external_id=external_id, name="Agenda", watched=True,
                       receives_bookings=False, next_sync_at=now + timedelta(minutes=5))
        session.add(cal)
        session.flush()
        return cal.id


def calendar(stack: Any, calendar_id: int) -> Calendar:
    with stack.session() as session:
        cal = session.get(Calendar, calendar_id)
        session.expunge(cal)
        return cal


def channels(stack: Any) -> list[PushChannel]:
    with stack.session() as session:
        rows = list(session.scalars(select(PushChannel).order_by(PushChannel.id)))
        for row in rows:
            session.expunge(row)
        return rows


def queued(stack: Any, jid: str) -> bool:
    return bool(stack.ctx.redis.exists(f"rq:job:{jid}")) and Job.fetch(
        jid, connection=stack.ctx.redis).get_status() == "queued"


# ---------------------------------------------------------------------------------------------------- Google


def test_google_exists_marks_the_calendar_and_queues_its_sync(stack, client, google) -> None:
    cal_id = make_calendar(stack, "google", "primary@example.com")
    channel_id = push_renewal.open_channel(stack.ctx, cal_id, connector=google_connector(google))
    assert channel_id in google.channels
    stored = channels(stack)[0]
    assert stored.secret != google.channels[channel_id]["token"]  # encrypted at rest
    assert stored.callback_url == "https://reagenda.test/push/google"

    first = client.post("/push/google", headers=google.push_headers(channel_id, "sync"))
    assert first.status_code == 200
    assert calendar(stack, cal_id).next_sync_at == stack.clock.now() + timedelta(minutes=5)  # sync: ignored
    assert not queued(stack, job_id(cal_id))

    response = client.post("/push/google", headers=google.push_headers(channel_id, "exists"))
    assert response.status_code == 200
    assert calendar(stack, cal_id).next_sync_at == stack.clock.now()
    assert queued(stack, job_id(cal_id))
    again = client.post("/push/google", headers=google.push_headers(channel_id, "exists"))
    assert again.status_code == 200 and len(stack.ctx.queue()) == 1  # a burst queues one sync


def test_google_forged_notifications_are_refused_and_change_nothing(stack, client, google) -> None:
    cal_id = make_calendar(stack, "google", "primary@example.com")
    channel_id = push_renewal.open_channel(stack.ctx, cal_id, connector=google_connector(google))
    before = calendar(stack, cal_id).next_sync_at

    forged = client.post("/push/google", headers=google.push_headers(channel_id, token="guess"))
    missing = client.post("/push/google", headers={k: v for k, v in google.push_headers(channel_id).items()
                                                   if k != "X-Goog-Channel-Token"})
    unknown = client.post("/push/google", headers={**google.push_headers(channel_id),
                                                   "X-Goog-Channel-ID": "not-ours"})

    assert (forged.status_code, missing.status_code, unknown.status_code) == (403, 403, 404)
    assert calendar(stack, cal_id).next_sync_at == before
    assert channels(stack)[0].last_notified_at is None
    assert len(stack.ctx.queue()) == 0


def test_push_respects_a_calendar_backing_off(stack, client, google) -> None:
    cal_id = make_calendar(stack, "google", "primary@example.com")
    channel_id = push_renewal.open_channel(stack.ctx, cal_id, connector=google_connector(google))
    later = stack.clock.now() + timedelta(minutes=10)
    with stack.session() as session:
        cal = session.get(Calendar, cal_id)
        cal.sync_failures, cal.next_sync_at = 3, later
    assert client.post("/push/google", headers=google.push_headers(channel_id)).status_code == 200
    assert calendar(stack, cal_id).next_sync_at == later and len(stack.ctx.queue()) == 0


def test_google_channels_are_replaced_before_expiry_and_stopped_on_close(stack, google) -> None:
    cal_id = make_calendar(stack, "google", "primary@example.com")
    connector = google_connector(google)
    old_id = push_renewal.open_channel(stack.ctx, cal_id, connector=connector)
    old = channels(stack)[0]
    assert push_renewal.renew_due(stack.ctx, connector_for=lambda conn: connector) == []  # not due yet

    stack.clock.set(old.expires_at - timedelta(hours=2))
    renewed = push_renewal.renew_due(stack.ctx, connector_for=lambda conn: connector)

    assert len(renewed) == 1 and renewed[0] != old_id
    assert old_id not in google.channels and renewed[0] in google.channels  # old one stopped at Google
    assert [c.channel_id for c in channels(stack)] == renewed
    assert push_renewal.close_channels(stack.ctx, [cal_id], connector_for=lambda conn: connector) == 1
    assert google.channels == {} and channels(stack) == []


# ---------------------------------------------------------------------------------------------------- Graph


def test_graph_validation_handshake_echoes_the_token(client) -> None:
    response = client.post("/push/graph?validationToken=Validation%3A%20Testing%20client%20reachability",
                           data="", content_type="text/plain")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Validation: Testing client reachability"


def test_graph_subscription_handshake_over_http(stack, graph) -> None:
    """Graph itself POSTs the validationToken to our running app before it creates the subscription."""
    cal_id = make_calendar(stack, "outlook", graph.default_calendar())
    server = ThreadedServer(create_app(stack.ctx.settings, context=stack.ctx))
    url = server.start()
    try:
        graph.validate_notification_urls = True
        connector = outlook_connector(graph)
        watch = connector.watch(graph.default_calendar(), f"{url}/push/graph")
        assert watch is not None and watch.channel_id in graph.subscriptions
        with pytest.raises(Exception, match="400"):  # an endpoint that does not echo is refused by Graph
            connector.watch(graph.default_calendar(), f"{url}/healthz")
    finally:
        server.stop()
    assert cal_id


def test_graph_change_notification_with_client_state_queues_a_sync(stack, client, graph) -> None:
    cal_id = make_calendar(stack, "outlook", graph.default_calendar())
    sub_id = push_renewal.open_channel(stack.ctx, cal_id, connector=outlook_connector(graph))
    event_id = graph.add_event(graph.default_calendar(), "Cita", stack.clock.now(),
                               stack.clock.now() + timedelta(hours=1))

    response = client.post("/push/graph", json=graph.change_notification(sub_id, event_id, "created"))

    assert response.status_code == 202
    assert calendar(stack, cal_id).next_sync_at == stack.clock.now()
    assert queued(stack, job_id(cal_id))


def test_graph_forged_client_state_is_refused_and_nothing_stored(stack, client, graph) -> None:
    cal_id = make_calendar(stack, "outlook", graph.default_calendar())
    sub_id = push_renewal.open_channel(stack.ctx, cal_id, connector=outlook_connector(graph))
    before = calendar(stack, cal_id).next_sync_at
    good = graph.change_notification(sub_id, "AAMkE1")
    bad = graph.change_notification(sub_id, "AAMkE2", client_state="guess")
    unknown = graph.change_notification(sub_id, "AAMkE3")
    unknown["value"][0]["subscriptionId"] = "not-ours"

    assert client.post("/push/graph", json=bad).status_code == 403
    assert client.post("/push/graph", json={"value": good["value"] + bad["value"]}).status_code == 403
    assert client.post("/push/graph", json=unknown).status_code == 403
    assert client.post("/push/graph", data="not json", content_type="application/json").status_code == 400
    assert calendar(stack, cal_id).next_sync_at == before
    assert channels(stack)[0].last_notified_at is None and len(stack.ctx.queue()) == 0


def test_graph_lifecycle_notifications(stack, client, graph) -> None:
    cal_id = make_calendar(stack, "outlook", graph.default_calendar())
    connector = outlook_connector(graph)
    sub_id = push_renewal.open_channel(stack.ctx, cal_id, connector=connector)

    # reauthorizationRequired: renewed (PATCH) by the renewal job, same subscription
    assert client.post("/push/graph",
                       json=graph.lifecycle_notification(sub_id, "reauthorizationRequired")).status_code == 202
    assert channels(stack)[0].status == "renew" and queued(stack, push_renewal.RENEW_JOB_ID)
    graph.subscriptions[sub_id]["expirationDateTime"] = "2026-01-01T00:00:00Z"
    assert push_renewal.renew_due(stack.ctx, connector_for=lambda conn: connector) == [sub_id]
    assert channels(stack)[0].status == "active"
    assert graph.subscriptions[sub_id]["expirationDateTime"] != "2026-01-01T00:00:00Z"

    # missed: a sync, nothing else
    assert client.post("/push/graph", json=graph.lifecycle_notification(sub_id, "missed")).status_code == 202
    assert calendar(stack, cal_id).next_sync_at == stack.clock.now()

    # subscriptionRemoved: a sync (changes may be lost) and a new subscription
    del graph.subscriptions[sub_id]
    removed = graph.lifecycle_notification(sub_id, "subscriptionRemoved", client_state=connector_secret(stack))
    assert client.post("/push/graph", json=removed).status_code == 202
    assert channels(stack)[0].status == "removed"
    renewed = push_renewal.renew_due(stack.ctx, connector_for=lambda conn: connector)
    assert len(renewed) == 1 and renewed[0] != sub_id and renewed[0] in graph.subscriptions
    assert [(c.channel_id, c.status) for c in channels(stack)] == [(renewed[0], "active")]


def connector_secret(stack: Any) -> str:
    with stack.session() as session:
        return push_renewal.secret_of(stack.ctx, session.scalars(select(PushChannel)).one())


def test_missing_channels_are_opened_only_for_https_and_watched_calendars(stack, google, monkeypatch) -> None:
    google.add_calendar("team@example.com", "Equipo")
    watched = make_calendar(stack, "google", "primary@example.com")
    with stack.session() as session:
        first = session.get(Calendar, watched)
        session.add(Calendar(connection_id=first.connection_id, external_id="team@example.com", name="Equipo",
                             watched=False, receives_bookings=False))
    connector = google_connector(google)

    opened = push_renewal.ensure_channels(stack.ctx, connector_for=lambda conn: connector)

    assert len(opened) == 1 and [c.calendar_id for c in channels(stack)] == [watched]
    assert push_renewal.ensure_channels(stack.ctx, connector_for=lambda conn: connector) == []  # idempotent
    monkeypatch.setattr(stack.ctx, "settings", dataclasses.replace(stack.ctx.settings,
                                                                   base_url="http://localhost:5000"))
    push_renewal.close_channels(stack.ctx, [watched], connector_for=lambda conn: connector)
    assert push_renewal.ensure_channels(stack.ctx, connector_for=lambda conn: connector) == []  # plain HTTP
