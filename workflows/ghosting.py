"""Flow 7: the two-step ultimatum for a client who went silent.

``start_ghosting`` (after unanswered no-show follow-ups, or by the owner for any client: ``reagenda ghost start``)
plans a check-in that only asks whether they are all right; ``ghost_wait_days`` later an ultimatum naming the closing
date and the outstanding amount; on that date the file is closed, a numbered invoice is issued for the fees owed,
and a last conciliatory note says the door stays open. Any answer stops it (``workflows.answers``).
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Client, LedgerEntry, Step
from workflows import ledger
from workflows.decisions import Decision, Send, Skip
from workflows.kinds import handles
from workflows.steps import replan_client

log = logging.getLogger(__name__)


def start_ghosting(session: Session, client: Client, now: datetime, *, reason: str = "started by the owner") -> bool:
    """Start the sequence for ``client``. False (and nothing changes) when it is already running or the file is
    closed."""
    if client.state in ("ghosting", "closed"):
        return False
    client.state, client.ghost_started_at = "ghosting", now
    replan_client(session, client, now)
    log.info("client %s: ghosting sequence started (%s)", client.id, reason)
    return True


def _ghosting(session: Session, step: Step, *, closing: bool = False) -> Client | Skip:
    client = session.get(Client, step.subject_id)
    if client is None:
        return Skip("client no longer exists")
    started = step.payload.get("started")
    if closing and client.state == "closed" and client.closed_at is not None:
        return client  # a retry after the file was closed: send the last note again under the same key
    if client.state != "ghosting" or client.ghost_started_at is None:
        return Skip(f"client file is {client.state}: the sequence was stopped")
    if started and datetime.fromisoformat(started) != client.ghost_started_at:
        return Skip("a newer ghosting sequence replaced this one")
    return client


@handles("ghost_checkin")
def ghost_checkin(session: Session, step: Step, now: datetime) -> Decision:
    client = _ghosting(session, step)
    if isinstance(client, Skip):
        return client
    return Send(kind="ghost_checkin", client_id=client.id, appointment_id=None)


@handles("ghost_ultimatum")
def ghost_ultimatum(session: Session, step: Step, now: datetime) -> Decision:
    client = _ghosting(session, step)
    if isinstance(client, Skip):
        return client
    bal = ledger.balance(session, client.id)
    return Send(kind="ghost_ultimatum", client_id=client.id, appointment_id=None,
                context={"closing": datetime.fromisoformat(step.payload["closing"]),
                         "outstanding_cents": bal.to_invoice_cents})


@handles("ghost_close")
def ghost_close(session: Session, step: Step, now: datetime) -> Decision:
    client = _ghosting(session, step, closing=True)
    if isinstance(client, Skip):
        return client
    if client.state == "ghosting":
        client.state, client.closed_at = "closed", now
        ledger.issue_invoice(session, client, now, reason="outstanding fees at the closing of the file")
        log.info("client %s: file closed", client.id)
    invoice = session.scalar(select(LedgerEntry).where(LedgerEntry.client_id == client.id,
                                                       LedgerEntry.kind == "invoice")
                             .order_by(LedgerEntry.id.desc()).limit(1))
    fresh = invoice is not None and invoice.created_at >= (client.closed_at or now)
    return Send(kind="ghost_close", client_id=client.id, appointment_id=None,
                context={"invoice_number": invoice.invoice_number if fresh and invoice else "",
                         "invoice_cents": invoice.amount_cents if fresh and invoice else 0})
