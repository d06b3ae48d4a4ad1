"""Flow 9: a client's history, reliability score and flags, and the stricter policy a repeat offender gets.

The verdicts are pure functions over ``ClientHistory`` (a plain value); ``load_history`` reads it from the tables.
``flags_for_client`` is what the dashboard shows; ``apply_stricter_policy`` runs after each late cancellation or
no-show and writes the stricter overrides (deposit required, earlier reminders) onto the client, so the next
appointment's policy snapshot carries them. Existing appointments keep their promise.
"""
from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Appointment, Client, LedgerEntry, Message, Owner, Reply
from workflows.policy import Policy

log = logging.getLogger(__name__)

RECENT = 4  # the last N appointments are "recent" for the sudden-change flag
LONG_RELIABLE = 5  # at least this many earlier appointments without a late cancellation or no-show


@dataclass(frozen=True)
class Visit:
    """One appointment as history sees it, oldest first."""

    starts_at: datetime
    outcome: str  # kept | cancelled | late_cancel | no_show | upcoming
    moves: int = 0
    confirmed: bool = False


@dataclass
class ClientHistory:
    visits: list[Visit] = field(default_factory=list)
    response_times_s: list[float] = field(default_factory=list)
    fees_owed_cents: int = 0
    fees_waived_cents: int = 0
    fees_paid_cents: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.visits if v.outcome == outcome)

    @property
    def appointments(self) -> int:
        return len(self.visits)

    @property
    def confirmations(self) -> int:
        return sum(1 for v in self.visits if v.confirmed)

    @property
    def cancellations(self) -> int:
        return self.count("cancelled") + self.count("late_cancel")

    @property
    def late_cancellations(self) -> int:
        return self.count("late_cancel")

    @property
    def no_shows(self) -> int:
        return self.count("no_show")

    @property
    def reschedules(self) -> int:
        return sum(v.moves for v in self.visits)

    @property
    def median_response_s(self) -> float | None:
        return statistics.median(self.response_times_s) if self.response_times_s else None


def reliability_score(h: ClientHistory) -> int | None:
    """0-100: kept appointments and in-time cancellations count for, late cancellations count against, a no-show
    twice as much. ``None`` before anything was decided."""
    kept, early = h.count("kept"), h.count("cancelled")
    late, missed = h.late_cancellations, h.no_shows
    decided = kept + early + late + 2 * missed
    if decided == 0:
        return None
    return round(100 * (kept + early) / decided)


def flags(h: ClientHistory, policy: Policy) -> list[str]:
    """``repeat_no_show`` / ``repeat_late_cancel``: at the policy's thresholds (switch to the stricter policy).
    ``sudden``: a long-reliable client whose recent appointments are being cancelled (suggest a personal call)."""
    out = []
    if h.no_shows >= policy.strict_after_no_shows:
        out.append("repeat_no_show")
    if h.late_cancellations >= policy.strict_after_late_cancels:
        out.append("repeat_late_cancel")
    decided = [v for v in h.visits if v.outcome != "upcoming"]
    earlier, recent = decided[:-RECENT], decided[-RECENT:]
    long_reliable = (len(earlier) >= LONG_RELIABLE
                     and not any(v.outcome in ("late_cancel", "no_show") for v in earlier)
                     and sum(v.outcome == "cancelled" for v in earlier) <= 1)
    if long_reliable and sum(v.outcome in ("cancelled", "late_cancel", "no_show") for v in recent) >= 2:
        out.append("sudden")
    return out


def stricter_overrides(policy: Policy) -> dict[str, object]:
    return {"deposit_cents": max(policy.deposit_cents, policy.strict_deposit_cents),
            "reminder_hours": sorted({*policy.strict_reminder_hours, *policy.reminder_hours}, reverse=True)}


def _outcome(a: Appointment, now: datetime) -> str:
    if a.status == "cancelled":
        return "late_cancel" if a.late_cancel else "cancelled"
    if a.attendance == "no_show":
        return "no_show"
    if a.attendance == "arrived" or a.starts_at <= now:
        return "kept"
    return "upcoming"


def load_history(session: Session, client_id: int, now: datetime) -> ClientHistory:
    h = ClientHistory()
    for a in session.scalars(select(Appointment).where(Appointment.client_id == client_id)
                             .order_by(Appointment.starts_at)):
        h.visits.append(Visit(a.starts_at, _outcome(a, now), a.move_count or 0, a.confirmation == "confirmed"))
    client = session.get(Client, client_id)
    sent = sorted(t for t in session.scalars(select(Message.sent_at).where(
        Message.client_id == client_id, Message.status == "sent",
        Message.recipient == (client.email if client else ""))) if t is not None)
    for r in session.scalars(select(Reply).where(Reply.client_id == client_id, Reply.auto_reply.is_(False))
                             .order_by(Reply.received_at)):
        before = [t for t in sent if t <= r.received_at]
        if before:
            h.response_times_s.append((r.received_at - before[-1]).total_seconds())
        if r.intent == "reason":
            for part in r.text.split(";"):
                part = part.strip()
                if part.startswith("reason:"):
                    h.reasons[part.removeprefix("reason:").strip()] += 1
                elif part and ":" not in part:
                    h.reasons[part] += 1
    entries = list(session.scalars(select(LedgerEntry).where(LedgerEntry.client_id == client_id)))
    h.fees_owed_cents = sum(e.amount_cents for e in entries if e.kind in ("fee", "deposit_kept"))
    h.fees_waived_cents = sum(e.amount_cents for e in entries if e.kind == "waiver")
    h.fees_paid_cents = sum(e.amount_cents for e in entries if e.kind == "payment")
    return h


def _owner_policy(session: Session, client: Client) -> Policy:
    owner = session.get(Owner, client.owner_id)
    return Policy.from_dict(owner.policy if owner else {})


def flags_for_client(session: Session, client_id: int, now: datetime | None = None) -> list[str]:
    """The dashboard's flags for one client (see ``flags``)."""
    client = session.get(Client, client_id)
    if client is None:
        return []
    from datetime import timezone

    return flags(load_history(session, client_id, now or datetime.now(timezone.utc)), _owner_policy(session, client))


def apply_stricter_policy(session: Session, client: Client, now: datetime) -> bool:
    """Switch a repeat offender to the stricter policy for future appointments. True when it changed."""
    policy = _owner_policy(session, client)
    found = flags(load_history(session, client.id, now), policy)
    if not {"repeat_no_show", "repeat_late_cancel"} & set(found):
        return False
    wanted = {**(client.policy_overrides or {}), **stricter_overrides(policy)}
    if wanted == (client.policy_overrides or {}):
        return False
    client.policy_overrides = wanted
    log.info("client %s is a repeat offender (%s): stricter policy for future appointments", client.id,
             ", ".join(found))
    return True
