"""Per-client history for the clients pages, as ``workflows.history`` computes it (issue 4): the counts, the
reliability score and the flags (repeat offender, suddenly unreliable). This module only adapts it for templates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from sqlalchemy.orm import Session

from store.models import Client, Owner
from workflows import history as wf
from workflows.policy import Policy


@dataclass
class History:
    h: wf.ClientHistory
    reliability: int | None
    flags: list[str] = field(default_factory=list)

    appointments = property(lambda self: self.h.appointments)
    confirmed = property(lambda self: self.h.confirmations)
    cancelled = property(lambda self: self.h.cancellations)
    late_cancelled = property(lambda self: self.h.late_cancellations)
    no_shows = property(lambda self: self.h.no_shows)
    moved = property(lambda self: self.h.reschedules)
    owed_cents = property(lambda self: self.h.fees_owed_cents)
    waived_cents = property(lambda self: self.h.fees_waived_cents)
    paid_cents = property(lambda self: self.h.fees_paid_cents)
    median_response_s = property(lambda self: self.h.median_response_s)

    @property
    def reasons(self) -> list[str]:
        return [f"{reason} ×{n}" if n > 1 else reason for reason, n in self.h.reasons.most_common()]


def histories(session: Session, owner_id: int, clients: Iterable[Client], now: datetime) -> dict[int, History]:
    owner = session.get(Owner, owner_id)
    policy = Policy.from_dict(owner.policy if owner else {})
    out = {}
    for c in clients:
        h = wf.load_history(session, c.id, now)
        out[c.id] = History(h, wf.reliability_score(h), wf.flags(h, policy))
    return out
