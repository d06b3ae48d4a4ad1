"""Connecting Google and Microsoft calendars through the real OAuth libraries (google-auth-oauthlib, msal) against
the local fakes: state and PKCE, offline access, tokens stored encrypted, calendars listed and synced, the state
checked (a callback that did not start in this browser connects nothing), disconnect deletes the tokens."""
from __future__ import annotations

import dataclasses
import re
import threading
from datetime import timedelta
from html import unescape
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from store.models import Appointment, Calendar, CalendarConnection
from tests.fakes.google_calendar import FakeGoogleCalendar
from tests.fakes.graph import FakeGraph
from tests.web_fixtures import post_form, sign_up, web_app, web_client  # noqa: F401


@pytest.fixture
def google() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar() as fake:
        yield fake


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


def _configure(stack, web_app, **values) -> None:  # type: ignore[no-untyped-def]
    stack.ctx.settings = dataclasses.replace(stack.ctx.settings, **values)


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_google_oauth_with_state_and_pkce_then_sync(web_client, web_app, stack, google, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake's token endpoint is plain http on loopback
    _configure(stack, web_app, google_client_id=google.client_id, google_client_secret=google.client_secret)
    web_app.config.update(GOOGLE_AUTH_URI=google.auth_uri, GOOGLE_TOKEN_URI=google.token_uri,
                          REAGENDA_CONNECTOR_OPTIONS={"google": {"api_endpoint": google.api_endpoint}})
    google.add_calendar("ana@studio.example", "Ana", primary=True, time_zone="Europe/Madrid")
    now = stack.clock.now()
    google.add_event("ana@studio.example", "Sesión", now + timedelta(days=2), now + timedelta(days=2, hours=1),
                     attendees=("marta@example.com",), organizer="ana@studio.example")
    sign_up(web_client, "ana@studio.example")
    assert "Connect Google Calendar" in web_client.get("/calendars").get_data(as_text=True)

    start = web_client.get("/calendars/google/start")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["access_type"] == ["offline"] and query["code_challenge_method"] == ["S256"]
    assert "https://www.googleapis.com/auth/calendar.events" in query["scope"][0].split()
    assert "https://www.googleapis.com/auth/calendar" not in query["scope"][0].split()  # never the full scope
    consent = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    callback = consent.headers["Location"]
    assert parse_qs(urlsplit(callback).query)["state"] == query["state"]

    r = web_client.get(_local(callback))
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    page = web_client.get("/calendars").get_data(as_text=True)
    assert "Calendar connected" in page and "Synced: 1 new" in page
    with stack.session() as s:
        conn = s.scalar(select(CalendarConnection))
        assert conn.provider == "google" and "@" in conn.account  # from the ID token's email
        assert "refresh_token" not in conn.credentials and google.client_secret not in conn.credentials
        assert s.scalar(select(func.count()).select_from(Appointment)) == 1
        conn_id = conn.id

    # Disconnect revokes the grant at Google (RFC 7009), then deletes the stored tokens and the calendars.
    revoked: list[str] = []

    def revoke_endpoint(environ, start_response):  # type: ignore[no-untyped-def]
        from werkzeug.wrappers import Request

        revoked.append(Request(environ).form.get("token", ""))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, revoke_endpoint)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    web_app.config["GOOGLE_REVOKE_URI"] = f"http://127.0.0.1:{server.server_port}/revoke"
    post_form(web_client, "/calendars", f"/calendars/{conn_id}/disconnect")
    thread.join(10)
    server.server_close()
    assert len(revoked) == 1 and revoked[0].startswith("1//rt-")  # the refresh token, not the access token
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(CalendarConnection)) == 0
        assert s.scalar(select(func.count()).select_from(Calendar)) == 0


def test_a_callback_that_did_not_start_here_connects_nothing(web_client, web_app, stack, google, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    _configure(stack, web_app, google_client_id=google.client_id, google_client_secret=google.client_secret)
    web_app.config.update(GOOGLE_AUTH_URI=google.auth_uri, GOOGLE_TOKEN_URI=google.token_uri)
    sign_up(web_client, "ana@studio.example")
    start = web_client.get("/calendars/google/start")
    consent = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    forged = re.sub(r"state=[^&]+", "state=forged", _local(consent.headers["Location"]))
    web_client.get(forged)
    assert "could not be verified" in web_client.get("/calendars").get_data(as_text=True)
    # The state is single-use: the genuine callback after a failed one does not connect either.
    web_client.get(_local(consent.headers["Location"]))
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(CalendarConnection)) == 0


def test_microsoft_oauth_form_post_with_pkce(web_client, web_app, stack, graph):  # type: ignore[no-untyped-def]
    _configure(stack, web_app, microsoft_client_id=graph.client_id, microsoft_client_secret=graph.client_secret)
    options = {"session": graph.session(), "authority": graph.authority, "graph_url": graph.graph_url}
    web_app.config.update(MICROSOFT_AUTHORITY=graph.authority, REAGENDA_CONNECTOR_OPTIONS={"outlook": options})
    graph.add_calendar("cal-1", "Calendar", default=True)
    now = stack.clock.now()
    graph.add_event("cal-1", "Coaching", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                    attendees=("luis@example.com",))
    sign_up(web_client, "ana@studio.example")

    start = web_client.get("/calendars/microsoft/start")
    assert start.status_code == 302 and "code_challenge=" in start.headers["Location"]
    page = graph.session().get(start.headers["Location"], timeout=10).text  # auto-consent: a form_post page
    fields = {m.group(1): unescape(m.group(2)) for m in re.finditer(r'name="(\w+)" value="([^"]*)"', page)}
    assert {"code", "state"} <= set(fields)
    parked = web_client.post("/calendars/microsoft/callback", data=fields)  # no CSRF token: the state is the check
    assert parked.status_code == 303 and "parked=1" in parked.headers["Location"]
    assert fields["code"] not in parked.headers["Location"]
    done = web_client.get(_local(parked.headers["Location"]))
    assert done.status_code == 302
    body = web_client.get("/calendars").get_data(as_text=True)
    assert "Calendar connected" in body, body[:2000]
    with stack.session() as s:
        conn = s.scalar(select(CalendarConnection))
        assert conn.provider == "outlook" and "token_cache" not in conn.credentials
        assert s.scalar(select(func.count()).select_from(Appointment)) == 1
