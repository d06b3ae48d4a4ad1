"""A fake Google Calendar API v3 + Google OAuth 2.0 server, for driving google-api-python-client in tests.

Wire format follows developers.google.com/calendar/api/v3/reference and the "Synchronize resources efficiently"
guide:

- ``GET  /calendar/v3/users/me/calendarList``
- ``GET  /calendar/v3/calendars/{id}/events``: ``singleEvents`` expansion of RRULE series (instance ids
  ``{seriesId}_{YYYYMMDDTHHMMSSZ}`` with ``recurringEventId`` + ``originalStartTime``), ``timeMin``/``timeMax``,
  ``maxResults`` (default 250) + ``pageToken`` / ``nextPageToken``; ``nextSyncToken`` only on the last page;
  ``syncToken`` returns changes since the token, deleted items as ``status: cancelled``; an invalidated token
  answers 410 ``fullSyncRequired``; ``syncToken`` with ``timeMin``/``timeMax`` is a 400 as on the real API.
- ``POST /calendar/v3/calendars/{id}/events`` (``conferenceDataVersion=1`` + ``createRequest`` → a Meet link),
  ``PATCH``/``DELETE .../events/{eventId}`` (delete of a deleted event → 410 ``deleted``, unknown → 404)
- ``POST /calendar/v3/freeBusy``, ``POST .../events/watch``, ``POST /calendar/v3/channels/stop``
- ``GET  /o/oauth2/v2/auth`` (auto-consents, 302 to ``redirect_uri?code=...&state=...``) and ``POST /token``
  (``authorization_code`` and ``refresh_token`` grants, ``invalid_grant`` once revoked).

Test hooks: ``add_event``/``update_event``/``delete_event``/``override_instance``, ``invalidate_sync_tokens()``,
``fail_next(status, reason, ...)``, ``revoke()``, ``expire_access_tokens()``, ``push_headers(channel_id)``, and
``api_requests`` (what the client asked, for request counts).
"""
from __future__ import annotations

import base64
import copy
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

from dateutil.rrule import rrulestr
from werkzeug.wrappers import Request, Response

from tests.fakes.serving import ThreadedServer

API = "/calendar/v3"
MAX_INSTANCES = 730  # like Google, an endless series is expanded only so far


def rfc3339(value: datetime) -> str:
    text = value.isoformat()
    return text.replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def google_error(status: int, reason: str, message: str, **extra: Any) -> Response:
    body = {"error": {"errors": [{"domain": "global", "reason": reason, "message": message, **extra}],
                      "code": status, "message": message}}
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")


@dataclass
class Fault:
    status: int
    reason: str
    remaining: int
    calendar_id: str | None
    headers: dict[str, str] = field(default_factory=dict)


class FakeGoogleCalendar:
    """State plus a WSGI app. ``with FakeGoogleCalendar() as g:`` starts it; ``g.api_endpoint`` and
    ``g.token_uri`` are what the connector needs."""

    client_id = "fake-google-client.apps.googleusercontent.com"
    client_secret = "fake-google-secret"

    def __init__(self, *, access_token_ttl_s: int = 3600, max_page_size: int = 2500) -> None:
        self._lock = threading.RLock()
        self.access_token_ttl_s = access_token_ttl_s
        self.max_page_size = max_page_size  # the server may return fewer items than maxResults asks for
        self.calendars: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, dict[str, Any]]] = {}
        self.exceptions: dict[str, dict[str, dict[str, Any]]] = {}  # per calendar: instance id → overrides
        self.seq = 0
        self.generation = 1
        self.pages: dict[str, tuple[list[dict[str, Any]], str | None, str]] = {}
        self.refresh_tokens: dict[str, bool] = {}  # token → still valid
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token → (refresh token, expires at)
        self.codes: dict[str, dict[str, str]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.api_requests: list[tuple[str, str]] = []
        self.token_requests: list[str] = []  # grant types seen by /token
        self._server = ThreadedServer(self.wsgi)
        self.add_calendar("primary@example.com", "Agenda", primary=True, time_zone="Europe/Madrid")

    # ------------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "FakeGoogleCalendar":
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
    def api_endpoint(self) -> str:
        """What google-api-python-client takes as ``client_options={"api_endpoint": ...}`` (root + servicePath)."""
        return f"{self.url}{API}/"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def auth_uri(self) -> str:
        return f"{self.url}/o/oauth2/v2/auth"

    # ------------------------------------------------------------------------------------------- test hooks
    def add_calendar(self, calendar_id: str, summary: str, *, primary: bool = False,
                     time_zone: str = "UTC", access_role: str = "owner") -> str:
        with self._lock:
            self.calendars[calendar_id] = {"kind": "calendar#calendarListEntry", "id": calendar_id,
                                           "summary": summary, "timeZone": time_zone, "accessRole": access_role,
                                           "primary": primary}
            self.events.setdefault(calendar_id, {})
            self.exceptions.setdefault(calendar_id, {})
        return calendar_id

    def issue_tokens(self) -> dict[str, Any]:
        """Credentials as if the owner had just completed the consent screen."""
        with self._lock:
            refresh = "1//rt-" + secrets.token_urlsafe(16)
            self.refresh_tokens[refresh] = True
            access = self._new_access_token(refresh)
        return {"token": access, "refresh_token": refresh,
                "expiry": rfc3339(datetime.now(timezone.utc) + timedelta(seconds=self.access_token_ttl_s))}

    def _new_access_token(self, refresh: str) -> str:
        access = "ya29.fake-" + secrets.token_urlsafe(16)
        self.access_tokens[access] = (refresh, time.time() + self.access_token_ttl_s)
        return access

    def revoke(self, refresh_token: str | None = None) -> None:
        """Revoke one refresh token (or all): refreshes answer invalid_grant, access tokens stop working."""
        with self._lock:
            for rt in list(self.refresh_tokens):
                if refresh_token is None or rt == refresh_token:
                    self.refresh_tokens[rt] = False
            self.access_tokens = {a: v for a, v in self.access_tokens.items()
                                  if self.refresh_tokens.get(v[0], False)}

    def expire_access_tokens(self) -> None:
        with self._lock:
            self.access_tokens.clear()

    def add_event(self, calendar_id: str, summary: str, start: datetime | date, end: datetime | date, *,
                  attendees: list[dict[str, Any]] | tuple[str, ...] = (), organizer: str = "",
                  recurrence: list[str] | None = None, time_zone: str | None = None, location: str = "",
                  description: str = "", meet: bool = False, transparency: str = "opaque",
                  event_id: str | None = None) -> str:
        """Store an event as the API would after events.insert; returns its id."""
        with self._lock:
            eid = event_id or uuid.uuid4().hex[:26]
            tz = time_zone or self.calendars[calendar_id]["timeZone"]
            body: dict[str, Any] = {"summary": summary, "start": self._time(start, tz), "end": self._time(end, tz),
                                    "location": location, "description": description,
                                    "transparency": transparency,
                                    "organizer": {"email": organizer or calendar_id, "self": not organizer},
                                    "attendees": [self._attendee(a) for a in attendees]}
            if recurrence:
                body["recurrence"] = list(recurrence)
            if meet:
                body["conferenceData"] = self._meet_conference(uuid.uuid4().hex)
                body["hangoutLink"] = body["conferenceData"]["entryPoints"][0]["uri"]
            self._store(calendar_id, eid, body)
        return eid

    def update_event(self, calendar_id: str, event_id: str, **fields: Any) -> None:
        """Change fields of an event (``start``/``end`` may be datetimes)."""
        with self._lock:
            event = self.events[calendar_id][event_id]
            tz = event["start"].get("timeZone") or self.calendars[calendar_id]["timeZone"]
            for key, value in fields.items():
                if key in ("start", "end") and isinstance(value, (datetime, date)):
                    value = self._time(value, tz)
                if key == "attendees":
                    value = [self._attendee(a) for a in value]
                event[key] = value
            self._touch(event)

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with self._lock:
            event = self.events[calendar_id][event_id]
            event["status"] = "cancelled"
            self._touch(event)

    def override_instance(self, calendar_id: str, series_id: str, original_start: datetime, **fields: Any) -> str:
        """Modify (or with ``status="cancelled"`` delete) one occurrence of a series; returns the instance id."""
        with self._lock:
            iid = f"{series_id}_{original_start.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"
            series = self.events[calendar_id][series_id]
            tz = series["start"].get("timeZone") or "UTC"
            exc = self.exceptions[calendar_id].setdefault(iid, {})
            for key, value in fields.items():
                exc[key] = self._time(value, tz) if isinstance(value, (datetime, date)) else value
            self.seq += 1
            exc["_seq"] = self.seq
        return iid

    def invalidate_sync_tokens(self) -> None:
        """Every sync token issued so far answers 410 GONE from now on."""
        with self._lock:
            self.generation += 1

    def fail_next(self, status: int, reason: str, *, times: int = 1, calendar_id: str | None = None,
                  retry_after: str | None = None) -> None:
        """The next ``times`` API requests (for ``calendar_id`` only, when given) answer this error."""
        headers = {"Retry-After": retry_after} if retry_after else {}
        with self._lock:
            self.faults.append(Fault(status, reason, times, calendar_id, headers))

    def push_headers(self, channel_id: str, state: str = "exists", *, token: str | None = None) -> dict[str, str]:
        """The headers Google sends to a watch channel's address (push notifications guide)."""
        ch = self.channels[channel_id]
        ch["message_number"] += 1
        return {"X-Goog-Channel-ID": channel_id, "X-Goog-Channel-Token": ch["token"] if token is None else token,
                "X-Goog-Channel-Expiration": time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                           time.gmtime(ch["expiration"] / 1000)),
                "X-Goog-Resource-ID": ch["resourceId"], "X-Goog-Resource-URI": ch["resourceUri"],
                "X-Goog-Resource-State": state, "X-Goog-Message-Number": str(ch["message_number"])}

    def requests_since(self, mark: int) -> int:
        return len(self.api_requests) - mark

    # ------------------------------------------------------------------------------------------- model
    def _time(self, value: datetime | date, tz: str) -> dict[str, str]:
        if isinstance(value, datetime):
            return {"dateTime": rfc3339(value.astimezone(ZoneInfo(tz))), "timeZone": tz}
        return {"date": value.isoformat()}

    @staticmethod
    def _attendee(value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            return {"email": value, "responseStatus": "needsAction"}
        return dict(value)

    @staticmethod
    def _meet_conference(request_id: str) -> dict[str, Any]:
        code = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))
        uri = f"https://meet.google.com/{code[:3]}-{code[3:7]}-{code[7:]}"
        return {"createRequest": {"requestId": request_id, "conferenceSolutionKey": {"type": "hangoutsMeet"},
                                  "status": {"statusCode": "success"}},
                "entryPoints": [{"entryPointType": "video", "uri": uri, "label": uri.removeprefix("https://")}],
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
                "conferenceId": uri.rsplit("/", 1)[-1]}

    def _store(self, calendar_id: str, eid: str, body: dict[str, Any]) -> dict[str, Any]:
        event = {"kind": "calendar#event", "id": eid, "status": "confirmed", "iCalUID": f"{eid}@google.com",
                 "created": rfc3339(datetime.now(timezone.utc).replace(microsecond=0)), "sequence": 0, **body}
        self.events[calendar_id][eid] = event
        self._touch(event)
        return event

    def _touch(self, event: dict[str, Any]) -> None:
        self.seq += 1
        event["_seq"] = self.seq
        event["updated"] = rfc3339(datetime.now(timezone.utc).replace(microsecond=0))
        event["etag"] = f'"{self.seq}"'

    @staticmethod
    def _start_of(part: dict[str, str]) -> datetime:
        if "dateTime" in part:
            return parse_rfc3339(part["dateTime"])
        return datetime.fromisoformat(part["date"]).replace(tzinfo=timezone.utc)

    def _instances(self, calendar_id: str, event: dict[str, Any], lo: datetime | None,
                   hi: datetime | None) -> list[dict[str, Any]]:
        """The event, or its series expanded (singleEvents=true) with per-instance overrides applied."""
        public = {k: v for k, v in event.items() if not k.startswith("_")}
        if not event.get("recurrence") or event["status"] == "cancelled":
            return [dict(public, _seq=event["_seq"])]
        start_part, end_part = event["start"], event["end"]
        all_day = "date" in start_part
        tz = ZoneInfo(start_part.get("timeZone") or "UTC")
        first = self._start_of(start_part).astimezone(tz)
        length = self._start_of(end_part) - self._start_of(start_part)
        rule = rrulestr("\n".join(event["recurrence"]), dtstart=first.replace(tzinfo=None), forceset=True)
        out = []
        for n, naive in enumerate(rule):
            if n >= MAX_INSTANCES:
                break
            begin = naive.replace(tzinfo=tz)
            if hi is not None and begin >= hi:
                break
            utc_begin = begin.astimezone(timezone.utc)
            iid = f"{event['id']}_{utc_begin:%Y%m%d}" if all_day else f"{event['id']}_{utc_begin:%Y%m%dT%H%M%SZ}"
            inst = {k: copy.deepcopy(v) for k, v in public.items() if k != "recurrence"}
            inst["id"] = iid
            inst["recurringEventId"] = event["id"]
            if all_day:
                inst["start"] = {"date": begin.date().isoformat()}
                inst["end"] = {"date": (begin + length).date().isoformat()}
                inst["originalStartTime"] = {"date": begin.date().isoformat()}
            else:
                inst["start"] = {"dateTime": rfc3339(begin), "timeZone": start_part.get("timeZone", "UTC")}
                inst["end"] = {"dateTime": rfc3339(begin + length), "timeZone": start_part.get("timeZone", "UTC")}
                inst["originalStartTime"] = dict(inst["start"])
            seq = event["_seq"]
            exc = self.exceptions[calendar_id].get(iid)
            if exc:
                inst.update({k: v for k, v in exc.items() if not k.startswith("_")})
                seq = max(seq, exc["_seq"])
            if lo is not None and self._start_of(inst["end"]) <= lo:
                continue
            inst["_seq"] = seq
            out.append(inst)
        return out

    def _overlaps(self, inst: dict[str, Any], lo: datetime | None, hi: datetime | None) -> bool:
        if inst.get("status") == "cancelled" and "start" not in inst:
            return True
        try:
            if lo is not None and self._start_of(inst["end"]) <= lo:
                return False
            if hi is not None and self._start_of(inst["start"]) >= hi:
                return False
        except (KeyError, ValueError):  # a malformed item is served as is: the client must cope
            return True
        return True

    # ------------------------------------------------------------------------------------------- HTTP
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/token":
            return self._token(request)
        if path == "/o/oauth2/v2/auth":
            return self._authorize(request)
        if not path.startswith(API + "/"):
            return google_error(404, "notFound", "Not Found")
        self.api_requests.append((request.method, path))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        found = self.access_tokens.get(token)
        if not found or found[1] < time.time():
            body = {"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected "
                              "OAuth 2 access token, login cookie or other valid authentication credential.",
                              "errors": [{"message": "Invalid Credentials", "domain": "global",
                                          "reason": "authError", "location": "Authorization",
                                          "locationType": "header"}], "status": "UNAUTHENTICATED"}}
            return Response(json.dumps(body), status=401, content_type="application/json; charset=UTF-8",
                            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        for fault in self.faults:
            if fault.remaining > 0 and (fault.calendar_id is None
                                        or f"/calendars/{fault.calendar_id}/" in path + "/"):
                fault.remaining -= 1
                resp = google_error(fault.status, fault.reason, f"fake fault: {fault.reason}")
                resp.headers.update(fault.headers)
                return resp
        rest = path[len(API) + 1:]
        parts = rest.split("/")
        m = request.method
        if rest == "users/me/calendarList" and m == "GET":
            return _json({"kind": "calendar#calendarList", "etag": '"1"',
                          "items": list(self.calendars.values())})
        if rest == "freeBusy" and m == "POST":
            return self._freebusy(request.get_json())
        if rest == "channels/stop" and m == "POST":
            body = request.get_json()
            ch = self.channels.get(body.get("id", ""))
            if ch is None or ch["resourceId"] != body.get("resourceId"):
                return google_error(404, "notFound", f"Channel '{body.get('id')}' not found for project")
            del self.channels[body["id"]]
            return Response(status=204)
        if len(parts) >= 3 and parts[0] == "calendars" and parts[2] == "events":
            cal = parts[1]
            if cal == "primary":
                cal = next(c for c, v in self.calendars.items() if v["primary"])
            if cal not in self.calendars:
                return google_error(404, "notFound", "Not Found")
            if len(parts) == 3 and m == "GET":
                return self._list(cal, request)
            if len(parts) == 3 and m == "POST":
                return self._insert(cal, request)
            if len(parts) == 4 and parts[3] == "watch" and m == "POST":
                return self._watch(cal, request)
            if len(parts) == 4 and m == "PATCH":
                return self._patch(cal, parts[3], request)
            if len(parts) == 4 and m == "DELETE":
                return self._delete(cal, parts[3])
            if len(parts) == 4 and m == "GET":
                found_event = self._find(cal, parts[3])
                if found_event is None:
                    return google_error(404, "notFound", "Not Found")
                return _json(self._public(found_event))
        return google_error(404, "notFound", "Not Found")

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def _sync_token(self, calendar_id: str) -> str:
        raw = json.dumps({"g": self.generation, "s": self.seq, "c": calendar_id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _read_sync_token(self, token: str) -> dict[str, Any] | None:
        try:
            return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except ValueError:
            return None

    def _list(self, cal: str, request: Request) -> Response:
        args = request.args
        page_token = args.get("pageToken")
        if page_token:
            page = self.pages.pop(page_token, None)
            if page is None:
                return google_error(400, "invalid", "Invalid page token value.")
            return self._page(*page, args)
        sync_token = args.get("syncToken")
        single = args.get("singleEvents", "false") == "true"
        lo = parse_rfc3339(args["timeMin"]) if "timeMin" in args else None
        hi = parse_rfc3339(args["timeMax"]) if "timeMax" in args else None
        since = 0
        if sync_token:
            if lo is not None or hi is not None or "orderBy" in args or "q" in args or "updatedMin" in args:
                return google_error(400, "invalid", "Sync token cannot be used with other filters.")
            state = self._read_sync_token(sync_token)
            if state is None or state.get("c") != cal:
                return google_error(400, "invalid", "Invalid sync token value.")
            if state["g"] != self.generation:
                return google_error(410, "fullSyncRequired",
                                    "Sync token is no longer valid, a full sync is required.")
            since = state["s"]
        show_deleted = bool(sync_token) or args.get("showDeleted", "false") == "true"
        items: list[dict[str, Any]] = []
        for event in self.events[cal].values():
            candidates = self._instances(cal, event, lo, hi) if single else [dict(event)]
            if single and event.get("recurrence") and event["status"] == "cancelled" and since:
                candidates = [{"kind": "calendar#event", "id": event["id"], "status": "cancelled",
                               "etag": event["etag"], "_seq": event["_seq"]}]
            for item in candidates:
                if item["_seq"] <= since:
                    continue
                if item.get("status") == "cancelled" and not show_deleted:
                    continue
                if item.get("status") == "cancelled" and sync_token:
                    item = {k: item[k] for k in ("kind", "id", "status", "etag", "recurringEventId",
                                                 "originalStartTime", "_seq") if k in item}
                elif not self._overlaps(item, lo, hi):
                    continue
                items.append(item)
        items.sort(key=lambda i: (i["_seq"], i["id"]))
        return self._page([self._public(i) for i in items], self._sync_token(cal),
                          self.calendars[cal]["timeZone"], args)

    def _page(self, items: list[dict[str, Any]], sync_token: str | None, tz: str, args: Any) -> Response:
        size = min(int(args.get("maxResults", 250)), 2500, self.max_page_size)
        body: dict[str, Any] = {"kind": "calendar#events", "etag": f'"{self.seq}"', "summary": "", "timeZone": tz,
                                "accessRole": "owner", "defaultReminders": [], "items": items[:size]}
        if len(items) > size:
            token = secrets.token_urlsafe(12)
            self.pages[token] = (items[size:], sync_token, tz)
            body["nextPageToken"] = token
        else:
            body["nextSyncToken"] = sync_token
        return _json(body)

    def _find(self, cal: str, event_id: str) -> dict[str, Any] | None:
        if event_id in self.events[cal]:
            return self.events[cal][event_id]
        series_id = event_id.rsplit("_", 1)[0]
        series = self.events[cal].get(series_id)
        if series is None or "_" not in event_id:
            return None
        for inst in self._instances(cal, series, None, None):
            if inst["id"] == event_id:
                return inst
        return None

    def _insert(self, cal: str, request: Request) -> Response:
        body = request.get_json()
        body.pop("id", None)
        create = (body.get("conferenceData") or {}).get("createRequest")
        if create and request.args.get("conferenceDataVersion") == "1":
            body["conferenceData"] = self._meet_conference(create.get("requestId", ""))
            body["hangoutLink"] = body["conferenceData"]["entryPoints"][0]["uri"]
        else:
            body.pop("conferenceData", None)
        body.setdefault("organizer", {"email": cal, "self": True})
        event = self._store(cal, uuid.uuid4().hex[:26], body)
        return _json(self._public(event))

    def _patch(self, cal: str, event_id: str, request: Request) -> Response:
        body = request.get_json()
        event = self.events[cal].get(event_id)
        if event is None:
            found = self._find(cal, event_id)
            if found is None:
                return google_error(404, "notFound", "Not Found")
            series_id = found["recurringEventId"]
            exc = self.exceptions[cal].setdefault(event_id, {})
            exc.update(body)
            self.seq += 1
            exc["_seq"] = self.seq
            return _json(self._public(self._find(cal, event_id) or {}))
        if event["status"] == "cancelled":
            return google_error(410, "deleted", "Resource has been deleted")
        create = (body.get("conferenceData") or {}).get("createRequest")
        if create and request.args.get("conferenceDataVersion") == "1":
            body["conferenceData"] = self._meet_conference(create.get("requestId", ""))
            body["hangoutLink"] = body["conferenceData"]["entryPoints"][0]["uri"]
        event.update(body)
        event["sequence"] = event.get("sequence", 0) + 1
        self._touch(event)
        return _json(self._public(event))

    def _delete(self, cal: str, event_id: str) -> Response:
        event = self.events[cal].get(event_id)
        if event is None:
            if self._find(cal, event_id) is not None:
                exc = self.exceptions[cal].setdefault(event_id, {})
                if exc.get("status") == "cancelled":
                    return google_error(410, "deleted", "Resource has been deleted")
                exc["status"] = "cancelled"
                self.seq += 1
                exc["_seq"] = self.seq
                return Response(status=204)
            return google_error(404, "notFound", "Not Found")
        if event["status"] == "cancelled":
            return google_error(410, "deleted", "Resource has been deleted")
        event["status"] = "cancelled"
        self._touch(event)
        return Response(status=204)

    def _freebusy(self, body: dict[str, Any]) -> Response:
        lo, hi = parse_rfc3339(body["timeMin"]), parse_rfc3339(body["timeMax"])
        calendars: dict[str, Any] = {}
        for item in body.get("items", []):
            cal = item["id"]
            if cal not in self.events:
                calendars[cal] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            busy = []
            for event in self.events[cal].values():
                for inst in self._instances(cal, event, lo, hi):
                    if inst.get("status") == "cancelled" or inst.get("transparency") == "transparent":
                        continue
                    if not self._overlaps(inst, lo, hi):
                        continue
                    s = max(self._start_of(inst["start"]), lo).astimezone(timezone.utc)
                    e = min(self._start_of(inst["end"]), hi).astimezone(timezone.utc)
                    busy.append({"start": rfc3339(s), "end": rfc3339(e)})
            busy.sort(key=lambda b: b["start"])
            merged: list[dict[str, str]] = []  # the API returns merged busy periods per calendar
            for b in busy:
                if merged and parse_rfc3339(b["start"]) <= parse_rfc3339(merged[-1]["end"]):
                    if parse_rfc3339(b["end"]) > parse_rfc3339(merged[-1]["end"]):
                        merged[-1]["end"] = b["end"]
                    continue
                merged.append(dict(b))
            calendars[cal] = {"busy": merged}
        return _json({"kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"],
                      "calendars": calendars})

    def _watch(self, cal: str, request: Request) -> Response:
        body = request.get_json()
        if body.get("type") not in ("web_hook", "webhook"):
            return google_error(400, "invalid", "Invalid value for: type")
        if not str(body.get("address", "")).startswith("https://"):
            return google_error(400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: "
                                + str(body.get("address")))
        ttl = int((body.get("params") or {}).get("ttl", 604800))
        expiration = int((time.time() + min(ttl, 2592000)) * 1000)
        channel = {"kind": "api#channel", "id": body["id"], "resourceId": "res-" + secrets.token_hex(8),
                   "resourceUri": f"https://www.googleapis.com/calendar/v3/calendars/{cal}/events?alt=json",
                   "token": body.get("token", ""), "expiration": str(expiration)}
        self.channels[body["id"]] = {**channel, "expiration": expiration, "address": body["address"],
                                     "calendar_id": cal, "message_number": 0}
        return _json(channel)

    # ------------------------------------------------------------------------------------------- OAuth
    def authorization_url(self, redirect_uri: str, state: str) -> str:
        return self.auth_uri + "?" + urlencode({"client_id": self.client_id, "redirect_uri": redirect_uri,
                                                "response_type": "code", "state": state,
                                                "access_type": "offline", "prompt": "consent"})

    def _authorize(self, request: Request) -> Response:
        args = request.args
        if args.get("client_id") != self.client_id or not args.get("redirect_uri"):
            return Response("Error 401: invalid_client", status=401, content_type="text/plain")
        code = "4/" + secrets.token_urlsafe(16)
        self.codes[code] = {"redirect_uri": args["redirect_uri"]}
        target = args["redirect_uri"] + ("&" if "?" in args["redirect_uri"] else "?") + urlencode(
            {"code": code, "state": args.get("state", ""), "scope": args.get("scope", "")})
        return Response(status=302, headers={"Location": target})

    def _token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        self.token_requests.append(grant)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _json({"error": "invalid_client", "error_description": "The OAuth client was not found."}, 401)
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            if code is None or code["redirect_uri"] != form.get("redirect_uri"):
                return _json({"error": "invalid_grant", "error_description": "Malformed auth code."}, 400)
            refresh = "1//rt-" + secrets.token_urlsafe(16)
            self.refresh_tokens[refresh] = True
            return _json({"access_token": self._new_access_token(refresh), "expires_in": self.access_token_ttl_s,
                          "refresh_token": refresh, "token_type": "Bearer",
                          "scope": "https://www.googleapis.com/auth/calendar"})
        if grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if not self.refresh_tokens.get(refresh):
                return _json({"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
                             400)
            return _json({"access_token": self._new_access_token(refresh), "expires_in": self.access_token_ttl_s,
                          "token_type": "Bearer", "scope": "https://www.googleapis.com/auth/calendar"})
        return _json({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + grant}, 400)
