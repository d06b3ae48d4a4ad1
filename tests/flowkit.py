"""Helpers for the flow scenario tests (tests/test_flow_*.py): set up an owner and a client, read what was sent."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from store.models import Appointment, Client, LedgerEntry, Message, Owner, Step
from tests.factories import make_appointment, make_owner


def setup(stack, *, starts_in: timedelta = timedelta(days=5), policy: dict | None = None,  # type: ignore[no-untyped-def]
          meeting_link: str = "https://meet.google.com/abc-defg-hij", client_locale: str | None = None,
          client_tz: str | None = None) -> tuple[int, int, int]:
    """An owner (Madrid, Spanish) and one appointment; returns (owner_id, client_id, appointment_id)."""
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now, policy=policy)
        appt = make_appointment(s, owner, now, now + starts_in, meeting_link=meeting_link,
                                client_locale=client_locale, client_tz=client_tz)
        return owner.id, appt.client_id, appt.id


def sent(stack, *, kind: str | None = None, recipient: str | None = None) -> list[Message]:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        q = select(Message).where(Message.status == "sent").order_by(Message.id)
        if kind:
            q = q.where(Message.kind == kind)
        if recipient:
            q = q.where(Message.recipient == recipient)
        rows = list(s.scalars(q))
        s.expunge_all()
        return rows


def kinds(stack) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.kind for m in sent(stack)]


def steps(stack, appointment_id: int | None = None, *, subject_type: str = "appointment") -> dict[str, Step]:  # type: ignore[no-untyped-def]
    """Steps of a subject by kind (the latest of each kind)."""
    with stack.session() as s:
        q = select(Step).where(Step.subject_type == subject_type).order_by(Step.id)
        if appointment_id is not None:
            q = q.where(Step.subject_id == appointment_id)
        rows = list(s.scalars(q))
        s.expunge_all()
        return {st.kind: st for st in rows}


def appointment(stack, appointment_id: int) -> Appointment:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        a = s.get(Appointment, appointment_id)
        s.expunge_all()
        return a


def client(stack, client_id: int) -> Client:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        c = s.get(Client, client_id)
        s.expunge_all()
        return c


def ledger(stack, client_id: int) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return [(e.kind, e.amount_cents) for e in s.scalars(select(LedgerEntry).where(
            LedgerEntry.client_id == client_id).order_by(LedgerEntry.id))]


def run_until(stack, until: datetime, step: timedelta | None = None) -> None:  # type: ignore[no-untyped-def]
    """Move the clock to ``until``, stopping at every step's due time on the way (as a real dispatcher ticking
    every half second would) and dispatching + working there. ``step`` is accepted for readability and ignored."""
    for _ in range(1000):
        with stack.session() as s:
            nxt = s.scalar(select(func.min(Step.due_at)).where(Step.state == "pending"))
        if nxt is None or nxt > until:
            break
        stack.clock.set(max(stack.clock.now(), nxt))
        stack.run_due()
    else:
        raise AssertionError("run_until: more than 1000 dispatch rounds; a step keeps coming back")
    stack.clock.set(max(stack.clock.now(), until))
    stack.run_due()


def owner_email(stack, owner_id: int) -> str:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return s.get(Owner, owner_id).email
