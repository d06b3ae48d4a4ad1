"""CalDAV (Nextcloud, Fastmail, iCloud, Radicale, any RFC 4791 server) as a ``CalendarConnector``.

Discovery and calendar listing go through the ``caldav`` library (principal → calendar-home-set → calendars).
The sync hot path speaks the three requests it needs directly over the same authenticated HTTP session, because
the library's helpers fetch changed objects one GET at a time:

- RFC 6578 ``sync-collection`` REPORT with the stored token → changed hrefs + etags, deleted hrefs (404);
- where a server has no sync-collection: one ``PROPFIND Depth: 1`` for every etag, compared with the etags kept
  in the cursor (logged once per calendar and process);
- one ``calendar-multiget`` REPORT for all changed hrefs (batched only past ``quirks.multiget_batch``);
- a full sync (no cursor) instead asks the collection's DAV:sync-token with a ``PROPFIND Depth: 0`` and takes every
  object from one ``calendar-query`` REPORT (``quirks.full_sync_query``), falling back to the two above.

An event's id (``EventOccurrence.uid``) is its resource name in the collection (``abc.ics``), like Google's event
id: a deletion arrives as an href, and update/delete address the resource. Cursors are compact JSON owned by this
module: ``{"m": "sync", "t": token}`` or ``{"m": "etag", "e": {name: etag}}``.

Errors map to ``connectors.base``: 401 → AuthExpired; 403/412 DAV:valid-sync-token → CursorInvalid; 429/503 →
RateLimited; 5xx, timeouts, refused connections → ProviderUnavailable. Passwords never reach a log or a message.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, ClassVar, Iterable, Iterator
from urllib.parse import quote, unquote, urljoin, urlsplit

import icalendar
from lxml import etree

from connectors.base import (AuthExpired, BusyInterval, CalendarInfo, Changes, ConnectorError, CursorInvalid,
                             EventDraft, EventOccurrence, ProviderUnavailable, RateLimited, Watch)
from connectors.ical import clearly_outside, expand, to_utc, zone
from connectors.quirks import ServerQuirks, quirks_for
from connectors.registry import register

log = logging.getLogger(__name__)

DAV = "DAV:"
CAL = "urn:ietf:params:xml:ns:caldav"
_NS = {"d": DAV, "c": CAL}
_XML = {"Content-Type": "application/xml; charset=utf-8"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
_SYNC_UNSUPPORTED = {400, 405, 501}
_MAX_SYNC_PAGES = 200

# Calendars whose server lacks sync-collection, already reported in this process ("say so in the log once").
_fallback_logged: set[str] = set()


class _SyncUnsupported(Exception):
    pass


class CalDAVConnector:
    """One CalDAV account. ``credentials``: ``url``, ``username``, ``password`` (an app password), and optionally
    ``timezone`` (for floating times), ``server`` (a quirks name), ``quirks`` (overrides), ``auth_type``."""

    key: ClassVar[str] = "caldav"

    def __init__(self, credentials: dict[str, Any], *, settings: Any = None) -> None:
        missing = [k for k in ("url", "username", "password") if not credentials.get(k)]
        if missing:
            raise ConnectorError(f"CalDAV connection is missing {', '.join(missing)}; reconnect the calendar "
                                 "with the server URL, your user name and an app password")
        self._credentials = dict(credentials)
        self.quirks: ServerQuirks = quirks_for(credentials["url"], credentials.get("quirks"),
                                               credentials.get("server"))
        self.default_tz = credentials.get("timezone") or None
        self._client: Any = None

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any], *, settings: Any = None,
                         **options: Any) -> "CalDAVConnector":
        """The registry's constructor. ``options`` may override quirks (``quirks={...}``) for one connection."""
        if options.get("quirks"):
            credentials = {**credentials, "quirks": {**credentials.get("quirks", {}), **options["quirks"]}}
        return cls(credentials, settings=settings)

    # ------------------------------------------------------------------------------------------------ plumbing

    @property
    def credentials(self) -> dict[str, Any]:
        return dict(self._credentials)

    def _davclient(self, url: str | None = None) -> Any:
        from caldav import DAVClient

        if self._client is None or url is not None:
            client = DAVClient(url=url or self._credentials.get("dav_url") or self._credentials["url"],
                               username=self._credentials["username"], password=self._credentials["password"],
                               auth_type=self._credentials.get("auth_type", "basic"),
                               timeout=int(self.quirks.timeout_s), enable_rfc6764=False, require_tls=False)
            if url is not None:
                return client
            self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _send(self, method: str, url: str, body: bytes | str = b"", headers: dict[str, str] | None = None,
              ok: Iterable[int] = (200, 207)) -> Any:
        """One HTTP request on the authenticated session; failures mapped to ``connectors.base`` errors."""
        from caldav.lib.http_sync import requests as http

        client = self._davclient()
        try:
            response = client.session.request(method, url, data=body if body else None, headers=headers or {},
                                              auth=client.auth, timeout=self.quirks.timeout_s,
                                              verify=client.ssl_verify_cert)
        except http.exceptions.Timeout as exc:
            raise ProviderUnavailable(f"CalDAV server {_host(url)} timed out on {method}: {exc}") from None
        except http.exceptions.RequestException as exc:
            raise ProviderUnavailable(f"CalDAV server {_host(url)} unreachable on {method}: "
                                      f"{type(exc).__name__}") from None
        status = response.status_code
        if status in ok:
            return response
        if status == 401:
            raise AuthExpired(f"CalDAV server {_host(url)} refused the password for "
                              f"{self._credentials['username']!r}; reconnect with a new app password. "
                              f"{self.quirks.app_password_hint}")
        if status in self.quirks.sync_token_error_status and b"valid-sync-token" in (response.content or b""):
            raise CursorInvalid(f"CalDAV server {_host(url)} no longer knows the sync token for {_path(url)}")
        if status in (429, 503):
            raise RateLimited(f"CalDAV server {_host(url)} asks to slow down ({status})",
                              _retry_after(response.headers.get("Retry-After")))
        if status >= 500 and status != 501:  # 501 Not Implemented is an answer (no such method), not an outage
            raise ProviderUnavailable(f"CalDAV server {_host(url)} failed {method} {_path(url)} with {status}")
        raise _HTTPStatus(status, f"CalDAV server {_host(url)} answered {status} to {method} {_path(url)}")

    # ------------------------------------------------------------------------------------------------ discovery

    def list_calendars(self) -> list[CalendarInfo]:
        """Find the calendars from the base URL: the URL itself, /.well-known/caldav, then known DAV paths."""
        from caldav.lib import error

        tried: list[str] = []
        for candidate in self._discovery_urls():
            client = self._davclient(candidate)
            try:
                calendars = client.principal().calendars()
            except error.AuthorizationError as exc:
                client.close()
                if exc.status == 401:
                    raise AuthExpired(f"CalDAV server {_host(candidate)} refused the password for "
                                      f"{self._credentials['username']!r}; check the user name and create a new "
                                      f"app password. {self.quirks.app_password_hint}") from None
                tried.append(f"{candidate} (403)")
                continue
            except Exception as exc:  # noqa: BLE001 - any failure means "try the next candidate"
                client.close()
                tried.append(f"{candidate} ({type(exc).__name__})")
                continue
            infos = [CalendarInfo(external_id=str(c.url), name=_display_name(c) or _path(str(c.url)),
                                  primary=i == 0) for i, c in enumerate(calendars)]
            client.close()
            self._credentials["dav_url"] = candidate
            return infos
        raise ConnectorError(f"no CalDAV calendars found for {self._credentials['username']!r}; tried "
                             f"{', '.join(tried)}. Check the server URL (for Nextcloud: https://host/remote.php/dav/, "
                             "Fastmail: https://caldav.fastmail.com/dav/, iCloud: https://caldav.icloud.com/)")

    def _discovery_urls(self) -> list[str]:
        base = self._credentials["url"]
        if not base.endswith("/"):
            base += "/"
        root = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}/"
        urls = [self._credentials.get("dav_url") or "", base, urljoin(root, ".well-known/caldav")]
        urls += [urljoin(base, p) for p in self.quirks.dav_paths]
        urls += [urljoin(root, p) for p in self.quirks.dav_paths]
        seen: list[str] = []
        for url in urls:
            if url and url not in seen:
                seen.append(url)
        return seen

    # ------------------------------------------------------------------------------------------------ sync

    def changes(self, calendar_id: str, cursor: str | None, *, window_start: datetime,
                window_end: datetime) -> Changes:
        url = _collection(calendar_id)
        state = _read_cursor(cursor)
        if state is not None and state.get("m") == "etag":
            return self._changes_by_etag(url, state, window_start, window_end)
        if not self.quirks.sync_collection:
            return self._changes_by_etag(url, None, window_start, window_end)
        token = state.get("t") if state else None
        if token is None and self.quirks.full_sync_query:
            full = self._full_by_query(url, window_start, window_end)
            if full is not None:
                return full
        try:
            token, changed, deleted = self._sync_collection(url, token)
        except _SyncUnsupported as exc:
            if url not in _fallback_logged:
                _fallback_logged.add(url)
                log.warning("CalDAV calendar %s has no sync-collection (%s); comparing etags instead", _path(url), exc)
            return self._changes_by_etag(url, None, window_start, window_end)
        out = self._fetch(url, changed, window_start, window_end)
        out.deleted_uids.extend(deleted)
        out.cursor = _write_cursor({"m": "sync", "t": token})
        out.full = state is None
        return out

    def _full_by_query(self, url: str, start: datetime, end: datetime) -> Changes | None:
        """A full sync in two requests instead of a sync-collection listing plus a multiget of every object: the
        collection's DAV:sync-token (RFC 6578 §4; asked first, so whatever changes meanwhile comes again in the
        next sync-collection), then one calendar-query answering every object with its data. About half the
        server time on Radicale. No time-range filter: an object the server cannot interpret must still reach
        us, to be reported as skipped rather than taken for deleted.

        None when the server offers no token or refuses the query; the caller then does the RFC 6578 initial
        sync (sync-collection with an empty token, then calendar-multiget)."""
        body = ('<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/>'
                "</d:prop></d:propfind>")
        try:
            root = _parse(self._send("PROPFIND", url, body, {**_XML, "Depth": "0"}).content, url)
        except _HTTPStatus:
            return None
        token = _prop_text(root, "d:sync-token")
        if not token:
            return None
        body = ('<?xml version="1.0" encoding="utf-8"?><c:calendar-query xmlns:d="DAV:" '
                f'xmlns:c="{CAL}"><d:prop><d:getetag/><c:calendar-data/></d:prop>'
                '<c:filter><c:comp-filter name="VCALENDAR"/></c:filter></c:calendar-query>')
        try:
            response = self._send("REPORT", url, body, {**_XML, "Depth": "1"})
        except _HTTPStatus as exc:
            log.info("CalDAV server %s refused a calendar-query (%s); doing a sync-collection", _host(url), exc.status)
            return None
        out = Changes()
        for href, status, props in _responses(_parse(response.content, url)):
            name = _name(href, url)
            if name is None:
                if status == 507:  # the server cut the answer short: take the long way
                    return None
                continue
            if status == 200 and props.get("calendar-data") is None:
                continue  # a member that is not calendar data (the query matched no VCALENDAR in it)
            self._absorb(out, url, name, status, props.get("getetag", ""), props.get("calendar-data"), start, end)
        out.cursor = _write_cursor({"m": "sync", "t": token})
        out.full = True
        return out

    def _sync_collection(self, url: str, token: str | None) -> tuple[str, dict[str, str], list[str]]:
        """Follow a (possibly truncated, RFC 6578 §3.6) sync-collection to its end."""
        changed: dict[str, str] = {}
        deleted: list[str] = []
        first = token is None
        for _ in range(_MAX_SYNC_PAGES):
            body = (
                '<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:">'
                f"<d:sync-token>{_escape(token or '')}</d:sync-token><d:sync-level>1</d:sync-level>"
                "<d:prop><d:getetag/></d:prop></d:sync-collection>"
            )
            try:
                response = self._send("REPORT", url, body, _XML)
            except _HTTPStatus as exc:
                if exc.status in _SYNC_UNSUPPORTED or exc.status == 403:
                    raise _SyncUnsupported(f"REPORT sync-collection answered {exc.status}") from None
                raise
            root = _parse(response.content, url)
            truncated = False
            for href, status, props in _responses(root):
                name = _name(href, url)
                if name is None:
                    if status == 507:
                        truncated = True
                    continue
                if status in (404, 410):
                    # On a first sync these are tombstones of long-gone objects: deletions, never events.
                    changed.pop(name, None)
                    deleted.append(name)
                elif status == 200:
                    changed[name] = props.get("getetag", "")
            new = root.findtext("d:sync-token", namespaces=_NS)
            if not new:
                raise _SyncUnsupported("the server's answer has no sync-token")
            token = new
            if not truncated:
                break
        if first:
            deleted = []
        return token, changed, deleted

    def _changes_by_etag(self, url: str, state: dict[str, Any] | None, start: datetime, end: datetime) -> Changes:
        etags = self._etags(url)
        old: dict[str, str] | None = state.get("e") if state else None
        if old is None:
            changed, deleted = etags, []
        else:
            changed = {n: e for n, e in etags.items() if old.get(n) != e}
            deleted = [n for n in old if n not in etags]
        out = self._fetch(url, changed, start, end)
        out.deleted_uids.extend(deleted)
        fetched_gone = set(out.deleted_uids)
        out.cursor = _write_cursor({"m": "etag", "e": {n: e for n, e in etags.items() if n not in fetched_gone}})
        out.full = old is None
        return out

    def _etags(self, url: str) -> dict[str, str]:
        body = ('<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop>'
                "<d:getetag/><d:resourcetype/></d:prop></d:propfind>")
        response = self._send("PROPFIND", url, body, {**_XML, "Depth": "1"})
        out: dict[str, str] = {}
        for href, status, props in _responses(_parse(response.content, url)):
            name = _name(href, url)
            if name is not None and status == 200 and not props.get("collection"):
                out[name] = props.get("getetag", "")
        return out

    def _fetch(self, url: str, changed: dict[str, str], start: datetime, end: datetime) -> Changes:
        """calendar-multiget the changed objects (one REPORT per ``multiget_batch``) and expand them."""
        out = Changes()
        names = list(changed)
        batch = max(1, self.quirks.multiget_batch)
        for i in range(0, len(names), batch):
            for name, status, etag, data in self._multiget(url, names[i:i + batch]):
                self._absorb(out, url, name, status, etag, data, start, end)
        return out

    def _absorb(self, out: Changes, url: str, name: str, status: int, etag: str, data: str | None,
                start: datetime, end: datetime) -> None:
        """One fetched object into ``out``: its occurrences in the window, or a deletion, or a skip."""
        if status in (404, 410) or (status == 200 and data is None):
            out.deleted_uids.append(name)
            return
        if status != 200:
            out.skipped.append(f"{_path(url)}{name}: server answered {status}")
            out.skipped_uids.append(name)
            return
        assert data is not None
        if clearly_outside(data, start, end):
            out.complete_uids.append(name)  # e.g. last year's event: nothing of it inside the window
            return
        got = expand(data, window_start=start, window_end=end, default_tz=self.default_tz, etag=etag,
                     source=f"{_path(url)}{name}")
        out.upserted.extend(replace(o, uid=name) for o in got.occurrences)
        if got.skipped:
            out.skipped.extend(got.skipped)
            out.skipped_uids.append(name)
        else:
            out.complete_uids.append(name)  # a VTODO too: no events, nothing of it to keep locally

    def _multiget(self, url: str, names: list[str]) -> Iterator[tuple[str, int, str, str | None]]:
        if not names:
            return
        base_path = urlsplit(url).path
        hrefs = "".join(f"<d:href>{_escape(base_path + quote(n))}</d:href>" for n in names)
        body = ('<?xml version="1.0" encoding="utf-8"?><c:calendar-multiget xmlns:d="DAV:" '
                f'xmlns:c="{CAL}"><d:prop><d:getetag/><c:calendar-data/></d:prop>{hrefs}</c:calendar-multiget>')
        response = self._send("REPORT", url, body, {**_XML, "Depth": "1"})
        seen: set[str] = set()
        for href, status, props in _responses(_parse(response.content, url)):
            name = _name(href, url)
            if name is None:
                continue
            seen.add(name)
            yield name, status, props.get("getetag", ""), props.get("calendar-data")
        missing = [name for name in names if name not in seen]
        if missing:
            # A partial answer is not a deletion: fail the whole fetch so the cursor stays and nothing is lost.
            raise ProviderUnavailable(f"CalDAV server {_host(url)} left {len(missing)} of {len(names)} requested "
                                      f"events out of its calendar-multiget answer for {_path(url)}")

    # ------------------------------------------------------------------------------------------------ free/busy

    def busy(self, calendar_ids: list[str], start: datetime, end: datetime) -> list[BusyInterval]:
        """Busy time from a time-range calendar-query, expanded locally (free-busy-query support varies)."""
        intervals: list[BusyInterval] = []
        for calendar_id in calendar_ids:
            url = _collection(calendar_id)
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                f'<c:calendar-query xmlns:d="DAV:" xmlns:c="{CAL}"><d:prop><d:getetag/><c:calendar-data/></d:prop>'
                '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
                f'<c:time-range start="{_ical_utc(start)}" end="{_ical_utc(end)}"/>'
                "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
            )
            response = self._send("REPORT", url, body, {**_XML, "Depth": "1"})
            for href, status, props in _responses(_parse(response.content, url)):
                data = props.get("calendar-data")
                if status != 200 or not data:
                    continue
                for o in expand(data, window_start=start, window_end=end, default_tz=self.default_tz,
                                source=href).occurrences:
                    if o.status != "cancelled" and not o.all_day and o.ends_at > start and o.starts_at < end:
                        intervals.append(BusyInterval(max(o.starts_at, start), min(o.ends_at, end)))
        return merge_intervals(intervals)

    # ------------------------------------------------------------------------------------------------ write-back

    def create_event(self, calendar_id: str, draft: EventDraft) -> EventOccurrence:
        url = _collection(calendar_id)
        uid = f"{uuid.uuid4()}@reagenda"
        name = f"{uuid.uuid4().hex}.ics"
        response = self._send("PUT", url + quote(name), _draft_ics(uid, draft),
                              {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
                              ok=(200, 201, 204))
        return _draft_occurrence(name, draft, response.headers.get("ETag", ""))

    def update_event(self, calendar_id: str, uid: str, draft: EventDraft) -> EventOccurrence:
        """Rewrite the event's times, title and text, keeping its iCalendar UID (and so its invitations)."""
        url = _collection(calendar_id)
        current = next(iter(self._multiget(url, [uid])), None)
        if current is None or current[1] != 200 or not current[3]:
            raise ConnectorError(f"event {uid} is no longer in calendar {_path(url)}; it cannot be updated")
        ical_uid = _ical_uid(current[3]) or f"{uuid.uuid4()}@reagenda"
        response = self._send("PUT", url + quote(uid), _draft_ics(ical_uid, draft),
                              {"Content-Type": "text/calendar; charset=utf-8", "If-Match": current[2]} if current[2]
                              else {"Content-Type": "text/calendar; charset=utf-8"}, ok=(200, 201, 204))
        return _draft_occurrence(uid, draft, response.headers.get("ETag", ""))

    def delete_event(self, calendar_id: str, uid: str) -> None:
        self._send("DELETE", _collection(calendar_id) + quote(uid), ok=(200, 204, 404, 410))

    def watch(self, calendar_id: str, callback_url: str) -> Watch | None:
        return None  # CalDAV has no standard push; the periodic sync is cheap thanks to sync tokens

    def unwatch(self, watch: Watch) -> None:
        return None


class _HTTPStatus(ConnectorError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------------- helpers


def merge_intervals(intervals: list[BusyInterval]) -> list[BusyInterval]:
    """Sorted, non-overlapping busy intervals (touching ones are joined)."""
    merged: list[BusyInterval] = []
    for iv in sorted(intervals, key=lambda i: (i.starts_at, i.ends_at)):
        if merged and iv.starts_at <= merged[-1].ends_at:
            if iv.ends_at > merged[-1].ends_at:
                merged[-1] = BusyInterval(merged[-1].starts_at, iv.ends_at)
        else:
            merged.append(iv)
    return merged


def _responses(root: Any) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(href, status, props) for each DAV:response; props holds getetag, calendar-data and collection."""
    for resp in root.iterfind("d:response", _NS):
        href = resp.findtext("d:href", default="", namespaces=_NS)
        direct = resp.findtext("d:status", namespaces=_NS)
        props: dict[str, Any] = {}
        status = _status(direct) if direct else 0
        for propstat in resp.iterfind("d:propstat", _NS):
            code = _status(propstat.findtext("d:status", default="", namespaces=_NS))
            if code != 200:
                continue
            status = 200
            prop = propstat.find("d:prop", _NS)
            if prop is None:
                continue
            etag = prop.findtext("d:getetag", namespaces=_NS)
            if etag is not None:
                props["getetag"] = etag
            data = prop.find("c:calendar-data", _NS)
            if data is not None and data.text:
                props["calendar-data"] = data.text
            rtype = prop.find("d:resourcetype", _NS)
            if rtype is not None and rtype.find("d:collection", _NS) is not None:
                props["collection"] = True
        if not status:
            status = 404
        yield href, status, props


def _prop_text(root: Any, prop: str) -> str:
    """The text of a property in a successful propstat of a PROPFIND answer ('' when absent or failed)."""
    for propstat in root.iterfind("d:response/d:propstat", _NS):
        if _status(propstat.findtext("d:status", default="", namespaces=_NS)) == 200:
            text = propstat.findtext(f"d:prop/{prop}", namespaces=_NS)
            if text and text.strip():
                return text.strip()
    return ""


def _status(line: str | None) -> int:
    try:
        return int((line or "").split()[1])
    except (IndexError, ValueError):
        return 0


def _parse(content: bytes, url: str) -> Any:
    try:
        return etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ProviderUnavailable(f"CalDAV server {_host(url)} sent unreadable XML for {_path(url)}: {exc}") from None


def _name(href: str, collection_url: str) -> str | None:
    """The member name of an href inside the collection, or None for the collection itself."""
    path = unquote(urlsplit(href).path)
    base = unquote(urlsplit(collection_url).path)
    if path.rstrip("/") == base.rstrip("/"):
        return None
    return path.rstrip("/").rsplit("/", 1)[-1]


def _collection(calendar_id: str) -> str:
    return calendar_id if calendar_id.endswith("/") else calendar_id + "/"


def _read_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        state = json.loads(cursor)
    except ValueError:
        raise CursorInvalid("the stored CalDAV cursor is unreadable") from None
    if not isinstance(state, dict) or state.get("m") not in ("sync", "etag"):
        raise CursorInvalid("the stored CalDAV cursor has an unknown format")
    return state


def _write_cursor(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def _retry_after(value: str | None) -> float | None:
    from caldav.lib.error import parse_retry_after

    return parse_retry_after(value) if value else None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _host(url: str) -> str:
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _display_name(calendar: Any) -> str:
    try:
        return str(calendar.get_display_name() or "")
    except Exception:  # noqa: BLE001 - a name is nice to have, never worth failing discovery
        return ""


def _ical_utc(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _ical_uid(data: str) -> str:
    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception:  # noqa: BLE001
        return ""
    for event in cal.walk("VEVENT"):
        if event.get("UID"):
            return str(event["UID"])
    return ""


def _draft_ics(uid: str, draft: EventDraft) -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Reagenda//reagenda//EN")
    cal.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime.now(timezone.utc))
    event.add("dtstart", draft.starts_at.astimezone(timezone.utc))
    event.add("dtend", draft.ends_at.astimezone(timezone.utc))
    event.add("summary", draft.title)
    if draft.description or draft.meeting_link:
        event.add("description", "\n\n".join(t for t in (draft.description, draft.meeting_link) if t))
    if draft.location or draft.meeting_link:
        event.add("location", draft.location or draft.meeting_link)
    for attendee in draft.attendees:
        address = icalendar.vCalAddress(f"mailto:{attendee.email}")
        if attendee.name:
            address.params["CN"] = attendee.name
        address.params["PARTSTAT"] = attendee.status.upper()
        event.add("attendee", address, encode=False)
    cal.add_component(event)
    return cal.to_ical()


def _draft_occurrence(name: str, draft: EventDraft, etag: str) -> EventOccurrence:
    return EventOccurrence(uid=name, recurrence_id="", starts_at=to_utc(draft.starts_at, zone(draft.timezone)),
                           ends_at=to_utc(draft.ends_at, zone(draft.timezone)), title=draft.title,
                           description=draft.description, location=draft.location, meeting_link=draft.meeting_link,
                           attendees=draft.attendees, etag=etag)


register(CalDAVConnector)
