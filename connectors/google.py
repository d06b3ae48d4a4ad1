"""Google Calendar through google-api-python-client, with tokens refreshed by google-auth.

Sync follows Google's "Synchronize resources efficiently" guide: a full sync lists the window with
``singleEvents=true`` (recurring series arrive expanded, one item per occurrence), follows ``pageToken`` to the last
page and keeps its ``nextSyncToken``; an incremental sync sends only that token and gets what changed, deletions as
``status: cancelled``. A 410 means the token is gone: ``CursorInvalid``, the sync engine clears it and does one full
sync.

The cursor is a small JSON object: the sync token plus the end of the horizon the full sync covered. When the
caller's window reaches past that horizon, a new full sync runs (occurrences of endless series that were beyond the
old horizon never show up as "changes"), fetching ``HORIZON_SLACK`` more so that happens about once a week, not on
every sync.

Connectors never write the database: refreshed tokens are exposed through ``credentials`` for the caller to store.
"""
from __future__ import annotations

import json
import logging
import secrets
import socket
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, ClassVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import google.auth.exceptions
import google_auth_httplib2
import httplib2
import requests
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from connectors.base import (Attendee, AuthExpired, BusyInterval, CalendarInfo, Changes, ConnectorError,
                             CursorInvalid, EventDraft, EventOccurrence, ProviderUnavailable, RateLimited, Watch)
from connectors.http_retry import Retrier, parse_retry_after
from connectors.intervals import merge
from connectors.meeting_links import find_meeting_link
from connectors.registry import register

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/calendar",)
AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URI = "https://oauth2.googleapis.com/token"
HORIZON_SLACK = timedelta(days=7)
PAGE_SIZE = 2500  # the API's maximum: fewer round trips on a full sync
WATCH_TTL = timedelta(days=7)
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
_STATUS = {"accepted": "accepted", "declined": "declined", "tentative": "tentative", "needsAction": "needs-action"}


def authorization_url(client_id: str, redirect_uri: str, state: str, *, auth_uri: str = AUTH_URI) -> str:
    """Where to send the owner to grant calendar access (offline, so we get a refresh token)."""
    return auth_uri + "?" + urlencode({
        "client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "scope": " ".join(SCOPES),
        "state": state, "access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"})


def exchange_code(client_id: str, client_secret: str, code: str, redirect_uri: str, *,
                  token_uri: str = TOKEN_URI, timeout_s: float = 20) -> dict[str, Any]:
    """Trade the authorization code for tokens; returns the credentials dict the connector takes."""
    resp = requests.post(token_uri, data={"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": redirect_uri, "client_id": client_id,
                                          "client_secret": client_secret}, timeout=timeout_s)
    body = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else {}
    if resp.status_code != 200 or "access_token" not in body:
        raise AuthExpired(f"Google refused the authorization code ({body.get('error', resp.status_code)}); "
                          "start the connection again from the Calendars page")
    expiry = datetime.now(timezone.utc) + timedelta(seconds=int(body.get("expires_in", 3600)))
    return {"token": body["access_token"], "refresh_token": body.get("refresh_token", ""),
            "expiry": expiry.isoformat()}


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_time(part: dict[str, Any], tz: str) -> tuple[datetime, bool]:
    """(UTC instant, all_day) for a Google ``start``/``end`` object. All-day dates start at midnight in ``tz``."""
    if part.get("dateTime"):
        value = datetime.fromisoformat(part["dateTime"].replace("Z", "+00:00"))
        if value.tzinfo is None:  # floating: the event's zone, else the calendar's
            value = value.replace(tzinfo=_zone(part.get("timeZone") or tz))
        return value.astimezone(timezone.utc), False
    day = date.fromisoformat(part["date"])
    return datetime.combine(day, time(0), _zone(tz)).astimezone(timezone.utc), True


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class GoogleConnector:
    """One Google account. ``credentials`` holds ``token``, ``refresh_token`` and ``expiry`` (ISO); a stored
    ``token_uri`` is used when none is passed (google-auth-oauthlib's credentials carry one)."""

    key: ClassVar[str] = "google"

    def __init__(self, credentials: dict[str, Any], *, client_id: str, client_secret: str,
                 api_endpoint: str | None = None, token_uri: str | None = None, retrier: Retrier | None = None,
                 timeout_s: float = 30.0, account: str = "") -> None:
        expiry = credentials.get("expiry")
        parsed = datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None
        self._creds = Credentials(
            token=credentials.get("token"), refresh_token=credentials.get("refresh_token"),
            token_uri=token_uri or credentials.get("token_uri") or TOKEN_URI, client_id=client_id,
            client_secret=client_secret, scopes=list(SCOPES),
            # google-auth compares against a naive UTC now
            expiry=parsed.astimezone(timezone.utc).replace(tzinfo=None) if parsed else None)
        self._http = google_auth_httplib2.AuthorizedHttp(self._creds, http=httplib2.Http(timeout=timeout_s))
        options = {"api_endpoint": api_endpoint} if api_endpoint else None
        self._service = build("calendar", "v3", http=self._http, client_options=options, static_discovery=True,
                              cache_discovery=False)
        self.retrier = retrier or Retrier()
        self.account = account

    @classmethod
    def from_settings(cls, settings: Any, credentials: dict[str, Any], **kwargs: Any) -> "GoogleConnector":
        client_id = getattr(settings, "google_client_id", None) or credentials.get("client_id")
        client_secret = getattr(settings, "google_client_secret", None) or credentials.get("client_secret")
        if not client_id or not client_secret:
            raise ConnectorError("Google is not configured: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET")
        # deployment knobs (a local fake in tests and demos): settings attributes when present, else Google's own
        for option in ("api_endpoint", "token_uri"):
            value = getattr(settings, f"google_{option}", None)
            if value:
                kwargs.setdefault(option, value)
        return cls(credentials, client_id=client_id, client_secret=client_secret, **kwargs)

    def close(self) -> None:
        for conn in list(getattr(self._http.http, "connections", {}).values()):
            conn.close()

    @property
    def credentials(self) -> dict[str, Any]:
        expiry = self._creds.expiry
        return {"token": self._creds.token, "refresh_token": self._creds.refresh_token,
                "token_uri": self._creds.token_uri,
                "expiry": expiry.replace(tzinfo=timezone.utc).isoformat() if expiry else None}

    # -------------------------------------------------------------------------------------------- plumbing
    def _execute(self, request_fn: Callable[[], Any], what: str, *, calendar_id: str = "") -> Any:
        """Run one API request with retries, translating failures into the Protocol's errors."""
        def once() -> Any:
            try:
                return request_fn().execute(num_retries=0)
            except HttpError as exc:
                raise self._translate(exc, what, calendar_id) from None
            except google.auth.exceptions.TransportError as exc:
                raise ProviderUnavailable(f"Google token endpoint unreachable during {what}: "
                                          f"{type(exc).__name__}") from None
            except google.auth.exceptions.RefreshError as exc:
                reason = exc.args[0] if exc.args else "refresh failed"
                if isinstance(reason, str) and "invalid_grant" in reason or _is_invalid_grant(exc):
                    raise AuthExpired(f"Google access for {self.account or 'this account'} was revoked or expired "
                                      "(invalid_grant); reconnect Google Calendar from the Calendars page") from None
                raise ProviderUnavailable(f"Google token refresh failed for {what}; will retry") from None
            except (httplib2.HttpLib2Error, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                raise ProviderUnavailable(f"Google unreachable during {what}: {type(exc).__name__}") from None

        return self.retrier.call(once, f"google {what}")

    def _translate(self, exc: HttpError, what: str, calendar_id: str) -> Exception:
        status = exc.resp.status
        reason = ""
        try:
            body = json.loads(exc.content or b"{}")
            errors = body.get("error", {}).get("errors") or [{}]
            reason = errors[0].get("reason", "")
        except (ValueError, AttributeError):
            pass
        where = f" (calendar {calendar_id})" if calendar_id else ""
        if status == 410 and reason != "deleted":
            return CursorInvalid(f"Google sync token expired{where}; a full sync is needed")
        if status == 429 or (status == 403 and reason in _RATE_REASONS):
            return RateLimited(f"Google rate limit ({reason or status}) during {what}{where}",
                               parse_retry_after(exc.resp.get("retry-after")))
        if status == 401:
            return AuthExpired(f"Google rejected the credentials during {what}; reconnect Google Calendar")
        if status >= 500:
            return ProviderUnavailable(f"Google answered {status} during {what}{where}; will retry")
        error = ConnectorError(f"Google answered {status} {reason} during {what}{where}")
        error.status = status  # type: ignore[attr-defined]
        return error

    # -------------------------------------------------------------------------------------------- verbs
    def list_calendars(self) -> list[CalendarInfo]:
        out: list[CalendarInfo] = []
        token = None
        while True:
            page = self._execute(lambda: self._service.calendarList().list(pageToken=token), "calendarList.list")
            for item in page.get("items", []):
                out.append(CalendarInfo(external_id=item["id"], name=item.get("summaryOverride") or
                                        item.get("summary", ""), primary=bool(item.get("primary")),
                                        read_only=item.get("accessRole") not in ("owner", "writer"),
                                        timezone=item.get("timeZone")))
            token = page.get("nextPageToken")
            if not token:
                return out

    def changes(self, calendar_id: str, cursor: str | None, *, window_start: datetime,
                window_end: datetime) -> Changes:
        state = _read_cursor(cursor)
        if state is None or datetime.fromisoformat(state["until"]) < window_end:
            if state is not None:
                log.info("google %s: horizon moves past %s, running a full sync", calendar_id, state["until"])
            return self._full(calendar_id, window_start, window_end + HORIZON_SLACK)
        changes = Changes(full=False)
        sync_token = self._collect(calendar_id, changes, {"syncToken": state["sync"]})
        changes.cursor = json.dumps({"sync": sync_token, "until": state["until"]})
        return changes

    def _full(self, calendar_id: str, start: datetime, until: datetime) -> Changes:
        changes = Changes(full=True)
        sync_token = self._collect(calendar_id, changes, {"timeMin": _rfc3339(start), "timeMax": _rfc3339(until)})
        changes.cursor = json.dumps({"sync": sync_token, "until": until.astimezone(timezone.utc).isoformat()})
        return changes

    def _collect(self, calendar_id: str, changes: Changes, params: dict[str, Any]) -> str:
        """Read every page; returns the nextSyncToken from the last one."""
        page_token: str | None = None
        while True:
            kwargs = dict(params, calendarId=calendar_id, singleEvents=True, maxResults=PAGE_SIZE)
            if page_token:
                kwargs["pageToken"] = page_token
            page = self._execute(lambda: self._service.events().list(**kwargs), "events.list",
                                 calendar_id=calendar_id)
            tz = page.get("timeZone") or "UTC"
            for item in page.get("items", []):
                self._absorb(calendar_id, item, tz, changes)
            page_token = page.get("nextPageToken")
            if not page_token:
                token = page.get("nextSyncToken")
                if not token:
                    raise ProviderUnavailable(f"Google returned no nextSyncToken for calendar {calendar_id}")
                return token

    def _absorb(self, calendar_id: str, item: dict[str, Any], tz: str, changes: Changes) -> None:
        try:
            if item.get("status") == "cancelled":
                if item.get("recurringEventId") and item.get("originalStartTime"):
                    changes.upserted.append(self._occurrence(item, tz, cancelled=True))
                else:
                    changes.deleted_uids.append(item["id"])
                return
            changes.upserted.append(self._occurrence(item, tz))
        except (KeyError, ValueError, TypeError) as exc:
            changes.skipped.append(f"calendar {calendar_id} event {item.get('id', '?')}: {type(exc).__name__} "
                                   f"{exc}")
            log.warning("google %s: skipped malformed event %s: %s", calendar_id, item.get("id", "?"), exc)

    def _occurrence(self, item: dict[str, Any], tz: str, *, cancelled: bool = False) -> EventOccurrence:
        series = item.get("recurringEventId") or ""
        recurrence_id = ""
        if series:
            original, _ = _parse_time(item["originalStartTime"], tz)
            recurrence_id = original.isoformat()
        if cancelled:  # a deleted occurrence may carry nothing but its original start
            start = datetime.fromisoformat(recurrence_id)
            return EventOccurrence(uid=series, recurrence_id=recurrence_id, starts_at=start, ends_at=start,
                                   status="cancelled", etag=item.get("etag", ""))
        starts_at, all_day = _parse_time(item["start"], tz)
        ends_at, _ = _parse_time(item["end"], tz)
        video = ""
        for entry in (item.get("conferenceData") or {}).get("entryPoints", []):
            if entry.get("entryPointType") == "video" and entry.get("uri"):
                video = entry["uri"]
                break
        link = find_meeting_link(video, item.get("hangoutLink"), item.get("location"),
                                 item.get("description")) or video
        attendees = tuple(
            Attendee(email=a.get("email", "").lower(), name=a.get("displayName", ""),
                     status=_STATUS.get(a.get("responseStatus", ""), "needs-action"),
                     is_organizer=bool(a.get("organizer")))
            for a in item.get("attendees", []) if a.get("email") and not a.get("resource"))
        return EventOccurrence(
            uid=series or item["id"], recurrence_id=recurrence_id, starts_at=starts_at, ends_at=ends_at,
            title=item.get("summary", ""), description=item.get("description", ""),
            location=item.get("location", ""), meeting_link=link, attendees=attendees,
            organizer_email=(item.get("organizer") or {}).get("email", "").lower(), all_day=all_day,
            status=item.get("status", "confirmed"), etag=item.get("etag", ""))

    def busy(self, calendar_ids: list[str], start: datetime, end: datetime) -> list[BusyInterval]:
        body = {"timeMin": _rfc3339(start), "timeMax": _rfc3339(end), "items": [{"id": c} for c in calendar_ids]}
        result = self._execute(lambda: self._service.freebusy().query(body=body), "freebusy.query")
        out = []
        for cal, info in result.get("calendars", {}).items():
            if info.get("errors"):
                log.warning("google freebusy: calendar %s: %s", cal, info["errors"][0].get("reason"))
            for b in info.get("busy", []):
                out.append(BusyInterval(datetime.fromisoformat(b["start"].replace("Z", "+00:00")),
                                        datetime.fromisoformat(b["end"].replace("Z", "+00:00"))))
        return merge(out)

    def _body(self, draft: EventDraft) -> dict[str, Any]:
        zone = draft.timezone or "UTC"
        body: dict[str, Any] = {
            "summary": draft.title, "description": draft.description, "location": draft.location,
            "start": {"dateTime": draft.starts_at.astimezone(_zone(zone)).isoformat(), "timeZone": zone},
            "end": {"dateTime": draft.ends_at.astimezone(_zone(zone)).isoformat(), "timeZone": zone},
            "attendees": [{"email": a.email, **({"displayName": a.name} if a.name else {})}
                          for a in draft.attendees]}
        if draft.meeting_link and not draft.location:
            body["location"] = draft.meeting_link
        if draft.request_conference:
            body["conferenceData"] = {"createRequest": {"requestId": uuid.uuid4().hex,
                                                        "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
        return body

    def create_event(self, calendar_id: str, draft: EventDraft) -> EventOccurrence:
        body = self._body(draft)
        item = self._execute(lambda: self._service.events().insert(
            calendarId=calendar_id, body=body, conferenceDataVersion=1, sendUpdates="none"), "events.insert",
            calendar_id=calendar_id)
        return self._occurrence(item, draft.timezone or "UTC")

    def update_event(self, calendar_id: str, uid: str, draft: EventDraft) -> EventOccurrence:
        body = self._body(draft)
        item = self._execute(lambda: self._service.events().patch(
            calendarId=calendar_id, eventId=uid, body=body, conferenceDataVersion=1, sendUpdates="none"),
            "events.patch", calendar_id=calendar_id)
        return self._occurrence(item, draft.timezone or "UTC")

    def delete_event(self, calendar_id: str, uid: str) -> None:
        try:
            self._execute(lambda: self._service.events().delete(calendarId=calendar_id, eventId=uid,
                                                                sendUpdates="none"),
                          "events.delete", calendar_id=calendar_id)
        except ConnectorError as exc:
            if getattr(exc, "status", None) in (404, 410):
                log.info("google %s: event %s was already gone", calendar_id, uid)
                return
            raise

    def watch(self, calendar_id: str, callback_url: str) -> Watch | None:
        secret = secrets.token_urlsafe(32)
        body = {"id": str(uuid.uuid4()), "type": "web_hook", "address": callback_url, "token": secret,
                "params": {"ttl": str(int(WATCH_TTL.total_seconds()))}}
        channel = self._execute(lambda: self._service.events().watch(calendarId=calendar_id, body=body),
                                "events.watch", calendar_id=calendar_id)
        expires = datetime.fromtimestamp(int(channel["expiration"]) / 1000, timezone.utc)
        return Watch(channel_id=channel["id"], resource_id=channel["resourceId"], expires_at=expires, secret=secret)

    def unwatch(self, watch: Watch) -> None:
        try:
            self._execute(lambda: self._service.channels().stop(
                body={"id": watch.channel_id, "resourceId": watch.resource_id}), "channels.stop")
        except ConnectorError as exc:
            if getattr(exc, "status", None) == 404:
                return
            raise


def _is_invalid_grant(exc: Exception) -> bool:
    for arg in exc.args:
        if isinstance(arg, dict) and arg.get("error") == "invalid_grant":
            return True
        if isinstance(arg, str) and "invalid_grant" in arg:
            return True
    return False


def _read_cursor(cursor: str | None) -> dict[str, str] | None:
    if not cursor:
        return None
    try:
        state = json.loads(cursor)
        if isinstance(state, dict) and state.get("sync") and state.get("until"):
            return state
    except ValueError:
        pass
    log.warning("google: unreadable cursor, running a full sync")
    return None


register(GoogleConnector)
