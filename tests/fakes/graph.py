"""A fake Microsoft Graph v1.0 + Microsoft identity platform (v2.0 endpoints), over HTTPS, for msal and requests.

Wire format follows learn.microsoft.com/graph (event-delta, delta-query-events, calendar-getschedule is not used:
busy time comes from calendarView, subscription-post-subscriptions, change-notifications-delivery-webhooks,
throttling) and the identity platform's auth-code flow:

- ``GET  /{tenant}/v2.0/.well-known/openid-configuration`` (what msal's authority discovery reads),
  ``GET  /{tenant}/oauth2/v2.0/authorize`` (auto-consents; PKCE S256 checked at the token endpoint),
  ``POST /{tenant}/oauth2/v2.0/token`` (authorization_code, refresh_token; ``invalid_grant`` once revoked).
- ``GET  /v1.0/me``, ``GET /v1.0/me/calendars``
- ``GET  /v1.0/me/calendars/{id}/calendarView/delta?startDateTime&endDateTime`` (and ``/me/calendarView/delta``
  for the default calendar): pages of ``Prefer: odata.maxpagesize``, ``@odata.nextLink`` ($skiptoken) then
  ``@odata.deltaLink`` ($deltatoken) on the last page; later rounds return changes, deletions as
  ``{"id": ..., "@removed": {"reason": "deleted"}}``; an invalidated token answers 410 ``syncStateNotFound``.
- ``GET  /v1.0/me/calendars/{id}/calendarView`` (busy time), ``POST /v1.0/me/calendars/{id}/events``
  (``isOnlineMeeting`` → ``onlineMeeting.joinUrl`` on teams.microsoft.com), ``PATCH``/``DELETE``
  ``/v1.0/me/events/{id}`` (404 ``ErrorItemNotFound`` once gone).
- ``POST /v1.0/subscriptions`` (validates ``notificationUrl`` with the ``validationToken`` handshake when
  ``validate_notification_urls`` is on), ``PATCH``/``DELETE /v1.0/subscriptions/{id}``.
- Throttling: more than ``mailbox_concurrency`` requests in flight for one mailbox answer 429 with Retry-After, as
  Outlook's "4 concurrent requests per app per mailbox" limit does; ``fail_next`` injects any error.

Start it with ``with FakeGraph() as g:``; clients pass ``verify=g.cert_path`` (self-signed certificate).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import html
import re
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import requests
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from werkzeug.wrappers import Request, Response

from tests.fakes.serving import ThreadedServer

V1 = "/v1.0"


def graph_time(value: datetime, zone: str = "UTC") -> dict[str, str]:
    iana = WINDOWS_TO_OLSON.get(zone, zone)
    local = value.astimezone(ZoneInfo(iana)).replace(tzinfo=None)
    return {"dateTime": local.isoformat(timespec="microseconds") + "0", "timeZone": zone}


def parse_graph_time(part: dict[str, str]) -> datetime:
    zone = WINDOWS_TO_OLSON.get(part.get("timeZone") or "UTC", part.get("timeZone") or "UTC")
    text = part["dateTime"]
    if "." in text:
        head, frac = text.split(".", 1)
        text = head + "." + frac[:6]
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(timezone.utc)


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message,
                      "innerError": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                                     "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}}}
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers or {})


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; odata.metadata=minimal")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _unb64(text: str) -> dict[str, Any] | None:
    try:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        return None


@dataclass
class Fault:
    status: int
    code: str
    remaining: int
    path_contains: str | None
    headers: dict[str, str] = field(default_factory=dict)


class FakeGraph:
    client_id = "00000000-fake-4000-8000-graphclient0"
    client_secret = "fake-graph-secret"
    tenant = "common"
    mailbox = "owner@contoso.example"

    def __init__(self, *, access_token_ttl_s: int = 3600, max_page_size: int = 1000, latency_s: float = 0.0,
                 mailbox_concurrency: int = 4, validate_notification_urls: bool = False) -> None:
        self._lock = threading.RLock()
        self.access_token_ttl_s = access_token_ttl_s
        self.max_page_size = max_page_size
        self.latency_s = latency_s
        self.mailbox_concurrency = mailbox_concurrency
        self.validate_notification_urls = validate_notification_urls
        self.output_zone: str | None = None  # emulate responses in a Windows zone (outlook.timezone preference)
        self.calendars: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, dict[str, Any]]] = {}  # calendar → instance id → event (+ _seq, _deleted)
        self.masters: dict[str, tuple[str, list[str]]] = {}  # series master id → (calendar, instance ids)
        self.seq = 0
        self.generation = 1
        self.pages: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self.refresh_tokens: dict[str, bool] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}
        self.codes: dict[str, dict[str, str]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.api_requests: list[tuple[str, str]] = []
        self.token_requests: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.throttled = 0
        self._server = ThreadedServer(self.wsgi, tls=True)
        self.add_calendar("AAMkCalendar", "Calendar", default=True)

    # ------------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "FakeGraph":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def cert_path(self) -> str:
        assert self._server.cert_path
        return self._server.cert_path

    @property
    def graph_url(self) -> str:
        return f"{self.url}{V1}"

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant}"

    def session(self) -> requests.Session:
        """A requests session that trusts the fake's certificate, for msal's ``http_client`` and Graph calls."""
        s = requests.Session()
        s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides ``verify``
        s.verify = self.cert_path
        return s

    # ------------------------------------------------------------------------------------------- test hooks
    def add_calendar(self, calendar_id: str, name: str, *, default: bool = False, can_edit: bool = True) -> str:
        with self._lock:
            self.calendars[calendar_id] = {"id": calendar_id, "name": name, "isDefaultCalendar": default,
                                           "canEdit": can_edit, "color": "auto",
                                           "owner": {"name": "Owner", "address": self.mailbox}}
            self.events.setdefault(calendar_id, {})
        return calendar_id

    def default_calendar(self) -> str:
        return next(c for c, v in self.calendars.items() if v["isDefaultCalendar"])

    def issue_refresh_token(self) -> str:
        with self._lock:
            rt = "0.fake-rt-" + secrets.token_urlsafe(16)
            self.refresh_tokens[rt] = True
            return rt

    def revoke(self) -> None:
        with self._lock:
            for rt in self.refresh_tokens:
                self.refresh_tokens[rt] = False
            self.access_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self._lock:
            self.access_tokens.clear()

    def add_event(self, calendar_id: str, subject: str, start: datetime | date, end: datetime | date, *,
                  attendees: tuple[str, ...] | list[dict[str, Any]] = (), teams: bool = False, location: str = "",
                  body: str = "", show_as: str = "busy", zone: str = "UTC", event_id: str | None = None,
                  cancelled: bool = False) -> str:
        with self._lock:
            eid = event_id or "AAMkE" + secrets.token_hex(10)
            event = self._event(eid, subject, start, end, attendees, teams, location, body, show_as, zone)
            event["isCancelled"] = cancelled
            self.events[calendar_id][eid] = event
            self._touch(event)
        return eid

    def add_series(self, calendar_id: str, subject: str, first_start: datetime, duration: timedelta, count: int, *,
                   every: timedelta = timedelta(weeks=1), attendees: tuple[str, ...] = (),
                   zone: str = "UTC") -> tuple[str, list[str]]:
        """A series as calendarView shows it: one ``occurrence`` per instance, all sharing ``seriesMasterId``."""
        with self._lock:
            master = "AAMkS" + secrets.token_hex(10)
            ids = []
            for n in range(count):
                start = first_start + n * every
                iid = f"{master}-OCC{start.astimezone(timezone.utc):%Y%m%d%H%M}"
                event = self._event(iid, subject, start, start + duration, attendees, False, "", "", "busy", zone)
                event.update(type="occurrence", seriesMasterId=master,
                             originalStart=start.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"))
                self.events[calendar_id][iid] = event
                self._touch(event)
                ids.append(iid)
            self.masters[master] = (calendar_id, ids)
        return master, ids

    def update_event(self, calendar_id: str, event_id: str, **fields: Any) -> None:
        with self._lock:
            event = self.events[calendar_id][event_id]
            for key, value in fields.items():
                if key in ("start", "end") and isinstance(value, datetime):
                    value = graph_time(value, event["originalStartTimeZone"])
                event[key] = value
            if event.get("type") == "occurrence":
                event["type"] = "exception"
            self._touch(event)

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with self._lock:
            if event_id in self.masters:
                for iid in self.masters[event_id][1]:
                    self._remove(self.events[calendar_id][iid])
                return
            self._remove(self.events[calendar_id][event_id])

    def invalidate_delta_tokens(self) -> None:
        with self._lock:
            self.generation += 1

    def fail_next(self, status: int, code: str, *, times: int = 1, path_contains: str | None = None,
                  retry_after: str | None = None) -> None:
        with self._lock:
            self.faults.append(Fault(status, code, times, path_contains,
                                     {"Retry-After": retry_after} if retry_after else {}))

    def requests_since(self, mark: int) -> int:
        return len(self.api_requests) - mark

    def consent(self, auth_uri: str, session: requests.Session | None = None) -> tuple[str, dict[str, str]]:
        """Follow an authorization URL as the owner's browser would; returns (redirect_uri, fields it receives)."""
        s = session or self.session()
        resp = s.get(auth_uri, allow_redirects=False, timeout=10)
        if resp.status_code == 302:
            target = resp.headers["Location"]
            base, _, query = target.partition("?")
            from urllib.parse import parse_qsl
            return base, dict(parse_qsl(query))
        action = html.unescape(re.search(r'action="([^"]+)"', resp.text).group(1))  # type: ignore[union-attr]
        fields = {k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', resp.text)}
        return action, fields

    def change_notification(self, subscription_id: str, event_id: str, change_type: str = "updated", *,
                            client_state: str | None = None) -> dict[str, Any]:
        """The JSON body Graph POSTs to a subscription's notificationUrl for one change."""
        sub = self.subscriptions[subscription_id]
        return {"value": [{
            "subscriptionId": subscription_id, "subscriptionExpirationDateTime": sub["expirationDateTime"],
            "changeType": change_type, "resource": f"Users/{self.mailbox}/Events/{event_id}",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event",
                             "@odata.id": f"Users/{self.mailbox}/Events/{event_id}",
                             "@odata.etag": 'W/"1"', "id": event_id},
            "clientState": sub["clientState"] if client_state is None else client_state,
            "tenantId": "fake-tenant"}]}

    def lifecycle_notification(self, subscription_id: str, lifecycle_event: str, *,
                               client_state: str | None = None) -> dict[str, Any]:
        """reauthorizationRequired | subscriptionRemoved | missed, sent to lifecycleNotificationUrl."""
        sub = self.subscriptions.get(subscription_id, {"clientState": "", "expirationDateTime": ""})
        return {"value": [{"subscriptionId": subscription_id,
                           "subscriptionExpirationDateTime": sub["expirationDateTime"],
                           "tenantId": "fake-tenant",
                           "clientState": sub["clientState"] if client_state is None else client_state,
                           "lifecycleEvent": lifecycle_event}]}

    # ------------------------------------------------------------------------------------------- model
    def _event(self, eid: str, subject: str, start: datetime | date, end: datetime | date, attendees: Any,
               teams: bool, location: str, body: str, show_as: str, zone: str) -> dict[str, Any]:
        all_day = not isinstance(start, datetime)
        if all_day:
            s = {"dateTime": f"{start.isoformat()}T00:00:00.0000000", "timeZone": "UTC"}
            e = {"dateTime": f"{end.isoformat()}T00:00:00.0000000", "timeZone": "UTC"}
        else:
            s, e = graph_time(start, "UTC"), graph_time(end, "UTC")  # type: ignore[arg-type]
        people = []
        for a in attendees:
            if isinstance(a, str):
                a = {"emailAddress": {"address": a, "name": ""}, "type": "required",
                     "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}}
            people.append(a)
        join = f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{secrets.token_hex(8)}%40thread.v2/0"
        return {"@odata.type": "#microsoft.graph.event", "id": eid, "iCalUId": "040000008200E0" + eid,
                "createdDateTime": datetime.now(timezone.utc).isoformat(), "subject": subject,
                "bodyPreview": body[:255], "body": {"contentType": "text", "content": body},
                "start": s, "end": e, "isAllDay": all_day, "isCancelled": False, "showAs": show_as,
                "type": "singleInstance", "seriesMasterId": None, "originalStartTimeZone": zone,
                "originalEndTimeZone": zone, "location": {"displayName": location},
                "attendees": people, "organizer": {"emailAddress": {"name": "Owner", "address": self.mailbox}},
                "isOrganizer": True, "isOnlineMeeting": teams,
                "onlineMeetingProvider": "teamsForBusiness" if teams else "unknown",
                "onlineMeeting": {"joinUrl": join} if teams else None}

    def _touch(self, event: dict[str, Any]) -> None:
        self.seq += 1
        event["_seq"] = self.seq
        event["changeKey"] = f"CK{self.seq}"
        event["@odata.etag"] = f'W/"CK{self.seq}"'
        event["lastModifiedDateTime"] = datetime.now(timezone.utc).isoformat()

    def _remove(self, event: dict[str, Any]) -> None:
        event["_deleted"] = True
        self.seq += 1
        event["_seq"] = self.seq

    def _in_window(self, event: dict[str, Any], lo: datetime, hi: datetime) -> bool:
        try:
            return parse_graph_time(event["start"]) < hi and parse_graph_time(event["end"]) > lo
        except (KeyError, ValueError):
            return True

    def _out(self, event: dict[str, Any], zone: str | None) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in event.items() if not k.startswith("_")}
        zone = zone or self.output_zone
        if zone and not event["isAllDay"]:
            for key in ("start", "end"):
                try:
                    out[key] = graph_time(parse_graph_time(event[key]), zone)
                except (KeyError, ValueError):
                    pass
        return out

    # ------------------------------------------------------------------------------------------- HTTP
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        if not path.startswith(V1 + "/"):
            with self._lock:
                return self._login(request)(environ, start_response)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            over = self.in_flight > self.mailbox_concurrency
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            with self._lock:
                self.api_requests.append((request.method, path))
                if over:
                    self.throttled += 1
                    response = graph_error(429, "ApplicationThrottled", "Application is over its MailboxConcurrency "
                                           "limit.", {"Retry-After": "1"})
                else:
                    response = self._api(request)
        finally:
            with self._lock:
                self.in_flight -= 1
        return response(environ, start_response)

    def _api(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        found = self.access_tokens.get(token)
        if not found or found[1] < time.time():
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.",
                               {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        for fault in self.faults:
            if fault.remaining > 0 and (fault.path_contains is None or fault.path_contains in request.full_path):
                fault.remaining -= 1
                return graph_error(fault.status, fault.code, f"fake fault: {fault.code}", dict(fault.headers))
        rest = request.path[len(V1) + 1:]
        parts = rest.split("/")
        m = request.method
        if rest == "me" and m == "GET":
            return _json({"id": "fake-user-id", "displayName": "Owner", "mail": self.mailbox,
                          "userPrincipalName": self.mailbox})
        if rest == "me/calendars" and m == "GET":
            return _json({"value": list(self.calendars.values())})
        if rest == "me/calendarView/delta":
            return self._delta(self.default_calendar(), request)
        if len(parts) == 5 and parts[:2] == ["me", "calendars"] and parts[3:] == ["calendarView", "delta"]:
            if parts[2] not in self.calendars:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return self._delta(parts[2], request)
        if len(parts) == 4 and parts[:2] == ["me", "calendars"] and parts[3] == "calendarView" and m == "GET":
            return self._calendar_view(parts[2], request)
        if len(parts) == 4 and parts[:2] == ["me", "calendars"] and parts[3] == "events" and m == "POST":
            if parts[2] not in self.calendars:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return self._create(parts[2], request.get_json())
        if len(parts) == 3 and parts[:2] == ["me", "events"]:
            return self._event_item(parts[2], request)
        if rest == "subscriptions" and m == "POST":
            return self._subscribe(request.get_json())
        if len(parts) == 2 and parts[0] == "subscriptions":
            sub = self.subscriptions.get(parts[1])
            if sub is None:
                return graph_error(404, "ResourceNotFound", "The object was not found.")
            if m == "DELETE":
                del self.subscriptions[parts[1]]
                return Response(status=204)
            if m == "PATCH":
                sub["expirationDateTime"] = request.get_json()["expirationDateTime"]
                return _json(sub)
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{parts[-1]}'.")

    def _prefer(self, request: Request) -> tuple[int, str | None]:
        size, zone = 100, None
        for part in request.headers.get("Prefer", "").split(","):
            part = part.strip()
            if part.startswith("odata.maxpagesize="):
                size = int(part.split("=", 1)[1])
            if part.startswith("outlook.timezone="):
                zone = part.split("=", 1)[1].strip('"')
        return min(size, self.max_page_size), zone

    def _delta(self, cal: str, request: Request) -> Response:
        args = request.args
        size, zone = self._prefer(request)
        base = request.base_url
        if "$skiptoken" in args:
            page = self.pages.pop(args["$skiptoken"], None)
            if page is None:
                return graph_error(410, "syncStateNotFound", "The sync state generation is not found.")
            return self._delta_page(page[0], page[1], base, size)
        since = 0
        if "$deltatoken" in args:
            state = _unb64(args["$deltatoken"])
            if state is None or state.get("c") != cal or state.get("g") != self.generation:
                return graph_error(410, "syncStateNotFound",
                                   "The sync state generation is not found. Please start a new sync.")
            since, lo, hi = state["s"], datetime.fromisoformat(state["lo"]), datetime.fromisoformat(state["hi"])
        else:
            if "startDateTime" not in args or "endDateTime" not in args:
                return graph_error(400, "ErrorInvalidParameter", "This request requires a time window specified "
                                   "by the query string parameters StartDateTime and EndDateTime.")
            lo = datetime.fromisoformat(args["startDateTime"].replace("Z", "+00:00"))
            hi = datetime.fromisoformat(args["endDateTime"].replace("Z", "+00:00"))
        items = []
        for event in sorted(self.events[cal].values(), key=lambda e: e["_seq"]):
            if event["_seq"] <= since:
                continue
            visible = not event.get("_deleted") and self._in_window(event, lo, hi)
            if visible:
                items.append(self._out(event, zone))
            elif since:
                items.append({"@odata.type": "#microsoft.graph.event", "id": event["id"],
                              "@removed": {"reason": "deleted"}})
        token = _b64({"g": self.generation, "s": self.seq, "c": cal, "lo": lo.isoformat(), "hi": hi.isoformat()})
        return self._delta_page(items, token, base, size)

    def _delta_page(self, items: list[dict[str, Any]], delta_token: str, base: str, size: int) -> Response:
        body: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
                                "value": items[:size]}
        if len(items) > size:
            skip = secrets.token_urlsafe(12)
            self.pages[skip] = (items[size:], delta_token)
            body["@odata.nextLink"] = f"{base}?$skiptoken={skip}"
        else:
            body["@odata.deltaLink"] = f"{base}?$deltatoken={delta_token}"
        return _json(body)

    def _calendar_view(self, cal: str, request: Request) -> Response:
        if cal not in self.calendars:
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        args = request.args
        size, zone = self._prefer(request)
        size = min(int(args.get("$top", size)), size)
        skip = int(args.get("$skip", 0))
        lo = datetime.fromisoformat(args["startDateTime"].replace("Z", "+00:00"))
        hi = datetime.fromisoformat(args["endDateTime"].replace("Z", "+00:00"))
        found = [self._out(e, zone) for e in sorted(self.events[cal].values(), key=lambda e: e["start"]["dateTime"])
                 if not e.get("_deleted") and self._in_window(e, lo, hi)]
        body: dict[str, Any] = {"value": found[skip:skip + size]}
        if len(found) > skip + size:
            q = dict(args)
            q["$skip"] = str(skip + size)
            body["@odata.nextLink"] = f"{request.base_url}?{urlencode(q)}"
        return _json(body)

    def _create(self, cal: str, body: dict[str, Any]) -> Response:
        try:
            start, end = parse_graph_time(body["start"]), parse_graph_time(body["end"])
        except (KeyError, ValueError):
            return graph_error(400, "ErrorInvalidRequest", "Your request can't be completed. start/end required.")
        teams = bool(body.get("isOnlineMeeting"))
        eid = "AAMkE" + secrets.token_hex(10)
        event = self._event(eid, body.get("subject", ""), start, end, body.get("attendees", []), teams,
                            (body.get("location") or {}).get("displayName", ""),
                            (body.get("body") or {}).get("content", ""), body.get("showAs", "busy"),
                            body["start"].get("timeZone", "UTC"))
        event["start"], event["end"] = graph_time(start), graph_time(end)
        self.events[cal][eid] = event
        self._touch(event)
        return _json(self._out(event, None), 201)

    def _event_item(self, eid: str, request: Request) -> Response:
        for cal, events in self.events.items():
            event = events.get(eid)
            if event is not None and not event.get("_deleted"):
                break
        else:
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if request.method == "DELETE":
            self._remove(event)
            return Response(status=204)
        if request.method == "PATCH":
            body = request.get_json()
            for key in ("start", "end"):
                if key in body:
                    body[key] = graph_time(parse_graph_time(body[key]))
            if body.get("isOnlineMeeting") and not event.get("onlineMeeting"):
                event["onlineMeeting"] = {"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_"
                                          + secrets.token_hex(8) + "%40thread.v2/0"}
                event["onlineMeetingProvider"] = "teamsForBusiness"
            event.update(body)
            if event.get("type") == "occurrence":
                event["type"] = "exception"
            self._touch(event)
        return _json(self._out(event, None))

    def _subscribe(self, body: dict[str, Any]) -> Response:
        url = str(body.get("notificationUrl", ""))
        local = url.startswith(("http://127.0.0.1", "http://localhost"))
        if not (url.startswith("https://") or local):
            return graph_error(400, "ValidationError", "The Url scheme must be https.")
        try:
            expires = datetime.fromisoformat(body["expirationDateTime"].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return graph_error(400, "ExtensionError", "expirationDateTime is required.")
        if expires > datetime.now(timezone.utc) + timedelta(minutes=10080):
            return graph_error(400, "ExtensionError", "Subscription expiration can only be 10080 minutes in the "
                               "future.")
        if len(str(body.get("clientState", ""))) > 128:
            return graph_error(400, "ValidationError", "clientState is limited to 128 characters.")
        if self.validate_notification_urls:
            for target in {url, body.get("lifecycleNotificationUrl") or url}:
                token = "Validation: Testing client application reachability " + secrets.token_hex(4)
                try:
                    with requests.Session() as plain:
                        plain.trust_env = False
                        resp = plain.post(target, params={"validationToken": token}, timeout=10,
                                          headers={"Content-Type": "text/plain; charset=utf-8"})
                except requests.RequestException:
                    resp = None
                if resp is None or resp.status_code != 200 or resp.text != token:
                    return graph_error(400, "ValidationError", "Subscription validation request failed. "
                                       "Notification endpoint must respond with 200 OK to validation request.")
        sub = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
               "id": str(uuid.uuid4()), "resource": body["resource"], "changeType": body["changeType"],
               "clientState": body.get("clientState"), "notificationUrl": url,
               "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
               "expirationDateTime": expires.isoformat().replace("+00:00", "Z"), "applicationId": self.client_id,
               "creatorId": "fake-user-id", "latestSupportedTlsVersion": "v1_2"}
        self.subscriptions[sub["id"]] = sub
        return _json(sub, 201)

    # ------------------------------------------------------------------------------------------- identity
    def _login(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) < 2:
            return _json({"error": "invalid_request"}, 404)
        tenant, rest = parts[0], "/".join(parts[1:])
        base = f"{self.url}/{tenant}"
        if rest == "v2.0/.well-known/openid-configuration":
            return _json({"authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                          "token_endpoint": f"{base}/oauth2/v2.0/token",
                          "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                          "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                          "jwks_uri": f"{base}/discovery/v2.0/keys", "issuer": f"{base}/v2.0",
                          "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                          "scopes_supported": ["openid", "profile", "email", "offline_access"],
                          "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                                    "client_secret_basic"]})
        if rest == "oauth2/v2.0/authorize":
            args = request.args
            if args.get("client_id") != self.client_id:
                return Response("AADSTS700016: Application not found", status=400, content_type="text/plain")
            code = "0.fake-code-" + secrets.token_urlsafe(16)
            self.codes[code] = {"redirect_uri": args.get("redirect_uri", ""), "nonce": args.get("nonce", ""),
                                "challenge": args.get("code_challenge", "")}
            fields = {"code": code, "state": args.get("state", ""), "session_state": str(uuid.uuid4())}
            if args.get("response_mode") == "form_post":  # an auto-submitting form, as the real page sends
                inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}"/>'
                                 for k, v in fields.items())
                page = (f'<html><body onload="document.forms[0].submit()"><form method="POST" '
                        f'action="{html.escape(args["redirect_uri"])}">{inputs}</form></body></html>')
                return Response(page, content_type="text/html; charset=utf-8")
            target = args["redirect_uri"] + "?" + urlencode(fields)
            return Response(status=302, headers={"Location": target})
        if rest == "oauth2/v2.0/token" and request.method == "POST":
            return self._token(request, base)
        return _json({"error": "invalid_request"}, 404)

    def _token(self, request: Request, base: str) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        self.token_requests.append(grant)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _json({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret "
                          "provided.", "error_codes": [7000215]}, 401)
        nonce = ""
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            if code is None or code["redirect_uri"] != form.get("redirect_uri"):
                return _json({"error": "invalid_grant", "error_description": "AADSTS70008: The provided "
                              "authorization code or refresh token has expired or was already used.",
                              "error_codes": [70008]}, 400)
            if code["challenge"]:
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if digest != code["challenge"]:
                    return _json({"error": "invalid_grant", "error_description": "AADSTS501481: The Code_Verifier "
                                  "does not match the code_challenge supplied in the authorization request.",
                                  "error_codes": [501481]}, 400)
            nonce = code["nonce"]
            refresh = self.issue_refresh_token()
        elif grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if not self.refresh_tokens.get(refresh):
                return _json({"error": "invalid_grant", "error_description": "AADSTS700082: The refresh token has "
                              "expired due to inactivity.", "error_codes": [700082], "suberror": "bad_token"}, 400)
        else:
            return _json({"error": "unsupported_grant_type", "error_description": "AADSTS70003"}, 400)
        access = "eyJ0eXAiOiJKV1QifQ.fake-at-" + secrets.token_urlsafe(16)
        self.access_tokens[access] = (refresh, time.time() + self.access_token_ttl_s)
        now = int(time.time())
        claims = {"iss": f"{base}/v2.0", "sub": "fake-sub", "aud": self.client_id, "exp": now + 3600, "iat": now,
                  "nbf": now, "oid": "fake-user-id", "tid": "fake-tenant", "preferred_username": self.mailbox,
                  "name": "Owner", "ver": "2.0"}
        if nonce:
            claims["nonce"] = nonce
        id_token = ".".join([_b64({"typ": "JWT", "alg": "none"}), _b64(claims), ""])
        return _json({"token_type": "Bearer", "scope": "Calendars.ReadWrite User.Read openid profile "
                      "offline_access", "expires_in": self.access_token_ttl_s,
                      "ext_expires_in": self.access_token_ttl_s, "access_token": access, "refresh_token": refresh,
                      "id_token": id_token, "client_info": _b64({"uid": "fake-user-id", "utid": "fake-tenant"})})


def sign_in(fake: FakeGraph, redirect_uri: str = "https://reagenda.test/connect/outlook/callback") -> dict[str, Any]:
    """The owner's consent through msal's real authorization-code flow (PKCE, form_post) against the fake;
    returns the credentials dict ``OutlookConnector`` takes."""
    from connectors import outlook

    app = outlook.make_app(fake.client_id, fake.client_secret, authority=fake.authority, http_client=fake.session())
    flow = outlook.start_authorization(app, redirect_uri)
    _, fields = fake.consent(flow["auth_uri"])
    return outlook.finish_authorization(app, flow, fields)
