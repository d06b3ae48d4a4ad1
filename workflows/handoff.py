"""Handing a client's answer to the owner: a note to the owner's email with what the client said, sent through the
same step/message machinery (idempotency key, retries) as every client message."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Reply, Step
from workflows.decisions import Decision, Send, Skip
from workflows.kinds import handles


def hand_to_owner(session: Session, reply: Reply, now: datetime) -> Step:
    """Plan the owner note for ``reply`` (due now). One per reply."""
    key = f"r{reply.id}-owner_handoff"
    step = session.scalar(select(Step).where(Step.idempotency_key == key))
    if step is None:
        step = Step(owner_id=reply.owner_id, kind="owner_handoff", subject_type="reply", subject_id=reply.id,
                    due_at=now, idempotency_key=key, payload={}, created_at=now, state="pending", attempts=0,
                    max_attempts=5, outcome="")
        session.add(step)
        session.flush()
    return step


@handles("owner_handoff")
def owner_handoff(session: Session, step: Step, now: datetime) -> Decision:
    reply = session.get(Reply, step.subject_id)
    if reply is None or reply.client_id is None:
        return Skip("the reply or its client no longer exists")
    return Send(kind="owner_reply", client_id=reply.client_id, appointment_id=reply.appointment_id, to_owner=True,
                context={"reply_text": reply.text, "intent": reply.intent, "reply_channel": reply.channel,
                         "received_at": reply.received_at})
