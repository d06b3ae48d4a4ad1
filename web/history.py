"""Per-client history for the clients pages: counts and money, read straight from the tables.

When the workflows package provides a reliability verdict (``workflows.history``, issue 4), its flags are shown
as well; the counts here are only what the page displays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, Client, LedgerEntry, Reply


@dataclass
class History:
    appointments: int = 0
    confirmed: int = 0
    cancelled: int = 0
    late_cancelled: int = 0
    no_shows: int = 0
    arrived: int = 0
    moved: int = 0
    replies: int = 0
    owed_cents: int = 0
    waived_cents: int = 0
    paid_cents: int = 0
    reasons: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def reliability(self) -> int | None:
        """Percent of decided appointments that were kept (arrived, or cancelled in time)."""
        decided = self.arrived + self.no_shows + self.late_cancelled + (self.cancelled - self.late_cancelled)
        if decided == 0:
            return None
        kept = self.arrived + (self.cancelled - self.late_cancelled)
        return round(100 * kept / decided)


def histories(session: Session, owner_id: int, clients: Iterable[Client]) -> dict[int, History]:
    ids = [c.id for c in clients]
    out = {i: History() for i in ids}
    if not ids:
        return out
    for a in session.scalars(select(Appointment).where(Appointment.owner_id == owner_id,
                                                       Appointment.client_id.in_(ids))):
        h = out[a.client_id]
        h.appointments += 1
        h.confirmed += a.confirmation == "confirmed"
        h.cancelled += a.status == "cancelled"
        h.late_cancelled += bool(a.status == "cancelled" and getattr(a, "late_cancel", False))
        h.no_shows += a.attendance == "no_show"
        h.arrived += a.attendance == "arrived"
        h.moved += bool(getattr(a, "move_count", 0))
    for e in session.scalars(select(LedgerEntry).where(LedgerEntry.owner_id == owner_id,
                                                       LedgerEntry.client_id.in_(ids))):
        h = out[e.client_id]
        if e.kind in ("fee", "deposit_kept"):
            h.owed_cents += e.amount_cents
        elif e.kind == "waiver":
            h.waived_cents += e.amount_cents
        elif e.kind == "payment":
            h.paid_cents += e.amount_cents
    for r in session.scalars(select(Reply).where(Reply.owner_id == owner_id, Reply.client_id.in_(ids),
                                                 Reply.auto_reply.is_(False))):
        h = out[r.client_id]  # type: ignore[index]
        h.replies += 1
        if r.intent == "reason" and r.text:
            h.reasons.append(r.text[:80])
    _add_flags(session, owner_id, out)
    return out


def _add_flags(session: Session, owner_id: int, out: dict[int, History]) -> None:
    """Repeat offender / suddenly unreliable, from the workflows package when it is there."""
    try:
        from workflows import history as wf_history  # issue 4
    except ImportError:
        wf_history = None
    flagger = getattr(wf_history, "flags_for_client", None) if wf_history else None
    for client_id, h in out.items():
        if flagger is not None:
            try:
                h.flags = list(flagger(session, client_id))
                continue
            except TypeError:
                pass
        if h.no_shows + h.late_cancelled >= 2:
            h.flags.append("repeat")
