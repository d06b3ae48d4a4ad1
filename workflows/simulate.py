"""``reagenda simulate``: what would each client receive over the next days, and when?

The real planner, handlers, limits and templates run on a virtual clock against a sandbox of the configured store,
with a dry-run channel that sends nothing. The sandbox never changes the real store: on PostgreSQL everything runs in
one transaction (each unit of work a savepoint) that is rolled back at the end; on SQLite it runs on a copy of the
database file made with SQLite's online backup. The same function gives the dashboard an appointment's future
(``timeline_for_appointment``).
"""
from __future__ import annotations

import dataclasses
import logging
import sqlite3
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import sessionmaker

from channels.base import Channel, OutgoingMessage
from channels.registry import register
from reagenda.clock import FrozenClock
from reagenda.runtime import Context
from reagenda.settings import Settings
from store.db import make_engine
from store.models import Appointment, Client, Message, Owner, Step

log = logging.getLogger(__name__)

MAX_ROUNDS = 100_000


class DryRunChannel(Channel):
    """Accepts every message and sends nothing."""

    key = "dryrun"

    def send(self, message: OutgoingMessage) -> str:
        return f"dryrun:{message.idempotency_key}"


register(DryRunChannel)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime  # UTC
    owner_id: int
    client_id: int | None
    client: str  # name <email>
    appointment_id: int | None
    recipient: str
    to_owner: bool
    kind: str
    subject: str


@contextmanager
def sandbox(settings: Settings, start: datetime) -> Iterator[Context]:
    """A runtime context over a throw-away view of the store, a frozen clock at ``start`` and the dry-run channel."""
    dry = dataclasses.replace(settings, email_backend="dryrun")
    lazy_redis = redis.Redis(unix_socket_path="/nonexistent/simulate-uses-no-redis")  # never connected
    url = settings.database_url
    if url.startswith("sqlite"):
        source = url.split(":///", 1)[-1]
        with tempfile.TemporaryDirectory(prefix="reagenda-sim-") as tmp:
            copy = Path(tmp) / "simulate.db"
            src, dst = sqlite3.connect(source), sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
            engine = make_engine(f"sqlite:///{copy}")
            try:
                yield Context(settings=dry, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False),
                              redis=lazy_redis, clock=FrozenClock(start))
            finally:
                engine.dispose()
        return
    engine = make_engine(url)
    conn = engine.connect()
    outer = conn.begin()
    try:
        sessions = sessionmaker(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
        yield Context(settings=dry, engine=engine, sessions=sessions, redis=lazy_redis, clock=FrozenClock(start))
    finally:
        outer.rollback()
        conn.close()
        engine.dispose()


def _subject_filter(session, appointment_id: int | None):  # type: ignore[no-untyped-def]
    if appointment_id is None:
        return None
    appt = session.get(Appointment, appointment_id)
    if appt is None:
        raise ValueError(f"appointment {appointment_id} does not exist")
    return or_((Step.subject_type == "appointment") & (Step.subject_id == appointment_id),
               (Step.subject_type == "client") & (Step.subject_id == appt.client_id))


def run(ctx: Context, until: datetime, *, appointment_id: int | None = None) -> int:
    """Dispatch and execute every step due up to ``until`` in time order, moving the frozen clock. Returns how many
    step executions ran."""
    from workflows import executor

    assert isinstance(ctx.clock, FrozenClock)
    ran = 0
    for _ in range(MAX_ROUNDS):
        with ctx.session() as s:
            where = [Step.state == "pending"]
            extra = _subject_filter(s, appointment_id)
            if extra is not None:
                where.append(extra)
            nxt = s.scalar(select(func.min(Step.due_at)).where(*where))
            if nxt is None or nxt > until:
                break
            ctx.clock.set(max(ctx.clock.now(), nxt))
            ids = list(s.scalars(select(Step.id).where(*where, Step.due_at <= ctx.clock.now())
                                 .order_by(Step.due_at, Step.id)))
            s.execute(update(Step).where(Step.id.in_(ids)).values(state="queued", claimed_at=ctx.clock.now()))
        for step_id in ids:
            executor.execute(ctx, step_id)
            ran += 1
    ctx.clock.set(max(ctx.clock.now(), until))
    return ran


def simulate(settings: Settings, *, days: int = 14, now: datetime | None = None,
             appointment_id: int | None = None) -> list[TimelineEntry]:
    """The messages the next ``days`` would bring (every client, or one appointment and its client), in order."""
    start = now or datetime.now(timezone.utc)
    with sandbox(settings, start) as ctx:
        run(ctx, start + timedelta(days=days), appointment_id=appointment_id)
        with ctx.session() as s:
            query = (select(Message, Client).outerjoin(Client, Client.id == Message.client_id)
                     .where(Message.created_at >= start, Message.status == "sent").order_by(Message.sent_at,
                                                                                             Message.id))
            if appointment_id is not None:
                appt = s.get(Appointment, appointment_id)
                assert appt is not None
                query = query.where(or_(Message.appointment_id == appointment_id,
                                        (Message.client_id == appt.client_id) & Message.appointment_id.is_(None)))
            owners = {o.id: o.email for o in s.scalars(select(Owner))}
            return [TimelineEntry(at=m.sent_at or m.created_at, owner_id=m.owner_id,
                                  client_id=m.client_id, client=f"{c.name} <{c.email}>" if c else "",
                                  appointment_id=m.appointment_id, recipient=m.recipient,
                                  to_owner=m.recipient == owners.get(m.owner_id), kind=m.kind, subject=m.subject)
                    for m, c in s.execute(query)]


def timeline_for_appointment(settings: Settings, appointment_id: int, *, days: int = 14,
                             now: datetime | None = None) -> list[TimelineEntry]:
    """What this appointment (and its client's own sequences) will send over the next ``days``, for the dashboard."""
    return simulate(settings, days=days, now=now, appointment_id=appointment_id)


def format_timeline(entries: list[TimelineEntry], owner_zones: dict[int, str]) -> str:
    """Human-readable, grouped by client, times in the owner's zone."""
    if not entries:
        return "Nothing would be sent in this period."
    lines: list[str] = []
    by_client: dict[str, list[TimelineEntry]] = {}
    for e in entries:
        by_client.setdefault(e.client or "(no client)", []).append(e)
    for client, items in sorted(by_client.items()):
        lines.append(client)
        for e in items:
            zone = ZoneInfo(owner_zones.get(e.owner_id, "UTC"))
            who = "to owner " if e.to_owner else ""
            appt = f" [appointment {e.appointment_id}]" if e.appointment_id else ""
            lines.append(f"  {e.at.astimezone(zone):%a %Y-%m-%d %H:%M %Z}  {who}{e.kind:<20} {e.subject}{appt}")
        lines.append("")
    lines.append(f"{len(entries)} message(s) to {len(by_client)} client(s); nothing was sent and the store is "
                 "unchanged.")
    return "\n".join(lines)
