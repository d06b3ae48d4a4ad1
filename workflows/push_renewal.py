"""Provider push channels: open one per calendar, mark a calendar for sync when a notification says it changed,
renew channels before they expire, and stop them on disconnect.

Why push only *marks* a calendar: a notification says "something changed", never what. The sync engine
(``workflows.sync``) fetches the changes with the stored cursor, so a lost, duplicated or reordered notification
costs at most a delayed sync, never a wrong appointment. The mark is durable (``Calendar.next_sync_at = now`` in
the database); the RQ job is only a shortcut, and the periodic ``enqueue_due`` picks the calendar up if Redis
dropped it.

Google channels cannot be extended: renewal opens a new channel, then stops the old one (an overlap of a few
seconds beats a gap). Graph subscriptions are PATCHed to a later ``expirationDateTime``; one that Graph removed is
created again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import AuthExpired, ConnectorError, Watch
from reagenda.runtime import Context
from store.crypto import decrypt_json, encrypt_json
from store.models import Calendar, CalendarConnection, PushChannel

log = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(hours=24)  # Google channels and Graph subscriptions live about a week
PATHS = {"google": "/push/google", "outlook": "/push/graph"}
RENEW_JOB_ID = "push-renew-due"

ConnectorFor = Callable[[CalendarConnection], Any]


def callback_url(ctx: Context, provider: str) -> str:
    return ctx.settings.base_url.rstrip("/") + PATHS[provider]


def _connector_for(ctx: Context) -> ConnectorFor:
    from workflows.sync import connector_for

    return lambda connection: connector_for(ctx, connection)


def secret_of(ctx: Context, channel: PushChannel) -> str:
    return str(decrypt_json(ctx.settings, channel.secret).get("secret", ""))


def _store(session: Session, ctx: Context, calendar_id: int, provider: str, watch: Watch, url: str,
           now: datetime) -> PushChannel:
    channel = PushChannel(calendar_id=calendar_id, provider=provider, channel_id=watch.channel_id,
                          resource_id=watch.resource_id, secret=encrypt_json(ctx.settings, {"secret": watch.secret}),
                          callback_url=url, status="active", expires_at=watch.expires_at, created_at=now)
    session.add(channel)
    return channel


def open_channel(ctx: Context, calendar_id: int, *, connector: Any = None) -> str | None:
    """Start push for one calendar; returns the channel id, or None when the provider has no push."""
    now = ctx.clock.now()
    with ctx.session() as session:
        cal = session.get(Calendar, calendar_id)
        assert cal is not None, f"calendar {calendar_id} not found"
        conn = session.get(CalendarConnection, cal.connection_id)
        assert conn is not None
        provider, external_id = conn.provider, cal.external_id
        if provider not in PATHS:
            return None
        connector = connector or _connector_for(ctx)(conn)
    url = callback_url(ctx, provider)
    watch = connector.watch(external_id, url)
    if watch is None:
        return None
    with ctx.session() as session:
        _store(session, ctx, calendar_id, provider, watch, url, now)
    log.info("calendar %s: push channel %s open until %s", calendar_id, watch.channel_id, watch.expires_at)
    return watch.channel_id


def request_sync(session: Session, calendar_id: int, now: datetime) -> bool:
    """Mark a calendar due now (inside the caller's transaction). A calendar backing off after provider faults
    keeps its backoff: a burst of notifications must not turn into a retry storm. Returns whether it was marked."""
    cal = session.get(Calendar, calendar_id)
    if cal is None:
        return False
    if cal.sync_failures and cal.next_sync_at is not None and cal.next_sync_at > now:
        return False
    cal.next_sync_at = now
    return True


def enqueue_sync(ctx: Context, calendar_id: int) -> bool:
    """Queue the calendar's sync job unless it is already waiting. Redis being down is logged, not raised: the
    database mark stays and the periodic job picks it up."""
    from rq.job import Job

    from workflows.sync import job_id

    jid = job_id(calendar_id)
    try:
        if ctx.redis.exists(f"rq:job:{jid}"):
            status = Job.fetch(jid, connection=ctx.redis).get_status(refresh=False)
            if status in ("queued", "deferred", "scheduled"):
                return False
        ctx.queue().enqueue("workflows.sync.sync_calendar_job", calendar_id, job_id=jid, result_ttl=0,
                            failure_ttl=3600, job_timeout=600)
        return True
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("calendar %s: could not queue the push-triggered sync (%s); the periodic sync will run it",
                    calendar_id, type(exc).__name__)
        return False


def enqueue_renewal(ctx: Context) -> None:
    try:
        ctx.queue().enqueue("workflows.push_renewal.renew_due_job", job_id=RENEW_JOB_ID, result_ttl=0,
                            failure_ttl=3600, job_timeout=600)
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("could not queue push channel renewal (%s); the periodic job will run it", type(exc).__name__)


def renew_due(ctx: Context, *, connector_for: ConnectorFor | None = None) -> list[str]:
    """Renew every channel that expires within ``RENEW_BEFORE`` or that the provider asked us to renew or removed.
    Returns the ids of the channels now active. One channel's failure never stops the others."""
    now = ctx.clock.now()
    build = connector_for or _connector_for(ctx)
    with ctx.session() as session:
        rows = session.execute(
            select(PushChannel, Calendar, CalendarConnection)
            .join(Calendar, Calendar.id == PushChannel.calendar_id)
            .join(CalendarConnection, CalendarConnection.id == Calendar.connection_id)
            .where(CalendarConnection.status != "needs_reconnect",
                   (PushChannel.expires_at <= now + RENEW_BEFORE) | (PushChannel.status != "active"))
            .order_by(PushChannel.expires_at)).all()
        work = [(ch.id, ch.channel_id, ch.resource_id, ch.provider, ch.status, ch.expires_at, secret_of(ctx, ch),
                 cal.id, cal.external_id, conn) for ch, cal, conn in rows]
        for *_, conn in work:
            session.expunge(conn)
    renewed: list[str] = []
    for row_id, channel_id, resource_id, provider, status, expires_at, secret, cal_id, external_id, conn in work:
        old = Watch(channel_id=channel_id, resource_id=resource_id, expires_at=expires_at, secret=secret)
        url = callback_url(ctx, provider)
        try:
            connector = build(conn)
            if status != "removed" and hasattr(connector, "renew_watch"):
                new = connector.renew_watch(old, url)
                with ctx.session() as session:
                    ch = session.get(PushChannel, row_id)
                    assert ch is not None
                    ch.expires_at, ch.status = new.expires_at, "active"
                renewed.append(new.channel_id)
                continue
            new = connector.watch(external_id, url)
            with ctx.session() as session:
                _store(session, ctx, cal_id, provider, new, url, now)
                old_row = session.get(PushChannel, row_id)
                if old_row is not None:
                    session.delete(old_row)
            if status != "removed":
                try:
                    connector.unwatch(old)
                except ConnectorError as exc:  # it expires on its own anyway
                    log.info("push channel %s: stop failed (%s); it will expire", channel_id, exc)
            renewed.append(new.channel_id)
        except AuthExpired as exc:
            log.warning("calendar %s: push channel %s not renewed, the connection needs reconnecting: %s", cal_id,
                        channel_id, exc)
        except (ConnectorError, OSError) as exc:
            log.warning("calendar %s: push channel %s not renewed (%s); next run retries", cal_id, channel_id, exc)
    return renewed


def close_channels(ctx: Context, calendar_ids: list[int], *, connector_for: ConnectorFor | None = None) -> int:
    """Stop push for these calendars (on disconnect or when a calendar is unwatched) and forget the channels."""
    build = connector_for or _connector_for(ctx)
    with ctx.session() as session:
        rows = session.execute(
            select(PushChannel, CalendarConnection)
            .join(Calendar, Calendar.id == PushChannel.calendar_id)
            .join(CalendarConnection, CalendarConnection.id == Calendar.connection_id)
            .where(PushChannel.calendar_id.in_(calendar_ids))).all()
        work = [(ch.id, Watch(ch.channel_id, ch.resource_id, ch.expires_at, secret_of(ctx, ch)), conn)
                for ch, conn in rows]
        for *_, conn in work:
            session.expunge(conn)
    for row_id, watch, conn in work:
        try:
            build(conn).unwatch(watch)
        except (ConnectorError, OSError) as exc:
            log.info("push channel %s: stop failed (%s); it will expire on its own", watch.channel_id, exc)
        with ctx.session() as session:
            row = session.get(PushChannel, row_id)
            if row is not None:
                session.delete(row)
    return len(work)


def ensure_channels(ctx: Context, *, connector_for: ConnectorFor | None = None) -> list[str]:
    """Open a channel for every watched Google / Outlook calendar that has none (just connected, or its channel
    was lost). Providers only deliver to HTTPS, so nothing is opened while BASE_URL is plain HTTP (a laptop):
    the periodic sync alone keeps those calendars current. Returns the new channel ids."""
    if not ctx.settings.base_url.startswith("https://"):
        log.debug("push channels not opened: BASE_URL %s is not HTTPS", ctx.settings.base_url)
        return []
    build = connector_for or _connector_for(ctx)
    with ctx.session() as session:
        rows = session.execute(
            select(Calendar.id, CalendarConnection)
            .join(CalendarConnection, CalendarConnection.id == Calendar.connection_id)
            .outerjoin(PushChannel, PushChannel.calendar_id == Calendar.id)
            .where(Calendar.watched.is_(True), CalendarConnection.status == "ok",
                   CalendarConnection.provider.in_(sorted(PATHS)), PushChannel.id.is_(None))
            .order_by(Calendar.id)).all()
        work = [(cal_id, conn) for cal_id, conn in rows]
        for _, conn in work:
            session.expunge(conn)
    opened: list[str] = []
    for cal_id, conn in work:
        try:
            channel_id = open_channel(ctx, cal_id, connector=build(conn))
        except (ConnectorError, OSError) as exc:
            log.warning("calendar %s: push channel not opened (%s); the periodic sync covers it", cal_id, exc)
            continue
        if channel_id:
            opened.append(channel_id)
    return opened


def renew_due_job() -> str:
    """RQ entry point for the periodic schedule (hourly is plenty with a 24 h margin): renew what expires, open
    what is missing."""
    from reagenda import runtime

    ctx = runtime.current()
    renewed, opened = renew_due(ctx), ensure_channels(ctx)
    return f"{len(renewed)} channel(s) renewed, {len(opened)} opened"
