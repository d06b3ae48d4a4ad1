"""CalDAV specifics beyond the contract: discovery, request economy, error mapping, quirks and the registry."""
from __future__ import annotations

import io
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from connectors import registry
from connectors.base import AuthExpired, ProviderUnavailable, RateLimited
from connectors.caldav import CalDAVConnector, _responses, _parse
from connectors.quirks import quirks_for
from tests.sync_support import ics

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
W = dict(window_start=T0 - timedelta(days=1), window_end=T0 + timedelta(days=90))


def _connector(radicale, url: str | None = None, **extra) -> CalDAVConnector:  # type: ignore[no-untyped-def]
    return CalDAVConnector.from_credentials({"url": url or radicale.url, "username": radicale.username,
                                             "password": radicale.password, **extra})


def _count_requests(monkeypatch, connector: CalDAVConnector) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Record (method, url) of every HTTP request the connector's session makes (a spy on the HTTP library)."""
    session = connector._davclient().session
    seen: list[tuple[str, str]] = []
    real = session.request

    def spy(method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((method, url))
        return real(method, url, *args, **kwargs)

    monkeypatch.setattr(session, "request", spy)
    return seen


def test_discovery_from_the_base_url_and_from_a_wrong_path(radicale):
    cal_url = radicale.make_calendar(f"disc-{uuid.uuid4().hex[:8]}", display_name="Consulta")
    found = _connector(radicale).list_calendars()
    assert cal_url in {c.external_id for c in found}
    assert "Consulta" in {c.name for c in found}
    # A Nextcloud-style URL on a server that is not Nextcloud: discovery falls back to /.well-known/caldav.
    conn = _connector(radicale, url=radicale.url + "remote.php/dav/")
    assert cal_url in {c.external_id for c in conn.list_calendars()}
    assert conn.credentials["dav_url"]  # remembered, so the next discovery starts there


def test_wrong_password_on_discovery_is_auth_expired_without_the_password(radicale):
    with pytest.raises(AuthExpired) as err:
        CalDAVConnector({"url": radicale.url, "username": radicale.username, "password": "wrong-pass"}).list_calendars()
    assert "wrong-pass" not in str(err.value) and "app password" in str(err.value)


def test_changed_objects_come_in_one_multiget_never_one_get_each(radicale, monkeypatch):
    cal_url = radicale.make_calendar(f"mg-{uuid.uuid4().hex[:8]}")
    for i in range(12):
        radicale.put(cal_url, f"e{i}.ics", ics(f"e{i}", T0 + timedelta(days=i), T0 + timedelta(days=i, hours=1)))
    conn = _connector(radicale)
    seen = _count_requests(monkeypatch, conn)
    full = conn.changes(cal_url, None, **W)
    assert len({o.uid for o in full.upserted}) == 12
    assert [m for m, _ in seen] == ["PROPFIND", "REPORT"]  # the sync-token, then one calendar-query for all
    seen.clear()
    quiet = conn.changes(cal_url, full.cursor, **W)
    assert quiet.upserted == [] and [m for m, _ in seen] == ["REPORT"]  # no-change sync: one request
    for i in range(3):
        radicale.put(cal_url, f"e{i}.ics", ics(f"e{i}", T0 + timedelta(days=i, hours=2), T0 + timedelta(days=i, hours=3)))
    seen.clear()
    assert len(conn.changes(cal_url, quiet.cursor, **W).upserted) == 3
    assert [m for m, _ in seen] == ["REPORT", "REPORT"] and all("GET" != m for m, _ in seen)


def test_without_the_full_sync_query_a_first_sync_is_sync_collection_then_one_multiget(radicale, monkeypatch):
    cal_url = radicale.make_calendar(f"sc-{uuid.uuid4().hex[:8]}")
    for i in range(5):
        radicale.put(cal_url, f"e{i}.ics", ics(f"e{i}", T0 + timedelta(days=i), T0 + timedelta(days=i, hours=1)))
    by_query = _connector(radicale).changes(cal_url, None, **W)
    conn = _connector(radicale, quirks={"full_sync_query": False})
    seen = _count_requests(monkeypatch, conn)
    listed = conn.changes(cal_url, None, **W)
    assert [m for m, _ in seen] == ["REPORT", "REPORT"]  # sync-collection, then one calendar-multiget
    assert sorted(listed.upserted, key=lambda o: o.uid) == sorted(by_query.upserted, key=lambda o: o.uid)
    assert listed.full and by_query.full
    # Both tokens are good for the next incremental sync, which sees a change made after either.
    radicale.put(cal_url, "e1.ics", ics("e1", T0 + timedelta(days=1, hours=3), T0 + timedelta(days=1, hours=4)))
    for cursor in (by_query.cursor, listed.cursor):
        moved = conn.changes(cal_url, cursor, **W)
        assert [o.starts_at for o in moved.upserted] == [T0 + timedelta(days=1, hours=3)] and not moved.full


def test_etag_fallback_uses_one_propfind_and_logs_once(radicale, monkeypatch, caplog):
    cal_url = radicale.make_calendar(f"fb-{uuid.uuid4().hex[:8]}")
    radicale.put(cal_url, "a.ics", ics("a", T0, T0 + timedelta(hours=1)))
    conn = _connector(radicale, quirks={"sync_collection": False})
    seen = _count_requests(monkeypatch, conn)
    first = conn.changes(cal_url, None, **W)
    assert [m for m, _ in seen] == ["PROPFIND", "REPORT"] and first.full
    seen.clear()
    assert conn.changes(cal_url, first.cursor, **W).upserted == [] and [m for m, _ in seen] == ["PROPFIND"]


class _Answer(BaseHTTPRequestHandler):
    status = 503
    headers_out: dict[str, str] = {"Retry-After": "120"}

    def _reply(self) -> None:
        self.send_response(self.status)
        for k, v in self.headers_out.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_REPORT = do_PROPFIND = do_GET = do_PUT = do_DELETE = _reply

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def answering() -> Iterator[type[_Answer]]:
    handler = type("Handler", (_Answer,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/cal/"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status, headers, error", [
    (503, {"Retry-After": "120"}, RateLimited), (429, {"Retry-After": "7"}, RateLimited),
    (500, {}, ProviderUnavailable), (502, {}, ProviderUnavailable), (401, {}, AuthExpired),
])
def test_server_faults_map_to_the_protocol_errors(answering, status, headers, error):
    answering.status, answering.headers_out = status, headers
    conn = CalDAVConnector({"url": answering.url, "username": "ana", "password": "pw"})
    with pytest.raises(error) as err:
        conn.changes(answering.url, None, **W)
    if error is RateLimited:
        assert err.value.retry_after_s == float(headers["Retry-After"])
    assert "pw" not in str(err.value).replace("password", "")


def test_404_members_of_a_sync_report_are_deletions_not_events():
    body = b"""<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">
      <d:response><d:href>/ana/cal/gone.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>
      <d:response><d:href>/ana/cal/here.ics</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop>
        <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
      <d:sync-token>tok-2</d:sync-token></d:multistatus>"""
    assert [(h, s) for h, s, _ in _responses(_parse(body, "http://x/ana/cal/"))] == [
        ("/ana/cal/gone.ics", 404), ("/ana/cal/here.ics", 200)]


def test_quirks_are_data_guessed_from_the_url_and_overridable():
    assert quirks_for("https://cloud.example.com/remote.php/dav/").name == "nextcloud"
    assert quirks_for("https://caldav.icloud.com/").multiget_batch == 500
    assert quirks_for("https://caldav.fastmail.com/dav/").name == "fastmail"
    assert quirks_for("https://radicale.example.org/").name == "generic"
    assert quirks_for("https://x.org/", {"sync_collection": False, "nonsense": 1}).sync_collection is False


def test_registry_knows_caldav_and_explains_unknown_keys():
    assert registry.get("caldav") is CalDAVConnector and "caldav" in registry.enabled()
    with pytest.raises(KeyError, match="available providers: .*caldav"):
        registry.get("exchange2003")


class _Partial(BaseHTTPRequestHandler):
    """Lists two events in its sync-collection answer but returns only one of them from the multiget."""

    def do_REPORT(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = ('<d:propstat><d:prop><d:getetag>"1"</d:getetag>{data}</d:prop>'
              "<d:status>HTTP/1.1 200 OK</d:status></d:propstat>")
        if b"sync-collection" in body:
            items = "".join(f"<d:response><d:href>/cal/{n}.ics</d:href>{ok.format(data='')}</d:response>"
                            for n in ("a", "b"))
            xml = f'<d:multistatus xmlns:d="DAV:">{items}<d:sync-token>t1</d:sync-token></d:multistatus>'
        else:
            data = ics("a", T0, T0 + timedelta(hours=1)).replace("\r\n", "&#13;\n")
            xml = ('<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:response>'
                   f"<d:href>/cal/a.ics</d:href>{ok.format(data=f'<c:calendar-data>{data}</c:calendar-data>')}"
                   "</d:response></d:multistatus>")
        payload = xml.encode()
        self.send_response(207)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def test_a_partial_multiget_fails_the_fetch_instead_of_deleting_what_is_missing():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Partial)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cal/"
        with pytest.raises(ProviderUnavailable, match="left 1 of 2"):
            CalDAVConnector({"url": url, "username": "ana", "password": "pw"}).changes(url, None, **W)
    finally:
        server.shutdown()
        server.server_close()


class _Truncated(BaseHTTPRequestHandler):
    """RFC 6578 §3.6: the first page ends with a 507 on the collection itself; the second page completes it."""

    pages: list[str] = []

    def do_REPORT(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        ok = ('<d:propstat><d:prop><d:getetag>"1"</d:getetag>{data}</d:prop>'
              "<d:status>HTTP/1.1 200 OK</d:status></d:propstat>")
        if "sync-collection" in body:
            self.pages.append(body.split("<d:sync-token>")[1].split("</d:sync-token>")[0])
            if len(self.pages) == 1:
                items = (f"<d:response><d:href>/cal/a.ics</d:href>{ok.format(data='')}</d:response>"
                         "<d:response><d:href>/cal/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status>"
                         "</d:response>")
                token = "page1"
            else:
                items = f"<d:response><d:href>/cal/b.ics</d:href>{ok.format(data='')}</d:response>"
                token = "page2"
            xml = f'<d:multistatus xmlns:d="DAV:">{items}<d:sync-token>{token}</d:sync-token></d:multistatus>'
        else:
            parts = []
            for n in ("a", "b"):
                data = ics(n, T0, T0 + timedelta(hours=1)).replace("\r\n", "&#13;\n")
                parts.append(f"<d:response><d:href>/cal/{n}.ics</d:href>"
                             f"{ok.format(data=f'<c:calendar-data>{data}</c:calendar-data>')}</d:response>")
            xml = ('<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
                   f"{''.join(parts)}</d:multistatus>")
        payload = xml.encode()
        self.send_response(207)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def _first_sync_against(handler: type[BaseHTTPRequestHandler]):  # type: ignore[no-untyped-def]
    """A first sync against a scripted fake server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cal/"
        return CalDAVConnector({"url": url, "username": "ana", "password": "pw"}).changes(url, None, **W)
    finally:
        server.shutdown()
        server.server_close()


def test_a_truncated_sync_collection_is_followed_to_its_last_page():
    handler = type("Handler", (_Truncated,), {"pages": []})
    got = _first_sync_against(handler)
    assert handler.pages == ["", "page1"]
    assert sorted({o.uid for o in got.upserted}) == ["a.ics", "b.ics"]
    assert '"t":"page2"' in got.cursor and got.full


class _QueryRefused(_Truncated):
    """Offers a DAV:sync-token but refuses calendar-query (as a server capping such answers would)."""

    queries = 0

    def do_PROPFIND(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = (b'<d:multistatus xmlns:d="DAV:"><d:response><d:href>/cal/</d:href><d:propstat><d:prop>'
                   b"<d:sync-token>t0</d:sync-token></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
                   b"</d:response></d:multistatus>")
        self.send_response(207)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_REPORT(self) -> None:  # noqa: N802
        if self._peek_query():
            type(self).queries += 1
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_REPORT()

    def _peek_query(self) -> bool:
        """Read the body once and keep it for the parent's handler."""
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.rfile = io.BytesIO(raw)
        return b"calendar-query" in raw


def test_a_refused_full_sync_query_falls_back_to_sync_collection_and_multiget():
    handler = type("Handler", (_QueryRefused,), {"pages": [], "queries": 0})
    got = _first_sync_against(handler)
    assert handler.queries == 1 and handler.pages == ["", "page1"]
    assert sorted({o.uid for o in got.upserted}) == ["a.ics", "b.ics"] and '"t":"page2"' in got.cursor
