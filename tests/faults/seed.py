"""Seeding a fault test's database through the same lifecycle functions the app uses, and reading back outcomes."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select

from reagenda.runtime import Context
from store.models import Appointment, Client, Message, Owner, Step
from workflows.planner import step_key
from workflows.policy import Policy

FINAL_STATES = ("done", "skipped", "failed", "cancelled")


def seed_due_appointments(ctx: Context, count: int, *, now: datetime, owners: int = 10,
                          starts_in: timedelta = timedelta(hours=3)) -> datetime:
    """``count`` appointments starting ``starts_in`` from ``now``, each with one 48-hour reminder due at once (as
    the planner plans it for an appointment booked inside the window). Inserted in bulk, because seeding one by
    one through the lifecycle costs half a minute on a loaded 2-core machine and the fault tests are about what
    happens after planning. Returns the instant up to which steps count as due (``now``)."""
    with ctx.session() as session:
        owner_rows = [Owner(email=f"owner{i}@example.com", name=f"Owner {i}", business_name=f"Estudio {i}",
                            timezone="Europe/Madrid", locale="es", policy={}, invoice_seq=0, created_at=now)
                      for i in range(owners)]
        session.add_all(owner_rows)
        session.flush()
        clients = [Client(owner_id=owner_rows[n % owners].id, email=f"client{n}@example.com", name=f"Client {n}",
                          phone="", preferred_channel="email", opted_out=[], state="active", created_at=now)
                   for n in range(count)]
        session.add_all(clients)
        session.flush()
        appts = []
        for n, client in enumerate(clients):
            starts = now + starts_in + timedelta(minutes=n % 60)
            appts.append(Appointment(
                owner_id=client.owner_id, client_id=client.id, external_uid=f"evt-{n}", recurrence_id="",
                title="Sesión", starts_at=starts, ends_at=starts + timedelta(hours=1), location="",
                meeting_link="https://meet.google.com/abc-defg-hij", status="scheduled", confirmation="pending",
                attendance="unknown", policy=Policy().to_dict(), start_seen_at=now, created_at=now,
                updated_at=now))
        session.add_all(appts)
        session.flush()
        session.add_all([
            Step(owner_id=a.owner_id, kind="reminder_48h", subject_type="appointment", subject_id=a.id, due_at=now,
                 state="pending", attempts=0, max_attempts=5,
                 idempotency_key=step_key(a.id, "reminder_48h", a.starts_at),
                 payload={"hours": 48, "starts_at": a.starts_at.isoformat(), "immediate": True}, created_at=now,
                 outcome="")
            for a in appts])
    return now


def due_step_states(ctx: Context, due_by: datetime) -> Counter[str]:
    with ctx.session() as session:
        rows = session.execute(select(Step.state, func.count()).where(Step.due_at <= due_by)
                               .group_by(Step.state)).all()
    return Counter({state: n for state, n in rows})


def all_final(ctx: Context, step_ids: list[int]) -> bool:
    with ctx.session() as session:
        open_ = session.scalar(select(func.count()).select_from(Step)
                               .where(Step.id.in_(step_ids), Step.state.not_in(FINAL_STATES)))
    return open_ == 0


def due_step_ids(ctx: Context, due_by: datetime) -> list[int]:
    with ctx.session() as session:
        return list(session.scalars(select(Step.id).where(Step.due_at <= due_by, Step.state == "pending")))


def steps(ctx: Context, step_ids: list[int]) -> list[Step]:
    with ctx.session() as session:
        return list(session.scalars(select(Step).where(Step.id.in_(step_ids))))


def messages_for(ctx: Context, step_ids: list[int]) -> list[Message]:
    with ctx.session() as session:
        return list(session.scalars(select(Message).where(Message.step_id.in_(step_ids))))


def count_final(ctx: Context, step_ids: list[int]) -> int:
    with ctx.session() as session:
        return session.scalar(select(func.count()).select_from(Step)
                              .where(Step.id.in_(step_ids), Step.state.in_(FINAL_STATES))) or 0
