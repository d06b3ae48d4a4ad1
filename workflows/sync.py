"""The one calendar sync engine: provider changes → appointments, through ``workflows.lifecycle``.

For one ``Calendar`` row: ask its connector for the changes since the stored cursor, decide which events are
appointments, upsert them idempotently, and store the new cursor in the same transaction as the changes (so a
crash between the two replays the same changes, which change nothing the second time).

Decisions (pure functions, where the tests go): ``client_email_for`` (is this event an appointment, and whose?),
``calendar_state_of`` (active / cancelled / declined), ``backoff_delay``.

Faults never lose or invent appointments:
- ``CursorInvalid`` → one full resync, at once; a second failure is a fault like any other.
- ``AuthExpired`` (or unreadable credentials) → the connection is marked ``needs_reconnect`` once, a
  ``needs_reconnect`` event is emitted once, and its calendars are not asked again until the owner reconnects.
- ``RateLimited`` / ``ProviderUnavailable`` / anything else → exponential backoff with jitter (Retry-After when
  the provider gives one); the cursor stays where it was and nothing local is deleted.
- Malformed events (``Changes.skipped_uids``) keep their local appointments as they are.

Domain events (``SyncResult.events``): new, moved, cancelled, declined, restored, needs_reconnect. Running the
same sync twice changes nothing and emits nothing.

Periodic work: ``sync_due(ctx)`` syncs every watched calendar whose ``next_sync_at`` has come (call it from the
dispatcher loop or a cron), ``enqueue_due(ctx)`` puts one RQ job per due calendar instead (deterministic job id
``sync-calendar-<id>``, so a calendar is never queued twice), and ``reagenda sync`` runs it by hand.
"""
from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import registry
from connectors.base import (AuthExpired, CalendarConnector, Changes, ConnectorError, CursorInvalid,
                             EventOccurrence, RateLimited)
from reagenda.runtime import Context
from store.crypto import CredentialsUnreadable, decrypt_credentials, encrypt_credentials
from store.models import Appointment, Calendar, CalendarConnection, Client, Owner
from workflows.lifecycle import NewAppointment, new_client, record_cancel, record_move, record_new_many
from workflows.steps import replan_appointment

log = logging.getLogger(__name__)

HORIZON_DAYS = 90  # recurring series are expanded this far ahead
LOOKBACK = timedelta(days=1)  # and from this far back, so today's appointments stay in view
HORIZON_SLACK = timedelta(days=7)  # a full resync when the horizon has moved this far past the last full sync
SYNC_INTERVAL = timedelta(minutes=5)  # the periodic sync of a healthy calendar
BACKOFF_BASE_S = 60.0
BACKOFF_MAX_S = 6 * 3600.0
APPLY_BATCH = 500  # events applied per flush; keeps memory flat on a first sync of a large calendar
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True)
class DomainEvent:
    kind: str  # new | moved | cancelled | declined | restored | needs_reconnect
    calendar_id: int
    appointment_id: int | None = None
    detail: str = ""


@dataclass
class SyncResult:
    calendar_id: int
    status: str  # ok | needs_reconnect | backoff | not_due | not_found
    full: bool = False
    events: list[DomainEvent] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str = ""
    fetch_s: float = 0.0  # time spent asking the provider (and parsing what it sent)
    store_s: float = 0.0  # time spent applying the changes to the store (appointments, their plans)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)

    def __str__(self) -> str:
        kinds = ("new", "moved", "cancelled", "declined", "restored")
        counts = ", ".join(f"{self.count(k)} {k}" for k in kinds if self.count(k))
        text = f"{self.status}{' (full sync)' if self.full else ''}: {counts or 'no changes'}"
        if self.skipped:
            text += f"; {len(self.skipped)} event(s) skipped as unreadable"
        return f"{text}; {self.error}" if self.error else text


# ------------------------------------------------------------------------------------------------ decisions


def client_email_for(occ: EventOccurrence, owner_emails: set[str], title_prefixes: Iterable[str] = ()) -> str:
    """The client of an event, or "" when the event is the owner's own busy time.

    An appointment has at least one attendee who is not the owner (the first such attendee is the client), or
    an organizer who is not the owner (the client invited the owner). An owner rule (a title prefix such as
    "Cita:") also makes an event an appointment when a client email appears in its description or location.
    """
    for attendee in occ.attendees:
        if attendee.email and attendee.email.lower() not in owner_emails:
            return attendee.email.lower()
    if occ.attendees and occ.organizer_email and occ.organizer_email.lower() not in owner_emails:
        return occ.organizer_email.lower()
    title = occ.title.strip().lower()
    if any(p and title.startswith(p.strip().lower()) for p in title_prefixes):
        for text in (occ.description, occ.location):
            for email in _EMAIL.findall(text or ""):
                if email.lower() not in owner_emails:
                    return email.lower()
    return ""


def calendar_state_of(occ: EventOccurrence, client_email: str) -> str:
    """What the calendar says about the appointment: active, cancelled (STATUS:CANCELLED) or declined (the
    client's RSVP is "declined", a cancellation signal)."""
    if occ.status == "cancelled":
        return "cancelled"
    for attendee in occ.attendees:
        if attendee.email.lower() == client_email and attendee.status == "declined":
            return "declined"
    return "active"


def backoff_delay(failures: int, retry_after_s: float | None = None, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``failures``-th fault in a row: exponential with full jitter, never less than
    the provider's Retry-After."""
    cap = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (2 ** max(0, failures - 1)))
    delay = (rng or random).uniform(cap / 2, cap)
    return max(delay, retry_after_s or 0.0)


def window_for(now: datetime, horizon_days: int = HORIZON_DAYS) -> tuple[datetime, datetime]:
    return now - LOOKBACK, now + timedelta(days=horizon_days)


# ------------------------------------------------------------------------------------------------ entry points


def connector_for(ctx: Context, connection: CalendarConnection, **options: Any) -> CalendarConnector:
    """Build the connection's connector from its decrypted credentials (``CredentialsUnreadable`` on a bad key)."""
    credentials = decrypt_credentials(ctx.settings.secret_key, connection.credentials)
    return registry.build(connection.provider, credentials, settings=ctx.settings, **options)


class SyncReport(list[SyncResult]):
    """The results of syncing several calendars; ``str()`` is one line an owner can read."""

    def __str__(self) -> str:
        if not self:
            return "no watched calendars to sync"
        return "; ".join(f"calendar {r.calendar_id}: {r}" for r in self)


def sync_connection(ctx: Context, connection_id: int, *, force: bool = True, **options: Any) -> SyncReport:
    """Sync every watched calendar of one connection now (the "sync now" button, a push notification)."""
    with ctx.session() as session:
        ids = list(session.scalars(select(Calendar.id).where(Calendar.connection_id == connection_id,
                                                             Calendar.watched.is_(True)).order_by(Calendar.id)))
    return SyncReport(sync_calendar(ctx, calendar_id, force=force, options=options) for calendar_id in ids)


def sync_calendar(ctx: Context, calendar_id: int, *, connector: CalendarConnector | None = None,
                  force: bool = False, options: dict[str, Any] | None = None) -> SyncResult:
    """Sync one calendar now. ``force`` ignores the backoff (not a ``needs_reconnect`` connection).
    ``connector`` replaces the one built from the stored credentials; ``options`` go to the registry."""
    now = ctx.clock.now()
    with ctx.session() as session:
        cal = session.get(Calendar, calendar_id)
        if cal is None:
            return SyncResult(calendar_id, "not_found")
        conn = session.get(CalendarConnection, cal.connection_id)
        assert conn is not None
        if conn.status == "needs_reconnect":
            return SyncResult(calendar_id, "needs_reconnect", error=conn.status_detail)
        if not force and cal.next_sync_at is not None and cal.next_sync_at > now:
            return SyncResult(calendar_id, "not_due")
        cursor, horizon_end, external_id = cal.cursor, cal.horizon_end, cal.external_id
        built = connector is None
        if connector is None:
            try:
                connector = connector_for(ctx, conn, **(options or {}))
            except (CredentialsUnreadable, ConnectorError) as exc:
                return _needs_reconnect(session, cal, conn, str(exc))
        owner = session.get(Owner, conn.owner_id)
        assert owner is not None
        owner_emails = {e.lower() for e in (owner.email, conn.account) if e}
    try:
        return _run(ctx, calendar_id, connector, cursor, horizon_end, external_id, owner_emails, now)
    finally:
        if built:
            close = getattr(connector, "close", None)
            if close is not None:
                close()


def _run(ctx: Context, calendar_id: int, connector: CalendarConnector, cursor: str | None,
         horizon_end: datetime | None, external_id: str, owner_emails: set[str], now: datetime) -> SyncResult:
    """Fetch, then store changes and the new cursor in one transaction (or record the fault)."""
    start, end = window_for(now)
    if cursor is not None and (horizon_end is None or end - horizon_end >= HORIZON_SLACK):
        log.info("calendar %s: horizon moved past the last full sync; doing a full sync", calendar_id)
        cursor = None
    t0 = time.perf_counter()
    try:
        try:
            changes = connector.changes(external_id, cursor, window_start=start, window_end=end)
        except CursorInvalid as exc:
            if cursor is None:
                raise
            log.info("calendar %s: %s; doing one full resync", calendar_id, exc)
            changes = connector.changes(external_id, None, window_start=start, window_end=end)
            changes.full = True
    except AuthExpired as exc:
        with ctx.session() as session:
            cal = session.get(Calendar, calendar_id)
            conn = session.get(CalendarConnection, cal.connection_id)  # type: ignore[union-attr]
            return _needs_reconnect(session, cal, conn, str(exc))  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - every other fault: back off, keep cursor and appointments
        retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
        with ctx.session() as session:
            cal = session.get(Calendar, calendar_id)
            assert cal is not None
            cal.sync_failures = (cal.sync_failures or 0) + 1
            delay = backoff_delay(cal.sync_failures, retry_after)
            cal.next_sync_at = now + timedelta(seconds=delay)
            cal.sync_error = _describe(exc)
        level = logging.WARNING if isinstance(exc, ConnectorError) else logging.ERROR
        log.log(level, "calendar %s: sync failed (%s); next try in %.0f s", calendar_id, _describe(exc), delay,
                exc_info=not isinstance(exc, ConnectorError))
        return SyncResult(calendar_id, "backoff", error=_describe(exc))

    t1 = time.perf_counter()
    result = SyncResult(calendar_id, "ok", full=changes.full, skipped=list(changes.skipped), fetch_s=t1 - t0)
    with ctx.session() as session:
        cal = session.get(Calendar, calendar_id)
        conn = session.get(CalendarConnection, cal.connection_id)  # type: ignore[union-attr]
        owner = session.get(Owner, conn.owner_id)  # type: ignore[union-attr]
        assert cal is not None and conn is not None and owner is not None
        prefixes = (owner.policy or {}).get("appointment_title_prefixes") or ()
        result.events = apply_changes(session, cal, owner, changes, owner_emails=owner_emails,
                                      title_prefixes=prefixes, now=now, window=(start, end))
        cal.cursor = changes.cursor
        cal.last_synced_at = now
        cal.sync_failures, cal.sync_error = 0, ""
        cal.next_sync_at = now + SYNC_INTERVAL
        if changes.full:
            cal.horizon_end = end
        fresh = connector.credentials
        if fresh and fresh != _credentials_or_none(ctx, conn):
            conn.credentials = encrypt_credentials(ctx.settings.secret_key, fresh)
    result.store_s = time.perf_counter() - t1
    log.debug("calendar %s: fetched in %.3f s, stored in %.3f s", calendar_id, result.fetch_s, result.store_s)
    for item in changes.skipped:
        log.warning("calendar %s: skipped %s", calendar_id, item)
    for event in result.events:
        log.info("calendar %s: %s appointment %s %s", calendar_id, event.kind, event.appointment_id, event.detail)
    return result


def sync_due(ctx: Context, *, limit: int | None = None, force: bool = False) -> list[SyncResult]:
    """Sync every watched calendar that is due (the periodic job); ``force``: every watched calendar, due or
    not. One calendar's fault never stops the others."""
    results = []
    for calendar_id in due_calendar_ids(ctx, limit=limit, include_not_due=force):
        try:
            results.append(sync_calendar(ctx, calendar_id, force=force))
        except Exception:  # noqa: BLE001 - e.g. the database went away mid-sync: log, carry on with the next
            log.exception("calendar %s: sync crashed", calendar_id)
            results.append(SyncResult(calendar_id, "backoff", error="crashed; see the log"))
    return results


def due_calendar_ids(ctx: Context, *, limit: int | None = None, include_not_due: bool = False) -> list[int]:
    """Watched calendars of healthy connections whose next sync has come, the longest-waiting first."""
    now = ctx.clock.now()
    with ctx.session() as session:
        query = (select(Calendar.id).join(CalendarConnection, CalendarConnection.id == Calendar.connection_id)
                 .where(Calendar.watched.is_(True), CalendarConnection.status != "needs_reconnect")
                 .order_by(Calendar.next_sync_at.is_not(None), Calendar.next_sync_at, Calendar.id))
        if not include_not_due:
            query = query.where((Calendar.next_sync_at.is_(None)) | (Calendar.next_sync_at <= now))
        if limit:
            query = query.limit(limit)
        return list(session.scalars(query))


def job_id(calendar_id: int) -> str:
    return f"sync-calendar-{calendar_id}"


def enqueue_due(ctx: Context) -> int:
    """Queue one sync job per due calendar on RQ (skipping calendars whose job is already queued or running)."""
    from rq.job import Job

    queue = ctx.queue()
    n = 0
    for calendar_id in due_calendar_ids(ctx):
        jid = job_id(calendar_id)
        job = Job.fetch(jid, connection=ctx.redis) if _job_exists(ctx, jid) else None
        if job is not None and job.get_status(refresh=False) in ("queued", "started", "deferred", "scheduled"):
            continue
        queue.enqueue("workflows.sync.sync_calendar_job", calendar_id, job_id=jid, result_ttl=0,
                      failure_ttl=3600, job_timeout=600)
        n += 1
    return n


def sync_calendar_job(calendar_id: int) -> str:
    """RQ entry point: sync one calendar with the worker's runtime context."""
    from reagenda import runtime

    result = sync_calendar(runtime.current(), calendar_id)
    return f"{result.status}: {len(result.events)} event(s)"


def _job_exists(ctx: Context, jid: str) -> bool:
    return bool(ctx.redis.exists(f"rq:job:{jid}"))


# ------------------------------------------------------------------------------------------------ applying


def apply_changes(session: Session, cal: Calendar, owner: Owner, changes: Changes, *, owner_emails: set[str],
                  title_prefixes: Iterable[str], now: datetime,
                  window: tuple[datetime, datetime]) -> list[DomainEvent]:
    """Make the calendar's appointments agree with ``changes``; return the domain events, in a stable order."""
    events: list[DomainEvent] = []
    prefixes = tuple(title_prefixes)
    protected = set(changes.skipped_uids)
    complete = set(changes.complete_uids)
    by_uid: dict[str, list[EventOccurrence]] = {}
    for occ in changes.upserted:
        by_uid.setdefault(occ.uid, []).append(occ)
    uids = sorted(set(by_uid) | complete | set(changes.deleted_uids))
    if changes.full:
        known = session.scalars(select(Appointment.external_uid).where(Appointment.calendar_id == cal.id).distinct())
        uids = sorted(set(uids) | set(known))
    deleted = set(changes.deleted_uids)
    clients = _Clients(session, owner, now) if by_uid else None
    for i in range(0, len(uids), APPLY_BATCH):
        chunk = uids[i:i + APPLY_BATCH]
        local = _local(session, cal.id, chunk)
        new: list[NewAppointment] = []  # recorded together at the end of the chunk
        # Queries inside the lifecycle functions need not flush what this loop changed; each chunk flushes once.
        with session.no_autoflush:
            for uid in chunk:
                if uid in protected:
                    continue
                mine = local.get(uid, {})
                seen: set[str] = set()
                for occ in by_uid.get(uid, ()):
                    seen.add(occ.recurrence_id)
                    assert clients is not None
                    event = _apply_one(session, cal, owner, occ, mine.get(occ.recurrence_id), owner_emails, prefixes,
                                       now, clients, new)
                    if event:
                        events.append(event)
                if uid in deleted or uid in complete or changes.full:
                    for rid, appt in sorted(mine.items()):
                        if rid in seen or not _in_scope(appt, window, now):
                            continue
                        event = _gone(session, cal, appt, now)
                        if event:
                            events.append(event)
        for appointment_id in record_new_many(session, owner, new, now):
            events.append(DomainEvent("new", cal.id, appointment_id))
        session.flush()
    return events


class _Clients:
    """The owner's clients by email, loaded once per sync instead of one query per new appointment."""

    def __init__(self, session: Session, owner: Owner, now: datetime) -> None:
        self.session, self.owner, self.now = session, owner, now
        self.by_email = {c.email: c for c in session.scalars(select(Client).where(Client.owner_id == owner.id))}

    def get(self, email: str, name: str) -> Client:
        client = self.by_email.get(email)
        if client is None:
            client = new_client(self.owner, email, name=name, now=self.now)  # flushed with its batch
            self.session.add(client)
            self.by_email[email] = client
        return client


def _apply_one(session: Session, cal: Calendar, owner: Owner, occ: EventOccurrence, appt: Appointment | None,
               owner_emails: set[str], prefixes: tuple[str, ...], now: datetime,
               clients: "_Clients", new: list[NewAppointment]) -> DomainEvent | None:
    """Apply one occurrence to its local appointment (if any). A new appointment is added to ``new`` for the
    caller to record with the rest of its batch."""
    email = client_email_for(occ, owner_emails, prefixes)
    if not email:
        if appt is not None:  # the client was removed from the event: it is busy time now, not an appointment
            return _gone(session, cal, appt, now)
        return None
    state = calendar_state_of(occ, email)
    if appt is None:
        if state != "active" or occ.ends_at <= now:
            return None  # never create a cancelled appointment, nor one that is already over
        name = next((a.name for a in occ.attendees if a.email.lower() == email), "")
        client = clients.get(email, name)
        new.append(NewAppointment(client=client, external_uid=occ.uid, starts_at=occ.starts_at, ends_at=occ.ends_at,
                                  title=occ.title, location=occ.location, meeting_link=occ.meeting_link,
                                  calendar_id=cal.id, recurrence_id=occ.recurrence_id))
        return None
    _refresh_details(appt, occ, now)
    if state != "active":
        if appt.calendar_state == state:
            return None
        appt.calendar_state = state
        if appt.status == "cancelled":
            return None
        record_cancel(session, appt, now=now)
        return DomainEvent("declined" if state == "declined" else "cancelled", cal.id, appt.id)
    if appt.status == "cancelled" and appt.calendar_state in ("cancelled", "declined", "gone"):
        appt.calendar_state = "active"
        _restore(session, appt, occ, now)
        return DomainEvent("restored", cal.id, appt.id)
    appt.calendar_state = "active"
    if (appt.starts_at, appt.ends_at) != (occ.starts_at, occ.ends_at) and appt.status == "scheduled":
        before = appt.starts_at
        record_move(session, appt, starts_at=occ.starts_at, ends_at=occ.ends_at, now=now)
        return DomainEvent("moved", cal.id, appt.id, f"from {before.isoformat()}")
    return None


def _gone(session: Session, cal: Calendar, appt: Appointment, now: datetime) -> DomainEvent | None:
    if appt.calendar_state == "gone":
        return None
    appt.calendar_state = "gone"
    if appt.status != "scheduled":
        return None
    record_cancel(session, appt, now=now)
    return DomainEvent("cancelled", cal.id, appt.id, "removed from the calendar")


def _restore(session: Session, appt: Appointment, occ: EventOccurrence, now: datetime) -> None:
    """Back in the calendar after the calendar cancelled it (re-accepted, un-deleted): scheduled again."""
    if (appt.starts_at, appt.ends_at) != (occ.starts_at, occ.ends_at):
        appt.starts_at, appt.ends_at = occ.starts_at, occ.ends_at
    appt.start_seen_at = now
    appt.status, appt.updated_at = "scheduled", now
    replan_appointment(session, appt, now)


def _refresh_details(appt: Appointment, occ: EventOccurrence, now: datetime) -> None:
    """Title, place and meeting link follow the calendar silently (they are read again when a message is sent)."""
    changed = False
    for attr, value in (("title", occ.title), ("location", occ.location), ("meeting_link", occ.meeting_link)):
        if getattr(appt, attr) != value:
            setattr(appt, attr, value)
            changed = True
    if changed:
        appt.updated_at = now


def _in_scope(appt: Appointment, window: tuple[datetime, datetime], now: datetime) -> bool:
    """Only future appointments inside the synced window can disappear; the past is history, not a cancellation."""
    return appt.starts_at > now and window[0] <= appt.starts_at < window[1]


def _local(session: Session, calendar_id: int, uids: list[str] | None) -> dict[str, dict[str, Appointment]]:
    query = select(Appointment).where(Appointment.calendar_id == calendar_id)
    if uids is not None:
        query = query.where(Appointment.external_uid.in_(uids))
    out: dict[str, dict[str, Appointment]] = {}
    for appt in session.scalars(query).unique():
        out.setdefault(appt.external_uid, {})[appt.recurrence_id] = appt
    return out


def _needs_reconnect(session: Session, cal: Calendar, conn: CalendarConnection, why: str) -> SyncResult:
    """Mark the connection once; later syncs of its calendars stop at the door until the owner reconnects."""
    events = []
    if conn.status != "needs_reconnect":
        conn.status, conn.status_detail = "needs_reconnect", why
        events.append(DomainEvent("needs_reconnect", cal.id, None, why))
        log.warning("connection %s (%s) needs reconnecting: %s", conn.id, conn.provider, why)
    return SyncResult(cal.id, "needs_reconnect", events=events, error=why)


def _credentials_or_none(ctx: Context, conn: CalendarConnection) -> dict[str, Any] | None:
    try:
        return decrypt_credentials(ctx.settings.secret_key, conn.credentials)
    except CredentialsUnreadable:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
