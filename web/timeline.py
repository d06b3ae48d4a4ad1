"""The per-appointment timeline: steps done and planned, messages, replies and ledger entries, in time order.

Steps come from the ``steps`` table, which the planner (the same pure functions ``reagenda simulate`` uses) keeps
in agreement with the appointment; so what the owner sees as "planned" is exactly what the workers will do.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.models import Appointment, LedgerEntry, Message, Reply, Step


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # step | message | reply | ledger
    css: str  # done | planned | cancelled | skipped | failed
    title: str
    detail: str = ""
    link: str = ""


def build_timeline(session: Session, appt: Appointment, steps: Iterable[Step], now: datetime) -> list[Event]:
    from flask import url_for
    from flask_babel import gettext as _

    from web.dashboard import LEDGER_LABELS, STEP_STATE_LABELS, step_label
    from web.i18n import money

    events: list[Event] = []
    sent_step_ids = set()
    messages = list(session.scalars(select(Message).where(Message.owner_id == appt.owner_id,
                                                          Message.appointment_id == appt.id)))
    for m in messages:
        if m.step_id:
            sent_step_ids.add(m.step_id)
        status = {"sent": "done", "failed": "failed"}.get(m.status, "planned")
        events.append(Event(m.sent_at or m.created_at, "message", status,
                            _("Message: %(subject)s", subject=m.subject),
                            _("to %(to)s, %(status)s", to=m.recipient, status=m.status),
                            url_for("dashboard.message", message_id=m.id)))
    for s in steps:
        if s.id in sent_step_ids and s.state == "done":
            continue  # the message line says it better
        css = {"pending": "planned", "queued": "planned", "running": "planned"}.get(s.state, s.state)
        at = s.due_at if s.state in ("pending", "queued", "running") else (s.finished_at or s.due_at)
        detail = str(STEP_STATE_LABELS.get(s.state, s.state))
        if s.outcome and s.state in ("skipped", "failed", "cancelled"):
            detail += f": {s.outcome}"
        events.append(Event(at, "step", css, step_label(s.kind), detail))
    replies = session.scalars(select(Reply).where(Reply.owner_id == appt.owner_id, or_(
        Reply.appointment_id == appt.id)))
    for r in replies:
        events.append(Event(r.received_at, "reply", "done", _("Client replied: %(intent)s", intent=r.intent),
                            (r.text or r.raw_text)[:200]))
    for e in session.scalars(select(LedgerEntry).where(LedgerEntry.owner_id == appt.owner_id,
                                                       LedgerEntry.appointment_id == appt.id)):
        events.append(Event(e.created_at, "ledger", "done",
                            f"{LEDGER_LABELS.get(e.kind, e.kind)}: {money(e.amount_cents, e.currency)}", e.reason))
    events.sort(key=lambda ev: (ev.at, ev.kind))
    return events
