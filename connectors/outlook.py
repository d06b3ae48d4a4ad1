"""Outlook / Microsoft 365 calendars: tokens through msal, Microsoft Graph over plain HTTP (requests).

Sync uses ``/me/calendars/{id}/calendarView/delta``: the first round (a full sync) names a time window and follows
``@odata.nextLink`` until an ``@odata.deltaLink``; the whole deltaLink is kept in the cursor and the next sync just
GETs it. ``@removed`` entries are deletions. A 410 or ``syncStateNotFound``/``resyncRequired`` means the delta
state is gone: ``CursorInvalid``, and the sync engine does one full sync.

The delta window is fixed by the round's first request, so the horizon cannot roll forward inside a round. The
cursor records the end of the window the round covers; when the caller's window reaches past it, a new full delta
round starts, fetching ``HORIZON_SLACK`` further so that happens about once a week.

Occurrences of a series are listed by calendarView one by one, each with its own id plus ``seriesMasterId`` and
``originalStart``; they become ``uid = seriesMasterId`` and ``recurrence_id = originalStart`` (UTC ISO), like every
other connector. A deleted occurrence comes back as ``@removed`` with nothing but its own opaque id, so the cursor
also carries a compact index of the series occurrences in the window (a short hash of each occurrence id → series
and original start): a removal then becomes a cancelled occurrence of the right series, without a database.

Graph allows four concurrent requests per app per mailbox; ``MailboxLimiter`` keeps this process under that, and a
429 with Retry-After is honoured (``Retrier``). Times come back with Windows zone names at times
("Romance Standard Time"): they are mapped to IANA with the CLDR table icalendar ships.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msal
import requests
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from connectors.base import (Attendee, AuthExpired, BusyInterval, CalendarInfo, Changes, ConnectorError,
                             CursorInvalid, EventDraft, EventOccurrence, ProviderUnavailable, RateLimited, Watch)
from connectors.http_retry import MailboxLimiter, Retrier, parse_retry_after, shared_limiter
from connectors.intervals import merge
from connectors.meeting_links import find_meeting_link
from connectors.registry import register

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com/v1.0"
LOGIN_URL = "https://login.microsoftonline.com"
SCOPES = ["Calendars.ReadWrite", "User.Read"]  # msal adds openid, profile and offline_access itself
HORIZON_SLACK = timedelta(days=7)
PAGE_SIZE = 500
# Outlook resources: a subscription lives at most 10,080 minutes; ask for a little less so clocks can disagree.
SUBSCRIPTION_LIFETIME = timedelta(minutes=10080 - 60)
_RESYNC_CODES = {"syncstatenotfound", "syncstateinvalid", "resyncrequired"}
_RESPONSE = {"accepted": "accepted", "declined": "declined", "tentativelyAccepted": "tentative",
             "organizer": "accepted"}
_FREE = {"free", "workingElsewhere"}


def iana_zone(name: str | None) -> ZoneInfo:
    """A ZoneInfo for an IANA or Windows zone name ("Romance Standard Time" → Europe/Paris); UTC when unknown."""
    if not name:
        return ZoneInfo("UTC")
    mapped = WINDOWS_TO_OLSON.get(name, name)
    try:
        return ZoneInfo(mapped)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("outlook: unknown time zone %r, reading the time as UTC", name)
        return ZoneInfo("UTC")


def parse_datetime_timezone(part: dict[str, Any]) -> datetime:
    """A Graph ``dateTimeTimeZone`` ({"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": ...}) in UTC."""
    text = part["dateTime"]
    if "." in text:  # Graph sends 7 fractional digits; Python reads at most 6
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=iana_zone(part.get("timeZone")))
    return value.astimezone(timezone.utc)


def make_app(client_id: str, client_secret: str, *, authority: str, http_client: requests.Session | None = None,
             cache: msal.SerializableTokenCache | None = None) -> msal.ConfidentialClientApplication:
    """The msal app. Authorities outside login.microsoftonline.com (a test fake) skip instance discovery."""
    known = authority.startswith(LOGIN_URL)
    return msal.ConfidentialClientApplication(
        client_id, client_credential=client_secret, authority=authority,
        token_cache=cache if cache is not None else msal.SerializableTokenCache(),
        http_client=http_client, instance_discovery=None if known else False)


def start_authorization(app: msal.ConfidentialClientApplication, redirect_uri: str,
                        state: str | None = None) -> dict[str, Any]:
    """Begin the authorization-code flow (PKCE, nonce). Keep the returned flow in the session; send the owner to
    ``flow["auth_uri"]``. Microsoft answers with ``response_mode=form_post`` (RFC 9700 4.3.1, msal's advice): the
    redirect URI receives a POST with ``code`` and ``state`` in the form body, so that view takes POST and is
    exempt from CSRF (the flow's ``state`` is the check)."""
    return app.initiate_auth_code_flow(SCOPES, redirect_uri=redirect_uri, state=state, prompt="select_account",
                                       response_mode="form_post")


def finish_authorization(app: msal.ConfidentialClientApplication, flow: dict[str, Any],
                         query: dict[str, str]) -> dict[str, Any]:
    """Complete the flow with the redirect's query parameters; returns the credentials dict the connector takes."""
    result = app.acquire_token_by_auth_code_flow(flow, query, scopes=SCOPES)
    if "error" in result:
        raise AuthExpired(f"Microsoft refused the sign-in ({result.get('error')}); start the connection again "
                          "from the Calendars page")
    claims = result.get("id_token_claims") or {}
    accounts = app.get_accounts()
    home = accounts[0]["home_account_id"] if accounts else ""
    cache = app.token_cache
    return {"token_cache": cache.serialize(),  # type: ignore[attr-defined]
            "home_account_id": home, "account": claims.get("preferred_username", "")}


class OutlookConnector:
    """One Microsoft mailbox. ``credentials``: ``token_cache`` (msal's serialized cache) and ``home_account_id``,
    as ``finish_authorization`` returns them. A bare ``refresh_token`` (what a hand-rolled auth-code exchange
    stores) is accepted too: msal redeems it once (``acquire_token_by_refresh_token``, meant for migrating tokens
    into msal) and from then on ``credentials`` returns the cache form."""

    key: ClassVar[str] = "outlook"

    def __init__(self, credentials: dict[str, Any], *, client_id: str, client_secret: str,
                 authority: str = f"{LOGIN_URL}/common", graph_url: str = GRAPH_URL,
                 session: requests.Session | None = None, retrier: Retrier | None = None,
                 limiter: MailboxLimiter = shared_limiter, timeout_s: float = 30.0) -> None:
        self._cache = msal.SerializableTokenCache()
        if credentials.get("token_cache"):
            self._cache.deserialize(credentials["token_cache"])
        self._home = credentials.get("home_account_id", "")
        self._bare_refresh_token = "" if credentials.get("token_cache") else credentials.get("refresh_token", "")
        self.account = credentials.get("account", "")
        self._own_session = session is None
        self._session = session or requests.Session()
        self._app = make_app(client_id, client_secret, authority=authority, http_client=self._session,
                             cache=self._cache)
        self.graph_url = graph_url.rstrip("/")
        self.retrier = retrier or Retrier()
        self.limiter = limiter
        self.timeout_s = timeout_s
        self._token: str | None = None

    @classmethod
    def from_settings(cls, settings: Any, credentials: dict[str, Any], **kwargs: Any) -> "OutlookConnector":
        if not settings.microsoft_client_id or not settings.microsoft_client_secret:
            raise ConnectorError("Microsoft is not configured: set MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET")
        kwargs.setdefault("authority", getattr(settings, "microsoft_authority", None)
                          or f"{LOGIN_URL}/{settings.microsoft_tenant}")
        if getattr(settings, "microsoft_graph_url", None):
            kwargs.setdefault("graph_url", settings.microsoft_graph_url)
        return cls(credentials, client_id=settings.microsoft_client_id,
                   client_secret=settings.microsoft_client_secret, **kwargs)

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    @property
    def credentials(self) -> dict[str, Any]:
        return {"token_cache": self._cache.serialize(), "home_account_id": self._home, "account": self.account}

    # -------------------------------------------------------------------------------------------- plumbing
    def _access_token(self, *, force: bool = False) -> str:
        if self._token and not force:
            return self._token
        accounts = self._app.get_accounts()
        account = next((a for a in accounts if a.get("home_account_id") == self._home), None) or (
            accounts[0] if accounts else None)
        if account is None and self._bare_refresh_token:
            return self._redeem_bare_refresh_token()
        if account is None:
            raise AuthExpired(f"no Microsoft sign-in stored for {self.account or 'this mailbox'}; reconnect Outlook "
                              "from the Calendars page")
        try:
            result = self._app.acquire_token_silent_with_error(SCOPES, account, force_refresh=force)
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"Microsoft sign-in unreachable: {type(exc).__name__}") from None
        if not result:
            raise AuthExpired(f"the Microsoft sign-in for {self.account or 'this mailbox'} expired; reconnect "
                              "Outlook from the Calendars page")
        if "error" in result:
            if result["error"] in ("invalid_grant", "interaction_required", "invalid_client"):
                raise AuthExpired(f"Microsoft access for {self.account or 'this mailbox'} was revoked or expired "
                                  f"({result['error']}); reconnect Outlook from the Calendars page")
            raise ProviderUnavailable(f"Microsoft token refresh failed ({result['error']}); will retry")
        self._token = result["access_token"]
        return self._token

    def _redeem_bare_refresh_token(self) -> str:
        try:
            result = self._app.acquire_token_by_refresh_token(self._bare_refresh_token, SCOPES)
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"Microsoft sign-in unreachable: {type(exc).__name__}") from None
        if "error" in result:
            if result["error"] in ("invalid_grant", "interaction_required", "invalid_client"):
                raise AuthExpired(f"Microsoft access for {self.account or 'this mailbox'} was revoked or expired "
                                  f"({result['error']}); reconnect Outlook from the Calendars page")
            raise ProviderUnavailable(f"Microsoft token refresh failed ({result['error']}); will retry")
        self._bare_refresh_token = ""
        accounts = self._app.get_accounts()
        if accounts:
            self._home = accounts[0]["home_account_id"]
            self.account = self.account or accounts[0].get("username", "")
        self._token = result["access_token"]
        return self._token

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        """One Graph call with the mailbox limit, one token refresh on 401, retries, and the Protocol's errors."""
        headers = dict(kwargs.pop("headers", {}))

        def send(token: str) -> requests.Response:
            with self.limiter.slot(self._home or self.account or "mailbox"):
                try:
                    return self._session.request(method, url, timeout=self.timeout_s,
                                                 headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs)
                except requests.RequestException as exc:
                    raise ProviderUnavailable(f"Microsoft Graph unreachable during {what}: "
                                              f"{type(exc).__name__}") from None

        def once() -> requests.Response:
            resp = send(self._access_token())
            if resp.status_code == 401:
                resp = send(self._access_token(force=True))
                if resp.status_code == 401:
                    raise AuthExpired(f"Microsoft Graph rejected the credentials during {what}; reconnect Outlook")
            if resp.status_code < 400:
                return resp
            raise self._translate(resp, what)

        return self.retrier.call(once, f"graph {what}")

    @staticmethod
    def _translate(resp: requests.Response, what: str) -> Exception:
        code = ""
        try:
            code = resp.json().get("error", {}).get("code", "")
        except ValueError:
            pass
        status = resp.status_code
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if status == 410 or code.lower() in _RESYNC_CODES:
            return CursorInvalid(f"Microsoft Graph delta state expired ({code or status}) during {what}; "
                                 "a full sync is needed")
        if status == 429:
            return RateLimited(f"Microsoft Graph throttled {what} ({code or 429})", retry_after)
        if status >= 500:
            error = ProviderUnavailable(f"Microsoft Graph answered {status} during {what}; will retry")
            error.retry_after_s = retry_after  # type: ignore[attr-defined]
            return error
        error = ConnectorError(f"Microsoft Graph answered {status} {code} during {what}")
        error.status = status  # type: ignore[attr-defined]
        return error

    def _get_json(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        return self._request("GET", url, what, **kwargs).json()

    # -------------------------------------------------------------------------------------------- verbs
    def list_calendars(self) -> list[CalendarInfo]:
        out: list[CalendarInfo] = []
        url: str | None = f"{self.graph_url}/me/calendars"
        while url:
            page = self._get_json(url, "calendars")
            for item in page.get("value", []):
                out.append(CalendarInfo(external_id=item["id"], name=item.get("name", ""),
                                        primary=bool(item.get("isDefaultCalendar")),
                                        read_only=not item.get("canEdit", True)))
            url = page.get("@odata.nextLink")
        return out

    def changes(self, calendar_id: str, cursor: str | None, *, window_start: datetime,
                window_end: datetime) -> Changes:
        state = _read_cursor(cursor)
        if state is None or datetime.fromisoformat(state["until"]) < window_end:
            until = window_end + HORIZON_SLACK
            query = urlencode({"startDateTime": _iso(window_start), "endDateTime": _iso(until)})
            url = f"{self.graph_url}/me/calendars/{quote(calendar_id, safe='')}/calendarView/delta?{query}"
            changes, series = Changes(full=True), SeriesIndex()
        else:
            url, until, changes = state["delta_link"], datetime.fromisoformat(state["until"]), Changes(full=False)
            series = SeriesIndex.load(state.get("series"))
        headers = {"Prefer": f"odata.maxpagesize={PAGE_SIZE}"}
        while True:
            page = self._get_json(url, "calendarView/delta", headers=headers)
            for item in page.get("value", []):
                self._absorb(calendar_id, item, changes, series)
            if page.get("@odata.nextLink"):
                url = page["@odata.nextLink"]
                continue
            delta_link = page.get("@odata.deltaLink")
            if not delta_link:
                raise ProviderUnavailable(f"Microsoft Graph returned no deltaLink for calendar {calendar_id}")
            changes.cursor = json.dumps({"delta_link": delta_link,
                                         "until": until.astimezone(timezone.utc).isoformat(),
                                         "series": series.dump()}, separators=(",", ":"))
            return changes

    def _absorb(self, calendar_id: str, item: dict[str, Any], changes: Changes, series: "SeriesIndex") -> None:
        if "@removed" in item:
            member = series.pop(item["id"])
            if member is None:
                changes.deleted_uids.append(item["id"])
            else:  # one occurrence of a series went away: cancel that occurrence, not the series
                master, original = member
                changes.upserted.append(EventOccurrence(uid=master, recurrence_id=original.isoformat(),
                                                        starts_at=original, ends_at=original, status="cancelled"))
            return
        if item.get("type") == "seriesMaster":
            return
        try:
            occurrence = self._occurrence(item)
            if occurrence.recurrence_id:
                series.add(item["id"], occurrence.uid, datetime.fromisoformat(occurrence.recurrence_id))
            changes.upserted.append(occurrence)
        except (KeyError, ValueError, TypeError) as exc:
            changes.skipped.append(f"calendar {calendar_id} event {item.get('id', '?')}: {type(exc).__name__} {exc}")
            changes.skipped_uids.append(item.get("id", ""))
            log.warning("outlook %s: skipped malformed event %s: %s", calendar_id, item.get("id", "?"), exc)

    def _occurrence(self, item: dict[str, Any]) -> EventOccurrence:
        all_day = bool(item.get("isAllDay"))
        if all_day:  # midnight-to-midnight in the event's own zone
            zone = iana_zone(item.get("originalStartTimeZone"))
            starts_at = _local_midnight(item["start"], zone)
            ends_at = _local_midnight(item["end"], zone)
        else:
            starts_at = parse_datetime_timezone(item["start"])
            ends_at = parse_datetime_timezone(item["end"])
        recurrence_id = ""
        if item.get("seriesMasterId") and item.get("originalStart"):
            original = datetime.fromisoformat(item["originalStart"].replace("Z", "+00:00"))
            recurrence_id = original.astimezone(timezone.utc).isoformat()
        join_url = (item.get("onlineMeeting") or {}).get("joinUrl") or ""
        location = (item.get("location") or {}).get("displayName", "")
        body = item.get("body") or {}
        description = body.get("content", "") if body.get("contentType") == "text" else item.get("bodyPreview", "")
        link = find_meeting_link(join_url, location, body.get("content", "")) or join_url
        organizer = ((item.get("organizer") or {}).get("emailAddress") or {}).get("address", "").lower()
        attendees = []
        for a in item.get("attendees") or []:
            email = ((a.get("emailAddress") or {}).get("address") or "").lower()
            if not email or a.get("type") == "resource":
                continue
            response = (a.get("status") or {}).get("response", "none")
            attendees.append(Attendee(email=email, name=(a.get("emailAddress") or {}).get("name", ""),
                                      status=_RESPONSE.get(response, "needs-action"),
                                      is_organizer=response == "organizer" or email == organizer))
        return EventOccurrence(
            uid=item.get("seriesMasterId") or item["id"], recurrence_id=recurrence_id, starts_at=starts_at, ends_at=ends_at,
            title=item.get("subject") or "", description=description, location=location, meeting_link=link,
            attendees=tuple(attendees), organizer_email=organizer, all_day=all_day,
            status="cancelled" if item.get("isCancelled") else "confirmed",
            etag=item.get("@odata.etag") or item.get("changeKey", ""))

    def busy(self, calendar_ids: list[str], start: datetime, end: datetime) -> list[BusyInterval]:
        def one(calendar_id: str) -> list[BusyInterval]:
            query = urlencode({"startDateTime": _iso(start), "endDateTime": _iso(end),
                               "$select": "start,end,showAs,isCancelled,isAllDay,originalStartTimeZone"})
            url: str | None = f"{self.graph_url}/me/calendars/{quote(calendar_id, safe='')}/calendarView?{query}"
            found = []
            while url:
                page = self._get_json(url, "calendarView", headers={"Prefer": f"odata.maxpagesize={PAGE_SIZE}"})
                for item in page.get("value", []):
                    if item.get("isCancelled") or item.get("showAs") in _FREE:
                        continue
                    occ = self._occurrence(item)
                    found.append(BusyInterval(max(occ.starts_at, start), min(occ.ends_at, end)))
                url = page.get("@odata.nextLink")
            return found

        with ThreadPoolExecutor(max_workers=min(4, max(1, len(calendar_ids)))) as pool:
            results = list(pool.map(one, calendar_ids))
        return merge(b for r in results for b in r)

    @staticmethod
    def _body(draft: EventDraft) -> dict[str, Any]:
        zone = draft.timezone or "UTC"
        tz = iana_zone(zone)
        body: dict[str, Any] = {
            "subject": draft.title, "body": {"contentType": "text", "content": draft.description},
            "start": {"dateTime": draft.starts_at.astimezone(tz).replace(tzinfo=None).isoformat(), "timeZone": zone},
            "end": {"dateTime": draft.ends_at.astimezone(tz).replace(tzinfo=None).isoformat(), "timeZone": zone},
            "location": {"displayName": draft.location or draft.meeting_link},
            "attendees": [{"emailAddress": {"address": a.email, "name": a.name}, "type": "required"}
                          for a in draft.attendees]}
        if draft.request_conference:
            body["isOnlineMeeting"] = True
            body["onlineMeetingProvider"] = "teamsForBusiness"
        return body

    def create_event(self, calendar_id: str, draft: EventDraft) -> EventOccurrence:
        url = f"{self.graph_url}/me/calendars/{quote(calendar_id, safe='')}/events"
        return self._occurrence(self._request("POST", url, "create event", json=self._body(draft)).json())

    def update_event(self, calendar_id: str, uid: str, draft: EventDraft) -> EventOccurrence:
        url = f"{self.graph_url}/me/events/{quote(uid, safe='')}"
        return self._occurrence(self._request("PATCH", url, "update event", json=self._body(draft)).json())

    def delete_event(self, calendar_id: str, uid: str) -> None:
        try:
            self._request("DELETE", f"{self.graph_url}/me/events/{quote(uid, safe='')}", "delete event")
        except ConnectorError as exc:
            if getattr(exc, "status", None) in (404, 410):
                log.info("outlook %s: event %s was already gone", calendar_id, uid)
                return
            raise

    def watch(self, calendar_id: str, callback_url: str) -> Watch | None:
        secret = secrets.token_urlsafe(32)  # clientState: at most 128 characters
        expires = datetime.now(timezone.utc).replace(microsecond=0) + SUBSCRIPTION_LIFETIME
        body = {"changeType": "created,updated,deleted", "notificationUrl": callback_url,
                "lifecycleNotificationUrl": callback_url, "resource": f"me/calendars/{calendar_id}/events",
                "expirationDateTime": _iso(expires), "clientState": secret}
        sub = self._request("POST", f"{self.graph_url}/subscriptions", "create subscription", json=body).json()
        return Watch(channel_id=sub["id"], resource_id=sub.get("resource", body["resource"]),
                     expires_at=_parse_iso(sub["expirationDateTime"]), secret=secret)

    def renew_watch(self, watch: Watch, callback_url: str) -> Watch:
        """Push the subscription's expiry forward (same id and secret)."""
        expires = datetime.now(timezone.utc).replace(microsecond=0) + SUBSCRIPTION_LIFETIME
        sub = self._request("PATCH", f"{self.graph_url}/subscriptions/{watch.channel_id}", "renew subscription",
                            json={"expirationDateTime": _iso(expires)}).json()
        return Watch(channel_id=watch.channel_id, resource_id=watch.resource_id,
                     expires_at=_parse_iso(sub["expirationDateTime"]), secret=watch.secret)

    def unwatch(self, watch: Watch) -> None:
        try:
            self._request("DELETE", f"{self.graph_url}/subscriptions/{watch.channel_id}", "delete subscription")
        except ConnectorError as exc:
            if getattr(exc, "status", None) == 404:
                return
            raise


class SeriesIndex:
    """Occurrence id → (series master id, original start), kept in the cursor in a compact form: a 12-character
    hash of the occurrence id, the master's position in a list, and the original start in epoch seconds."""

    def __init__(self) -> None:
        self.masters: list[str] = []
        self._position: dict[str, int] = {}
        self.members: dict[str, list[int]] = {}

    @staticmethod
    def _key(occurrence_id: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(occurrence_id.encode()).digest()[:9]).decode()

    @classmethod
    def load(cls, data: Any) -> "SeriesIndex":
        index = cls()
        if isinstance(data, dict):
            index.masters = list(data.get("m", []))
            index._position = {m: n for n, m in enumerate(index.masters)}
            index.members = dict(data.get("o", {}))
        return index

    def dump(self) -> dict[str, Any]:
        used = sorted({v[0] for v in self.members.values()})
        remap = {old: new for new, old in enumerate(used)}
        return {"m": [self.masters[i] for i in used], "o": {k: [remap[v[0]], v[1]] for k, v in self.members.items()}}

    def add(self, occurrence_id: str, master: str, original: datetime) -> None:
        if master not in self._position:
            self._position[master] = len(self.masters)
            self.masters.append(master)
        self.members[self._key(occurrence_id)] = [self._position[master], int(original.timestamp())]

    def pop(self, occurrence_id: str) -> tuple[str, datetime] | None:
        found = self.members.pop(self._key(occurrence_id), None)
        if found is None or found[0] >= len(self.masters):
            return None
        return self.masters[found[0]], datetime.fromtimestamp(found[1], timezone.utc)


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _parse_iso(text: str) -> datetime:
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits):]
        text = f"{head}.{digits[:6]}{tail}"
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _local_midnight(part: dict[str, Any], zone: ZoneInfo) -> datetime:
    day = datetime.fromisoformat(part["dateTime"].split("T", 1)[0]).date()
    return datetime.combine(day, time(0), zone).astimezone(timezone.utc)


def _read_cursor(cursor: str | None) -> dict[str, str] | None:
    if not cursor:
        return None
    try:
        state = json.loads(cursor)
        if isinstance(state, dict) and state.get("delta_link") and state.get("until"):
            return state
    except ValueError:
        pass
    log.warning("outlook: unreadable cursor, running a full delta round")
    return None


register(OutlookConnector)
