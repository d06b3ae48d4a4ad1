"""The one Protocol every calendar provider implements, and the plain data it returns.

Verbs follow Cal.com's Calendar interface: list calendars, changes since a cursor, busy intervals, create / update /
delete an event, and optional watch / unwatch for push notifications.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol


class ConnectorError(Exception):
    """Base class; messages name the provider, calendar and what to do, never a token."""


class AuthExpired(ConnectorError):
    """Credentials were revoked or expired for good (invalid_grant, 401 after refresh): needs reconnect."""


class CursorInvalid(ConnectorError):
    """The sync cursor is no longer valid (Google 410, Graph syncStateNotFound, CalDAV valid-sync-token):
    the caller clears it and does one full sync."""


class RateLimited(ConnectorError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderUnavailable(ConnectorError):
    """5xx, timeouts, connection errors: retry later with backoff."""


@dataclass(frozen=True)
class CalendarInfo:
    external_id: str
    name: str
    primary: bool = False
    read_only: bool = False
    timezone: str | None = None


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str = ""
    status: str = "needs-action"  # accepted | declined | tentative | needs-action
    is_organizer: bool = False


@dataclass(frozen=True)
class EventOccurrence:
    """One occurrence of an event, already expanded from its series, with times in UTC."""

    uid: str  # the provider's stable id for the series or single event
    recurrence_id: str  # "" for single events; the occurrence's original start (UTC, ISO) for series members
    starts_at: datetime
    ends_at: datetime
    title: str = ""
    description: str = ""
    location: str = ""
    meeting_link: str = ""
    attendees: tuple[Attendee, ...] = ()
    organizer_email: str = ""
    all_day: bool = False
    status: str = "confirmed"  # confirmed | tentative | cancelled
    etag: str = ""


@dataclass
class Changes:
    """What changed since a cursor. ``full`` is True when this was a full sync (everything not listed is gone)."""

    upserted: list[EventOccurrence] = field(default_factory=list)
    deleted_uids: list[str] = field(default_factory=list)  # whole events (all occurrences) removed
    cursor: str | None = None
    full: bool = False
    skipped: list[str] = field(default_factory=list)  # malformed items, described for the log
    # Events whose every occurrence inside the window is in ``upserted`` (a local occurrence of one of these that
    # is not listed is gone). Providers that send single changed instances (Google singleEvents) leave it empty.
    complete_uids: list[str] = field(default_factory=list)
    # Events that could not be read this time: their local appointments are kept as they are, never deleted.
    skipped_uids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BusyInterval:
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class EventDraft:
    """An event Reagenda books or moves in the owner's calendar."""

    title: str
    starts_at: datetime
    ends_at: datetime
    attendees: tuple[Attendee, ...] = ()
    description: str = ""
    location: str = ""
    meeting_link: str = ""
    request_conference: bool = False  # ask the provider for a Meet / Teams link
    timezone: str = "UTC"


@dataclass(frozen=True)
class Watch:
    channel_id: str
    resource_id: str
    expires_at: datetime
    secret: str


class CalendarConnector(Protocol):
    key: ClassVar[str]

    @property
    def credentials(self) -> dict[str, Any]:
        """The current credentials (possibly refreshed), for the caller to store encrypted."""

    def list_calendars(self) -> list[CalendarInfo]: ...

    def changes(self, calendar_id: str, cursor: str | None, *, window_start: datetime,
                window_end: datetime) -> Changes:
        """Events changed since ``cursor`` (None: full sync), expanded to occurrences inside the window."""

    def busy(self, calendar_ids: list[str], start: datetime, end: datetime) -> list[BusyInterval]: ...

    def create_event(self, calendar_id: str, draft: EventDraft) -> EventOccurrence: ...

    def update_event(self, calendar_id: str, uid: str, draft: EventDraft) -> EventOccurrence: ...

    def delete_event(self, calendar_id: str, uid: str) -> None:
        """Deleting an event that is already gone (404/410) is success."""

    def watch(self, calendar_id: str, callback_url: str) -> Watch | None:
        """Start push notifications; None when the provider has none."""

    def unwatch(self, watch: Watch) -> None: ...
