"""Which owner, client and thread does an inbound email belong to?

In order of trust: (1) our per-thread Reply-To address ``reply+<token>@INBOUND_DOMAIN`` among the recipients,
(2) our Message-ID in In-Reply-To / References, (3) the sender's address among the owners' clients (the one we
wrote to most recently wins when several owners know it), (4) for an unknown sender, the owner whose address the
mail was sent to, or the only owner of a single-business install. Tokens are HMAC-checked (``channels.threads``),
so a guessed address cannot inject a reply into another client's thread. Nothing here writes the database.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from channels.threads import find_message_ids
from reagenda.settings import Settings
from store.models import Appointment, Client, Message, Owner


@dataclass
class Match:
    how: str  # reply_to | in_reply_to | sender | owner_address | single_owner | none
    owner: Owner | None = None
    client: Client | None = None
    message: Message | None = None
    appointment: Appointment | None = None

    def describe(self) -> dict[str, object]:
        return {"how": self.how,
                "owner": {"id": self.owner.id, "email": self.owner.email} if self.owner else None,
                "client": {"id": self.client.id, "email": self.client.email} if self.client else None,
                "message": {"id": self.message.id, "kind": self.message.kind,
                            "subject": self.message.subject} if self.message else None,
                "appointment": self.appointment.id if self.appointment else None}


def sender_address(mail: EmailMessage) -> str:
    return parseaddr(str(mail.get("Reply-To") or mail.get("From") or ""))[1].strip().lower()


def recipients(mail: EmailMessage, envelope_to: list[str] | tuple[str, ...] = ()) -> list[str]:
    values = [str(v) for name in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
              for v in (mail.get_all(name) or [])]
    out = [addr.strip().lower() for _, addr in getaddresses(values + list(envelope_to)) if addr]
    return list(dict.fromkeys(out))


def _from_message(session: Session, message_id: int, how: str) -> Match | None:
    msg = session.get(Message, message_id)
    if msg is None:
        return None
    owner = session.get(Owner, msg.owner_id)
    client = session.get(Client, msg.client_id) if msg.client_id else None
    appt = session.get(Appointment, msg.appointment_id) if msg.appointment_id else None
    return Match(how, owner, client, msg, appt)


def match(session: Session, settings: Settings, mail: EmailMessage,
          envelope_to: list[str] | tuple[str, ...] = ()) -> Match:
    to = recipients(mail, envelope_to)
    for address in to:
        for mid in find_message_ids(settings, address):
            found = _from_message(session, mid, "reply_to")
            if found:
                return found
    threading = " ".join(str(mail.get(h) or "") for h in ("In-Reply-To", "References"))
    for mid in reversed(find_message_ids(settings, threading)):  # the last reference is the closest parent
        found = _from_message(session, mid, "in_reply_to")
        if found:
            return found
    sender = sender_address(mail)
    owners_to = list(session.scalars(select(Owner).where(func.lower(Owner.email).in_(to)))) if to else []
    if sender:
        clients = list(session.scalars(select(Client).where(func.lower(Client.email) == sender)))
        if owners_to:
            preferred = [c for c in clients if c.owner_id in {o.id for o in owners_to}]
            clients = preferred or clients
        if clients:
            client = max(clients, key=lambda c: session.scalar(
                select(func.max(Message.id)).where(Message.client_id == c.id)) or 0)
            last = session.scalar(select(Message).where(Message.client_id == client.id)
                                  .order_by(Message.id.desc()).limit(1))
            appt = session.get(Appointment, last.appointment_id) if last and last.appointment_id else None
            return Match("sender", session.get(Owner, client.owner_id), client, last, appt)
    if owners_to:
        return Match("owner_address", owners_to[0])
    owners = list(session.scalars(select(Owner).limit(2)))
    if len(owners) == 1:
        return Match("single_owner", owners[0])
    return Match("none")
