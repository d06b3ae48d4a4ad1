"""Build the full ``OutgoingMessage`` for a stored ``Message`` row: what every email channel needs to produce a
well-formed message (locale, kind as category, a signed unsubscribe link for the client, the ICS invitation for
kinds that announce a time). ``workflows.outbound.deliver`` can call ``outgoing_for`` instead of building the
dataclass by hand; channels still fill in Reply-To, Message-ID and List-Unsubscribe from the message id alone.
"""
from __future__ import annotations

import functools
from email.utils import formataddr, parseaddr

from sqlalchemy.orm import Session

from channels.base import OutgoingMessage
from channels.ics import ICS_KINDS, invitation
from channels.links import make_link
from reagenda.settings import Settings
from store.models import Appointment, Client, Message, Owner


def outgoing_for(settings: Settings, session: Session, msg: Message) -> OutgoingMessage:
    client = session.get(Client, msg.client_id) if msg.client_id else None
    to_client = client is not None and msg.recipient in (client.email, client.phone)  # email, SMS or WhatsApp
    unsubscribe = make_link(settings, "unsubscribe", client_id=client.id) if to_client and client else ""
    attachments = ()
    if to_client and msg.kind in ICS_KINDS and msg.appointment_id:
        appt = session.get(Appointment, msg.appointment_id)
        owner = session.get(Owner, msg.owner_id)
        if appt is not None and owner is not None and client is not None:
            method = "CANCEL" if appt.status == "cancelled" else ICS_KINDS[msg.kind]
            attachments = (invitation(
                method=method, uid=f"reagenda-{appt.id}@{settings.inbound_domain or 'reagenda.local'}",
                sequence=int(getattr(appt, "move_count", 0) or 0), starts_at=appt.starts_at, ends_at=appt.ends_at,
                summary=appt.title or (owner.business_name or owner.name), organizer_email=owner.email,
                organizer_name=owner.business_name or owner.name, attendee_email=client.email,
                location=appt.location, url=appt.meeting_link, now=msg.created_at),)
    return OutgoingMessage(
        idempotency_key=msg.idempotency_key, recipient=msg.recipient, sender=sender_for(settings, session, msg),
        subject=msg.subject, text=msg.body_text, html=msg.body_html, message_id=msg.id, locale=msg.locale,
        kind=msg.kind, unsubscribe_url=unsubscribe, attachments=attachments)


def mark_address_rejected(session: Session, msg: Message, reason: str) -> Client | None:
    """After an ``AddressRejected`` for ``msg``: mark the client's address on that medium so nothing more is sent
    to it (``email_status`` + ``opted_out`` for email, ``opted_out`` for sms/whatsapp). The channel itself stays
    in use for every other client. Returns the client marked, if any."""
    client = session.get(Client, msg.client_id) if msg.client_id else None
    if client is None:
        return None
    medium = msg.channel if msg.channel in ("sms", "whatsapp") else "email"
    if medium == "email":
        if msg.recipient.strip().lower() != client.email.strip().lower():
            return None  # the owner's own address, or an old address the client has since changed
        client.email_status = "bounced"
    if medium not in (client.opted_out or []):
        client.opted_out = [*(client.opted_out or []), medium]
    session.flush()
    return client


@functools.lru_cache(maxsize=8)
def _parsed(address: str) -> tuple[str, str]:
    return parseaddr(address)  # EMAIL_FROM is the same for every message; parseaddr is slow


def sender_for(settings: Settings, session: Session, msg: Message) -> str:
    """EMAIL_FROM's address under the owner's sender name from Settings (or the business name), so a client
    sees "Estudio Lumen <citas@…>" rather than the installation's name."""
    name, address = _parsed(settings.email_from)
    owner = session.get(Owner, msg.owner_id)
    if owner is not None:
        name = (owner.preferences or {}).get("sender_name") or owner.business_name or name
    return formataddr((name, address)) if address else settings.email_from
