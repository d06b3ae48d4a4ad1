"""Booking a new appointment and moving an existing one, with no double booking and no half bookings.

Three short phases, so no database lock is held while a calendar provider is called:

1. **Hold** (one transaction under the owner's lock: ``pg_advisory_xact_lock`` on PostgreSQL; on SQLite the first
   statement is a write, which takes the database's single write lock): drop expired holds, refuse when the slot
   (with its buffers) overlaps a live hold or a scheduled appointment, insert a ``SlotHold``. Its
   UNIQUE(owner_id, starts_at) is the last line of defence should the lock ever be bypassed. Of N concurrent
   requests for one slot, exactly one gets past this phase.
2. **Re-check and write**: read free/busy live from every connected calendar, confirm the slot is still offered
   (``availability.is_bookable``), then create (or update) the event in the owner's calendar through its connector.
   Any connector failure releases the hold, marks the connection for the owner's banner, plans a note to the owner
   and raises ``CalendarUnavailable`` with a message the client can act on. Nothing is half booked.
3. **Record** (one transaction): ``workflows.lifecycle`` records the new or moved appointment (reminders re-plan,
   the deposit and its carry-over follow ``workflows.ledger``), the hold is deleted, and a confirmation step is
   planned. If recording fails, the event just written is deleted again (or moved back).

The web pages call ``offer_slots`` to show times and ``book`` / ``move`` to take one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from sqlalchemy import delete, select, text, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import (Attendee, AuthExpired, CalendarConnector, ConnectorError, EventDraft, EventOccurrence,
                             ProviderUnavailable, RateLimited)
from reagenda.runtime import Context
from store.db import is_postgres
from store.models import (Appointment, AppointmentType, BookingSettings, Calendar, CalendarConnection, Owner,
                          SlotHold, Step)
from workflows.availability import BookingRules, Busy, SlotShape, free_slots, is_bookable
from workflows.lifecycle import client_for, record_move, record_new
from workflows.steps import replan_appointment

log = logging.getLogger(__name__)

HOLD_TTL = timedelta(minutes=2)  # a hold left by a crashed request frees itself after this
LOCK_NAMESPACE = 7007  # first key of pg_advisory_xact_lock(ns, owner_id): bookings for one owner, one at a time
RECHECK_MARGIN = timedelta(days=1)

ConnectorFactory = Callable[[CalendarConnection], CalendarConnector]


class BookingError(Exception):
    """A booking that did not happen. ``code`` selects the client-facing text (es/en) in ``web.booking``."""

    code = "error"


class SlotTaken(BookingError):
    code = "taken"


class CalendarUnavailable(BookingError):
    """The owner's calendar could not be read or written (provider down, access revoked)."""

    code = "calendar"


class NotBookable(BookingError):
    code = "not_bookable"


@dataclass(frozen=True)
class ClientDetails:
    email: str
    name: str = ""
    phone: str = ""
    locale: str | None = None
    channel: str = "email"
    timezone: str | None = None


def default_connectors(settings: Any, options: dict[str, dict[str, Any]] | None = None) -> ConnectorFactory:
    """Build a connection's connector through the registry from its decrypted credentials. ``options`` (per
    provider key) carries deployment and test knobs such as a fake server's endpoint."""

    def build(conn: CalendarConnection) -> CalendarConnector:
        from connectors import registry
        from store.crypto import CredentialsUnreadable, decrypt_credentials

        try:
            creds = decrypt_credentials(settings.secret_key, conn.credentials)
        except CredentialsUnreadable:
            raise AuthExpired(f"the stored credentials for {conn.provider} account {conn.account or conn.id} "
                              "cannot be read; reconnect the calendar") from None
        extra = (options or {}).get(conn.provider, {})
        return registry.build(conn.provider, creds, settings=settings, **extra)  # type: ignore[no-any-return]

    return build


# ------------------------------------------------------------------------------------------------ settings


def booking_settings(session: Session, owner: Owner) -> BookingSettings | None:
    return session.get(BookingSettings, owner.id)


def rules_for(session: Session, owner: Owner) -> BookingRules:
    """The booking rules; without booking-specific hours, the working hours from the owner's Settings page
    (``preferences["working_hours"]``: days plus opening and closing time) are what clients can book."""
    bs = booking_settings(session, owner)
    rules = dict(bs.rules) if bs and bs.rules else {}
    working = (owner.preferences or {}).get("working_hours")
    if "hours" not in rules and working and working.get("start") and working.get("end"):
        rules["hours"] = {day: [[working["start"], working["end"]]] for day in working.get("days") or []}
    return BookingRules.from_dict(owner.timezone, rules or None)


def shape_of(atype: AppointmentType) -> SlotShape:
    return SlotShape(duration=timedelta(minutes=atype.duration_minutes),
                     buffer_before=timedelta(minutes=atype.buffer_before_minutes),
                     buffer_after=timedelta(minutes=atype.buffer_after_minutes))


def shape_for_appointment(session: Session, appt: Appointment) -> SlotShape:
    """Same length as now; buffers from the owner's appointment type of that length, if there is one."""
    duration = appt.ends_at - appt.starts_at
    atype = session.scalar(select(AppointmentType).where(
        AppointmentType.owner_id == appt.owner_id,
        AppointmentType.duration_minutes == int(duration.total_seconds() // 60)).order_by(AppointmentType.id))
    if atype is None:
        return SlotShape(duration=duration)
    return SlotShape(duration=duration, buffer_before=timedelta(minutes=atype.buffer_before_minutes),
                     buffer_after=timedelta(minutes=atype.buffer_after_minutes))


# ------------------------------------------------------------------------------------------------ calendars


@dataclass
class _Source:
    connection: CalendarConnection
    calendars: list[Calendar]


class OwnerCalendars:
    """Every calendar of one owner, grouped per connection, with one connector per connection per request."""

    def __init__(self, session: Session, owner_id: int, factory: ConnectorFactory,
                 sources: list[_Source] | None = None) -> None:
        self.factory = factory
        self.sources: list[_Source] = []
        self._connectors: dict[int, CalendarConnector] = {}
        if sources is not None:  # the pages reuse a recent answer (``web.booking``); booking never does
            self.sources = sources
            return
        rows = session.execute(select(CalendarConnection, Calendar)
                               .join(Calendar, Calendar.connection_id == CalendarConnection.id)
                               .where(CalendarConnection.owner_id == owner_id)
                               .order_by(CalendarConnection.id, Calendar.id))
        by_conn: dict[int, _Source] = {}
        for conn, cal in rows:
            if conn.id not in by_conn:
                by_conn[conn.id] = _Source(conn, [])
                self.sources.append(by_conn[conn.id])
            by_conn[conn.id].calendars.append(cal)

    def connector(self, conn: CalendarConnection) -> CalendarConnector:
        if conn.id not in self._connectors:
            self._connectors[conn.id] = self.factory(conn)
        return self._connectors[conn.id]

    def busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Busy time from every watched calendar of every connection. Raises ``ConnectorError`` when any calendar
        cannot be read: a slot is only offered as free when every calendar says so."""
        out: list[tuple[datetime, datetime]] = []
        for src in self.sources:
            ids = [c.external_id for c in src.calendars if c.watched or c.receives_bookings]
            if ids:
                out.extend((b.starts_at, b.ends_at) for b in self.connector(src.connection).busy(ids, start, end))
        return out

    def target(self) -> tuple[CalendarConnection, Calendar]:
        """Where new bookings go: the calendar marked ``receives_bookings``, else the first watched one."""
        for src in self.sources:
            for cal in src.calendars:
                if cal.receives_bookings:
                    return src.connection, cal
        for src in self.sources:
            for cal in src.calendars:
                if cal.watched:
                    return src.connection, cal
        raise NotBookable("the owner has no calendar to book into yet")

    def find(self, calendar_id: int | None) -> tuple[CalendarConnection, Calendar]:
        for src in self.sources:
            for cal in src.calendars:
                if cal.id == calendar_id:
                    return src.connection, cal
        raise NotBookable("this appointment's calendar is no longer connected")


def stored_busy(session: Session, owner_id: int, start: datetime, end: datetime, *, now: datetime,
                exclude_appointment: int | None = None, exclude_hold: int | None = None
                ) -> list[tuple[datetime, datetime]]:
    """Scheduled appointments and live holds: busy even before the calendar (or its sync) shows them."""
    q = select(Appointment.starts_at.label("a"), Appointment.ends_at.label("b")).where(
        Appointment.owner_id == owner_id, Appointment.status == "scheduled",
        Appointment.starts_at < end, Appointment.ends_at > start)
    if exclude_appointment is not None:
        q = q.where(Appointment.id != exclude_appointment)
    h = select(SlotHold.starts_at.label("a"), SlotHold.ends_at.label("b")).where(
        SlotHold.owner_id == owner_id, SlotHold.expires_at > now, SlotHold.starts_at < end, SlotHold.ends_at > start)
    if exclude_hold is not None:
        h = h.where(SlotHold.id != exclude_hold)
    return [(a, b) for a, b in session.execute(union_all(q, h))]


def offer_slots(session: Session, owner: Owner, shape: SlotShape, calendars: OwnerCalendars, *, now: datetime,
                start: datetime | None = None, days: int = 7, limit: int | None = None,
                exclude: Appointment | None = None, rules: BookingRules | None = None) -> list[datetime]:
    """Free start times over ``days`` from ``start`` (default: now). Raises ``CalendarUnavailable`` when a
    calendar cannot be read, because a slot shown as free must be free in every calendar."""
    rules = rules or rules_for(session, owner)
    lo = start or now
    hi = lo + timedelta(days=days)
    pad = shape.buffer_before + shape.buffer_after + shape.duration
    try:
        live = calendars.busy(lo - pad, hi + pad)
    except ConnectorError as exc:
        log.warning("free/busy unavailable for owner %s: %s", owner.id, exc)
        raise CalendarUnavailable(str(exc)) from exc
    live = _without_own(live, exclude)
    stored = stored_busy(session, owner.id, lo - pad, hi + pad, now=now,
                         exclude_appointment=exclude.id if exclude else None)
    return free_slots(rules, shape, Busy(live + stored), now=now, start=lo, end=hi, limit=limit)


def _without_own(busy: list[tuple[datetime, datetime]], appt: Appointment | None) -> list[tuple[datetime, datetime]]:
    """Free/busy cannot name events (and providers merge touching ones), so the appointment being moved frees its
    own time by subtracting its interval from every busy interval."""
    if appt is None:
        return busy
    own_start, own_end = appt.starts_at, appt.ends_at
    out: list[tuple[datetime, datetime]] = []
    for a, b in busy:
        if b <= own_start or a >= own_end:
            out.append((a, b))
            continue
        if a < own_start:
            out.append((a, own_start))
        if b > own_end:
            out.append((own_end, b))
    return out


# ------------------------------------------------------------------------------------------------ the hold


def _lock_owner(session: Session, owner_id: int, now: datetime) -> None:
    """Serialise bookings for one owner until the transaction ends. On SQLite the DELETE is the transaction's first
    statement, so it takes the write lock before anything is read (no stale snapshot)."""
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        session.execute(text("SELECT pg_advisory_xact_lock(:ns, :owner)"), {"ns": LOCK_NAMESPACE, "owner": owner_id})
    session.execute(delete(SlotHold).where(SlotHold.owner_id == owner_id, SlotHold.expires_at <= now))


def take_hold(ctx: Context, owner_id: int, starts_at: datetime, shape: SlotShape, *,
              exclude_appointment: int | None = None) -> int:
    """Phase 1: the one request that may go on to write this slot. Raises ``SlotTaken`` for everyone else."""
    now = ctx.clock.now()
    a = starts_at - shape.buffer_before
    b = starts_at + shape.duration + shape.buffer_after
    try:
        with ctx.session() as session:
            _lock_owner(session, owner_id, now)
            if stored_busy(session, owner_id, a, b, now=now, exclude_appointment=exclude_appointment):
                raise SlotTaken("that time was just taken")
            hold = SlotHold(owner_id=owner_id, starts_at=starts_at, ends_at=b, expires_at=now + HOLD_TTL,
                            created_at=now)
            session.add(hold)
            session.flush()
            return hold.id
    except IntegrityError:
        raise SlotTaken("that time was just taken") from None


def release_hold(ctx: Context, hold_id: int) -> None:
    with ctx.session() as session:
        session.execute(delete(SlotHold).where(SlotHold.id == hold_id))


def _recheck(ctx: Context, session: Session, owner: Owner, shape: SlotShape, starts_at: datetime, hold_id: int,
             calendars: OwnerCalendars, exclude: Appointment | None) -> None:
    """Phase 2a: free/busy read live at the moment of booking."""
    now = ctx.clock.now()
    lo, hi = starts_at - RECHECK_MARGIN, starts_at + RECHECK_MARGIN
    live = _without_own(calendars.busy(lo, hi), exclude)
    stored = stored_busy(session, owner.id, lo, hi, now=now, exclude_appointment=exclude.id if exclude else None,
                         exclude_hold=hold_id)
    if not is_bookable(rules_for(session, owner), shape, Busy(live + stored), starts_at, now=now):
        raise SlotTaken("that time is no longer free")


# ------------------------------------------------------------------------------------------------ book / move


def book(ctx: Context, *, owner_id: int, type_id: int, starts_at: datetime, details: ClientDetails,
         factory: ConnectorFactory) -> Appointment:
    """Book ``starts_at`` for a new or returning client. Raises ``BookingError`` (taken / calendar / not bookable)."""
    with ctx.sessions() as session:
        owner = session.get(Owner, owner_id)
        atype = session.get(AppointmentType, type_id)
        if owner is None or atype is None or atype.owner_id != owner_id or not atype.active:
            raise NotBookable("this booking page is no longer available")
        shape = shape_of(atype)
        bs = booking_settings(session, owner)
        calendars = OwnerCalendars(session, owner_id, factory)
        conn, cal = calendars.target()
    hold_id = take_hold(ctx, owner_id, starts_at, shape)
    with _released_on_error(ctx, hold_id):
        with ctx.sessions() as session:
            owner = session.get(Owner, owner_id)
            assert owner is not None
            _guard_calendar(ctx, conn, lambda: _recheck(ctx, session, owner, shape, starts_at, hold_id,
                                                           calendars, None), details)
        fixed = bs.meeting_link if bs else ""
        draft = EventDraft(
            title=f"{atype.name} · {details.name or details.email}", starts_at=starts_at,
            ends_at=starts_at + shape.duration, attendees=(Attendee(email=details.email, name=details.name),),
            description=_description(details), location=atype.location,
            meeting_link=fixed if atype.meeting == "fixed" else "",
            request_conference=atype.meeting == "conference", timezone=owner.timezone)
        connector = calendars.connector(conn)
        event: EventOccurrence = _guard_calendar(ctx, conn, lambda: connector.create_event(cal.external_id, draft),
                                                 details)
        try:
            with ctx.session() as session:
                now = ctx.clock.now()
                owner = session.get(Owner, owner_id)
                assert owner is not None
                client = client_for(session, owner, details.email, name=details.name, now=now,
                                    timezone=details.timezone, locale=details.locale)
                _update_client(client, details)
                # The calendar sync may have seen the new event first: adopt its row rather than insert a twin.
                synced = session.scalar(select(Appointment).where(
                    Appointment.calendar_id == cal.id, Appointment.external_uid == event.uid,
                    Appointment.recurrence_id == event.recurrence_id))
                appt = synced or record_new(
                    session, owner=owner, client=client, external_uid=event.uid, starts_at=starts_at,
                    ends_at=starts_at + shape.duration, now=now, title=draft.title, location=atype.location,
                    meeting_link=event.meeting_link or draft.meeting_link, calendar_id=cal.id,
                    recurrence_id=event.recurrence_id)
                # The client chose this time a moment ago: it is confirmed, no confirmation request.
                appt.confirmation, appt.confirmed_at = "confirmed", now
                replan_appointment(session, appt, now)
                session.execute(delete(SlotHold).where(SlotHold.id == hold_id))
                plan_confirmation(session, appt, now, "booked")
        except Exception:
            log.exception("booking for owner %s recorded no appointment; removing event %s again", owner_id,
                          event.uid)
            _quietly(lambda: connector.delete_event(cal.external_id, event.uid))
            raise
    log.info("booked appointment %s for owner %s at %s", appt.id, owner_id, starts_at.isoformat())
    return appt


def move(ctx: Context, *, appointment_id: int, starts_at: datetime, factory: ConnectorFactory) -> Appointment:
    """Move an appointment to ``starts_at``: the event moves in the owner's calendar (update, or create + delete
    where the update is refused), keeping its meeting link; reminders re-plan; the deposit follows the policy."""
    with ctx.sessions() as session:
        appt = session.get(Appointment, appointment_id)
        if appt is None or appt.status != "scheduled":
            raise NotBookable("this appointment was cancelled or no longer exists")
        if appt.recurrence_id:
            raise NotBookable("this appointment is part of a recurring series; ask the owner to move it")
        if appt.starts_at == starts_at:
            return appt
        owner_id = appt.owner_id
        shape = shape_for_appointment(session, appt)
        calendars = OwnerCalendars(session, owner_id, factory)
        conn, cal = calendars.find(appt.calendar_id)
        details = ClientDetails(email=appt.client.email, name=appt.client.name)
        old_start, old_end, old_uid = appt.starts_at, appt.ends_at, appt.external_uid
        draft = EventDraft(title=appt.title, starts_at=starts_at, ends_at=starts_at + shape.duration,
                           attendees=(Attendee(email=appt.client.email, name=appt.client.name),),
                           location=appt.location, meeting_link=appt.meeting_link,
                           request_conference=not appt.meeting_link, timezone=appt.owner.timezone)
    hold_id = take_hold(ctx, owner_id, starts_at, shape, exclude_appointment=appointment_id)
    with _released_on_error(ctx, hold_id):
        with ctx.sessions() as session:
            owner = session.get(Owner, owner_id)
            current = session.get(Appointment, appointment_id)
            assert owner is not None and current is not None
            _guard_calendar(ctx, conn, lambda: _recheck(ctx, session, owner, shape, starts_at, hold_id,
                                                           calendars, current), details)
        connector = calendars.connector(conn)
        event, recreated = _guard_calendar(ctx, conn, lambda: _move_event(connector, cal, old_uid, draft), details)
        try:
            with ctx.session() as session:
                now = ctx.clock.now()
                appt = session.get(Appointment, appointment_id)
                assert appt is not None
                record_move(session, appt, starts_at=starts_at, ends_at=starts_at + shape.duration, now=now)
                if recreated:
                    appt.external_uid = event.uid
                if event.meeting_link and not appt.meeting_link:
                    appt.meeting_link = event.meeting_link
                session.execute(delete(SlotHold).where(SlotHold.id == hold_id))
                plan_confirmation(session, appt, now, "moved")
        except Exception:
            log.exception("move of appointment %s not recorded; putting the event back", appointment_id)
            back = EventDraft(title=draft.title, starts_at=old_start, ends_at=old_end, attendees=draft.attendees,
                              location=draft.location, meeting_link=draft.meeting_link, timezone=draft.timezone)
            _quietly(lambda: connector.update_event(cal.external_id, event.uid, back))
            raise
    log.info("moved appointment %s to %s", appointment_id, starts_at.isoformat())
    return appt


def _move_event(connector: CalendarConnector, cal: Calendar, uid: str,
                draft: EventDraft) -> tuple[EventOccurrence, bool]:
    """Update in place; where the provider refuses (e.g. the event cannot be edited), create then delete."""
    try:
        return connector.update_event(cal.external_id, uid, draft), False
    except (AuthExpired, RateLimited, ProviderUnavailable):
        raise
    except ConnectorError as exc:
        log.info("update refused (%s); moving by create + delete", exc)
        created = connector.create_event(cal.external_id, draft)
        connector.delete_event(cal.external_id, uid)
        return created, True


# ------------------------------------------------------------------------------------------------ failures


class _released_on_error:
    def __init__(self, ctx: Context, hold_id: int) -> None:
        self.ctx, self.hold_id = ctx, hold_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            _quietly(lambda: release_hold(self.ctx, self.hold_id))


def _guard_calendar(ctx: Context, conn: CalendarConnection, call: Callable[[], Any], details: ClientDetails) -> Any:
    """Run a calendar call; a provider failure becomes ``CalendarUnavailable`` and the owner is told."""
    try:
        return call()
    except ConnectorError as exc:
        _calendar_failed(ctx, conn, exc, details)
        raise CalendarUnavailable(str(exc)) from exc


def _calendar_failed(ctx: Context, conn: CalendarConnection, exc: ConnectorError, details: ClientDetails) -> None:
    """Mark the connection (the owner's pages show a banner) and plan a note to the owner by email."""
    now = ctx.clock.now()
    revoked = isinstance(exc, AuthExpired)
    log.warning("booking: calendar %s (%s) failed: %s: %s", conn.id, conn.provider, type(exc).__name__, exc)
    with ctx.session() as session:
        row = session.get(CalendarConnection, conn.id)
        if row is None:
            return
        if revoked:
            row.status = "needs_reconnect"
        row.status_detail = (f"A client ({details.email}) could not book because the calendar "
                             f"{'needs reconnecting' if revoked else 'did not answer'}: {exc}")[:2000]
        owner = session.get(Owner, row.owner_id)
        assert owner is not None
        client = client_for(session, owner, details.email, name=details.name, now=now, timezone=details.timezone,
                            locale=details.locale)
        key = f"o{owner.id}-booking_failed-c{client.id}-{now:%Y%m%dT%H%M}"
        if session.scalar(select(Step.id).where(Step.idempotency_key == key)) is None:
            session.add(Step(owner_id=owner.id, kind="booking_failed", subject_type="booking_client", subject_id=client.id,
                             due_at=now, idempotency_key=key, state="pending", attempts=0, max_attempts=5,
                             payload={"reason": "revoked" if revoked else "unavailable", "provider": conn.provider},
                             created_at=now, outcome=""))


def plan_confirmation(session: Session, appt: Appointment, now: datetime, what: str) -> Step:
    """The client's confirmation of the time they just chose (with an ICS attachment), sent at once."""
    key = f"b{appt.id}-booking_confirmation-{appt.starts_at:%Y%m%dT%H%M%SZ}"
    step = session.scalar(select(Step).where(Step.idempotency_key == key))
    if step is None:
        step = Step(owner_id=appt.owner_id, kind="booking_confirmation", subject_type="booking",
                    subject_id=appt.id, due_at=now, idempotency_key=key, state="pending", attempts=0,
                    max_attempts=5, payload={"what": what, "starts_at": appt.starts_at.isoformat()},
                    created_at=now, outcome="")
        session.add(step)
        session.flush()
    return step


def _update_client(client: Any, details: ClientDetails) -> None:
    if details.name:
        client.name = details.name
    if details.phone:
        client.phone = details.phone
    if details.locale:
        client.locale = details.locale
    if details.channel:
        client.preferred_channel = details.channel
    if details.timezone:
        client.timezone = details.timezone


def _description(details: ClientDetails) -> str:
    lines = [f"{details.name} <{details.email}>".strip()]
    if details.phone:
        lines.append(details.phone)
    lines.append("Booked with Reagenda")
    return "\n".join(lines)


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - a cleanup failure must not hide the original error
        log.warning("cleanup after a failed booking also failed: %s: %s", type(exc).__name__, exc)


def history_starts(session: Session, client_id: int, before: datetime, limit: int = 20) -> Iterator[datetime]:
    """When the client usually books: their past appointments' start times (for ``preferred_slots``)."""
    yield from session.scalars(select(Appointment.starts_at).where(
        Appointment.client_id == client_id, Appointment.starts_at < before)
        .order_by(Appointment.starts_at.desc()).limit(limit))
