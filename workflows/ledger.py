"""The cancellation policy as money facts: ledger entries for deposits, carry-overs, kept deposits, fees owed,
waivers (with their reason) and invoices.

Kinds written here: ``deposit`` (held for an appointment), ``carry_over`` (cancelled or moved in time: the deposit
moves to the next booking if it is made within the grace period), ``deposit_kept`` (late cancellation, late move,
no-show, or no rebooking within grace), ``fee`` (the same when no deposit was taken: owed), ``waiver`` (the owner
forgave a fee or kept deposit, with the reason), ``payment`` and ``invoice`` (numbered per owner).

Decisions (``cancellation_outcome``) are pure; the rest records them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.db import is_postgres
from store.models import Appointment, Client, LedgerEntry, Owner
from workflows.policy import Policy

log = logging.getLogger(__name__)

CHARGE_KINDS = ("fee", "deposit_kept")


@dataclass(frozen=True)
class Outcome:
    kind: str  # carry_over | deposit_kept | fee | none
    amount_cents: int
    reason: str


def is_late(policy: Policy, starts_at: datetime, when: datetime) -> bool:
    """Cancelled or moved with less than the policy window left before the (original) start."""
    return when > starts_at - timedelta(hours=policy.window_hours)


def cancellation_outcome(policy: Policy, *, starts_at: datetime, when: datetime, event: str) -> Outcome:
    """What a cancellation, move or no-show costs. ``event``: cancel | move | no_show."""
    late = event == "no_show" or is_late(policy, starts_at, when)
    label = {"cancel": "cancelled", "move": "moved", "no_show": "no-show"}[event]
    if not late:
        if policy.deposit_cents > 0:
            grace_end = starts_at + timedelta(days=policy.grace_days)
            return Outcome("carry_over", policy.deposit_cents,
                           f"{label} at least {policy.window_hours} h before: the deposit carries over if the new "
                           f"appointment is booked by {grace_end:%Y-%m-%d %H:%M}Z")
        return Outcome("none", 0, f"{label} in time")
    why = "no-show" if event == "no_show" else f"{label} less than {policy.window_hours} h before"
    if policy.deposit_cents > 0:
        return Outcome("deposit_kept", policy.deposit_cents, f"{why}: deposit kept")
    if policy.fee_cents > 0:
        return Outcome("fee", policy.fee_cents, f"{why}: late fee owed")
    return Outcome("none", 0, f"{why} (no deposit or fee in the policy)")


def record_outcome(session: Session, appt: Appointment, outcome: Outcome, now: datetime) -> LedgerEntry | None:
    if outcome.kind == "none" or outcome.amount_cents <= 0:
        return None
    policy = Policy.from_dict(appt.policy)
    entry = LedgerEntry(owner_id=appt.owner_id, client_id=appt.client_id, appointment_id=appt.id,
                        kind=outcome.kind, amount_cents=outcome.amount_cents, currency=policy.currency,
                        reason=outcome.reason, invoice_number=None, created_at=now)
    session.add(entry)
    session.flush()
    log.info("ledger: %s %d %s for appointment %s", entry.kind, entry.amount_cents, entry.currency, appt.id)
    return entry


def apply_policy(session: Session, appt: Appointment, *, event: str, starts_at: datetime,
                 now: datetime) -> LedgerEntry | None:
    """Record what a cancellation, move or no-show costs under the appointment's policy snapshot."""
    outcome = cancellation_outcome(Policy.from_dict(appt.policy), starts_at=starts_at, when=now, event=event)
    return record_outcome(session, appt, outcome, now)


def _carried_reason(appt_id: int) -> str:
    return f"carried over from appointment {appt_id}"


def open_carry_over(session: Session, client: Client, now: datetime) -> LedgerEntry | None:
    """A deposit carried over from a cancellation whose grace period has not ended and that no booking used yet."""
    for entry in session.scalars(select(LedgerEntry).where(LedgerEntry.client_id == client.id,
                                                           LedgerEntry.kind == "carry_over")
                                 .order_by(LedgerEntry.created_at)):
        source = session.get(Appointment, entry.appointment_id) if entry.appointment_id else None
        if source is None or source.status != "cancelled":
            continue  # a move carries the deposit within the same appointment
        policy = Policy.from_dict(source.policy)
        if now > source.starts_at + timedelta(days=policy.grace_days):
            continue
        if not carry_over_used(session, entry):
            return entry
    return None


def carry_over_used(session: Session, entry: LedgerEntry) -> bool:
    return session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.client_id == entry.client_id, LedgerEntry.kind == "deposit",
        LedgerEntry.reason == _carried_reason(entry.appointment_id or 0))) > 0


def deposit_for_new(session: Session, appt: Appointment, client: Client, now: datetime) -> LedgerEntry | None:
    """A new appointment's deposit: the carried-over one if there is one in grace, else the policy's (if any)."""
    carried = open_carry_over(session, client, now)
    policy = Policy.from_dict(appt.policy)
    if carried is not None:
        entry = LedgerEntry(owner_id=appt.owner_id, client_id=client.id, appointment_id=appt.id, kind="deposit",
                            amount_cents=carried.amount_cents, currency=carried.currency,
                            reason=_carried_reason(carried.appointment_id or 0), created_at=now)
    elif policy.deposit_cents > 0:
        entry = LedgerEntry(owner_id=appt.owner_id, client_id=client.id, appointment_id=appt.id, kind="deposit",
                            amount_cents=policy.deposit_cents, currency=policy.currency,
                            reason="deposit for this appointment", created_at=now)
    else:
        return None
    session.add(entry)
    session.flush()
    return entry


def deposits_for_new(session: Session, new: list[tuple[Any, Policy]], now: datetime) -> None:
    """``deposit_for_new`` for a batch of new appointments (each with its policy): one query finds the few clients
    who may have a carried-over deposit (they go one by one, so two new bookings never take the same one); every
    other deposit is the policy's, inserted in one statement."""
    client_ids = {appt.client_id for appt, _ in new}
    may_carry = set(session.scalars(select(LedgerEntry.client_id).where(
        LedgerEntry.client_id.in_(client_ids), LedgerEntry.kind == "carry_over").distinct()))
    rows = []
    for appt, policy in new:
        if appt.client_id in may_carry:
            deposit_for_new(session, appt, appt.client, now)
        elif policy.deposit_cents > 0:
            rows.append({"owner_id": appt.owner_id, "client_id": appt.client_id, "appointment_id": appt.id,
                         "kind": "deposit", "amount_cents": policy.deposit_cents, "currency": policy.currency,
                         "reason": "deposit for this appointment", "invoice_number": None, "created_at": now})
    if rows:
        session.execute(LedgerEntry.__table__.insert(), rows)


def waive(session: Session, entry_or_appointment: LedgerEntry | Appointment, reason: str,
          now: datetime) -> list[LedgerEntry]:
    """The owner's one-click waiver: forgive a fee or a kept deposit (all of an appointment's, given one), with the
    reason recorded. Waiving what is already waived does nothing. Returns the waiver entries written."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a waiver needs a reason (for example: 'family emergency')")
    if isinstance(entry_or_appointment, LedgerEntry):
        appt_id, client_id = entry_or_appointment.appointment_id, entry_or_appointment.client_id
        owner_id = entry_or_appointment.owner_id
    else:
        appt_id, client_id = entry_or_appointment.id, entry_or_appointment.client_id
        owner_id = entry_or_appointment.owner_id
    entries = list(session.scalars(select(LedgerEntry).where(LedgerEntry.client_id == client_id,
                                                             LedgerEntry.appointment_id == appt_id)))
    charged = sum(e.amount_cents for e in entries if e.kind in CHARGE_KINDS)
    waived = sum(e.amount_cents for e in entries if e.kind == "waiver")
    if charged - waived <= 0:
        return []
    currency = next((e.currency for e in entries if e.kind in CHARGE_KINDS), "EUR")
    entry = LedgerEntry(owner_id=owner_id, client_id=client_id, appointment_id=appt_id, kind="waiver",
                        amount_cents=charged - waived, currency=currency, reason=reason, created_at=now)
    session.add(entry)
    session.flush()
    log.info("ledger: owner waived %d %s for appointment %s", entry.amount_cents, currency, appt_id)
    return [entry]


@dataclass(frozen=True)
class Balance:
    owed_cents: int  # fees owed, minus waivers and payments
    invoiced_cents: int
    kept_cents: int  # deposits kept (not waived)
    waived_cents: int
    paid_cents: int
    currency: str

    @property
    def to_invoice_cents(self) -> int:
        return max(0, self.owed_cents - self.invoiced_cents)


def balance(session: Session, client_id: int) -> Balance:
    entries = list(session.scalars(select(LedgerEntry).where(LedgerEntry.client_id == client_id)))
    by_appt: dict[int | None, list[LedgerEntry]] = {}
    for e in entries:
        by_appt.setdefault(e.appointment_id, []).append(e)
    owed = kept = 0
    for group in by_appt.values():
        fees = sum(e.amount_cents for e in group if e.kind == "fee")
        deposits = sum(e.amount_cents for e in group if e.kind == "deposit_kept")
        waived = sum(e.amount_cents for e in group if e.kind == "waiver")
        owed += max(0, fees - waived)
        kept += max(0, deposits - max(0, waived - fees))
    paid = sum(e.amount_cents for e in entries if e.kind == "payment")
    return Balance(owed_cents=max(0, owed - paid), invoiced_cents=sum(e.amount_cents for e in entries
                                                                      if e.kind == "invoice"),
                   kept_cents=kept, waived_cents=sum(e.amount_cents for e in entries if e.kind == "waiver"),
                   paid_cents=paid, currency=next((e.currency for e in entries), "EUR"))


def issue_invoice(session: Session, client: Client, now: datetime, reason: str) -> LedgerEntry | None:
    """A numbered invoice (per-owner sequence, ``2026-0001``) for the fees owed and not yet invoiced."""
    amount = balance(session, client.id).to_invoice_cents
    if amount <= 0:
        return None
    query = select(Owner).where(Owner.id == client.owner_id)
    if is_postgres(session.get_bind()):
        query = query.with_for_update()  # two closings at once must not take the same number
    owner = session.scalars(query).one()
    owner.invoice_seq = (owner.invoice_seq or 0) + 1
    number = f"{now:%Y}-{owner.invoice_seq:04d}"
    currency = balance(session, client.id).currency
    entry = LedgerEntry(owner_id=owner.id, client_id=client.id, appointment_id=None, kind="invoice",
                        amount_cents=amount, currency=currency, reason=reason, invoice_number=number,
                        created_at=now)
    session.add(entry)
    session.flush()
    log.info("invoice %s issued to client %s for %d %s", number, client.id, amount, currency)
    return entry
