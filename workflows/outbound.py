"""Recording and delivering one client message with its idempotency key.

``prepare`` renders the message (at send time, in the client's language and zone) and commits a ``Message`` row
keyed by the step before any provider is called; ``deliver`` calls the channel and marks the row sent. A retried
job finds the row: ``sent`` means done, anything else is sent again under the same key.
"""
from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import OutgoingMessage
from channels.registry import email_channel
from channels.render import format_when, pick_locale, render
from reagenda.runtime import Context
from store.models import Appointment, Client, Message, Owner, Step
from workflows.decisions import Send, Skip

log = logging.getLogger(__name__)


def prepare(ctx: Context, session: Session, step: Step, decision: Send, now: datetime) -> Message | Skip:
    key = step.idempotency_key
    existing = session.scalar(select(Message).where(Message.idempotency_key == key))
    if existing is not None:
        return existing
    client = session.get(Client, decision.client_id)
    if client is None:
        return Skip("client no longer exists")
    if "email" in (client.opted_out or []):
        return Skip("client opted out of email")
    owner = session.get(Owner, client.owner_id)
    assert owner is not None
    appt = session.get(Appointment, decision.appointment_id) if decision.appointment_id else None
    locale = pick_locale(client.locale, owner.locale)
    tz = client.timezone or owner.timezone
    context = {
        "business": owner.business_name or owner.name or owner.email,
        "client_name": client.name or client.email.split("@")[0],
        **decision.context,
    }
    if appt is not None:
        context.update(
            title=appt.title,
            when=format_when(appt.starts_at, tz, locale),
            time_only=format_time(appt.starts_at.astimezone(ZoneInfo(tz)), format="short", locale=locale),
            meeting_link=appt.meeting_link,
            location=appt.location,
        )
    rendered = render(decision.kind, locale, context)
    msg = Message(owner_id=owner.id, client_id=client.id, appointment_id=appt.id if appt else None,
                  step_id=step.id, kind=decision.kind, channel="email", recipient=client.email, locale=locale,
                  subject=rendered.subject, body_text=rendered.text, body_html="", idempotency_key=key,
                  status="pending", provider_id="", error="", created_at=now)
    session.add(msg)
    return msg


def deliver(ctx: Context, msg: Message) -> str:
    channel = email_channel(ctx.settings)
    return channel.send(OutgoingMessage(
        idempotency_key=msg.idempotency_key, recipient=msg.recipient, sender=ctx.settings.email_from,
        subject=msg.subject, text=msg.body_text, html=msg.body_html, message_id=msg.id,
    ))
