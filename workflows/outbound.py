"""Recording and delivering one message (to a client, or a note to the owner) with its idempotency key.

``prepare`` applies the client limits (quiet hours, messages per day: a deferral, never a drop), renders the message
at send time in the reader's language and zone, and adds a ``Message`` row keyed by the step; the executor commits
it before ``deliver`` calls the channel. A retried job finds the row: ``sent`` means done, anything else is sent
again under the same key.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

from babel.numbers import format_currency
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import OutgoingMessage
from channels.compose import outgoing_for
from channels.registry import message_channel
from channels.render import babel_locale, format_clock, format_when, pick_locale, render
from reagenda.runtime import Context
from reagenda.settings import Settings
from store.db import one_of
from store.models import Appointment, Client, Message, Owner, Step
from workflows import limits
from workflows.decisions import Defer, Send, Skip
from workflows.policy import Policy
from workflows.steps import client_policy

log = logging.getLogger(__name__)


class Known:
    """What the steps of a job look up together before deciding: the messages already recorded under their
    idempotency keys, and each of their clients' messages of the last two days (for the daily limit). With it,
    deciding a step asks the database nothing; a key or client outside the job is looked up when first asked."""

    def __init__(self, session: Session, steps: list[Step], client_ids: set[int], now: datetime) -> None:
        self._now = now
        self._keys = {s.idempotency_key for s in steps}
        self._messages: dict[str, Message] = {m.idempotency_key: m for m in session.scalars(
            select(Message).where(one_of(Message.idempotency_key, self._keys, session.get_bind())))
        } if self._keys else {}
        self._recent: dict[int, list[tuple[datetime, str, str, bool]]] = {}
        self._load_recent(session, client_ids)

    def _load_recent(self, session: Session, client_ids: set[int]) -> None:
        for client_id in client_ids:
            self._recent.setdefault(client_id, [])
        if not client_ids:
            return
        rows = session.execute(
            select(Message.client_id, Message.created_at, Message.recipient, Message.status, Step.payload)
            .outerjoin(Step, Step.id == Message.step_id)
            .where(one_of(Message.client_id, client_ids, session.get_bind()),
                   Message.created_at >= self._now - timedelta(days=2)))
        for client_id, created_at, recipient, status, payload in rows:
            self._recent[client_id].append((created_at, recipient, status,
                                            bool((payload or {}).get("client_triggered"))))

    def message(self, session: Session, key: str) -> Message | None:
        if key in self._keys:
            return self._messages.get(key)
        return session.scalar(select(Message).where(Message.idempotency_key == key))

    def counted_today(self, session: Session, client: Client, tz: str, now: datetime) -> int:
        """Messages to the client today (their zone) that count against the daily limit: not owner notes, not
        failed, not triggered by the client."""
        if client.id not in self._recent:
            self._load_recent(session, {client.id})
        start, end = limits.day_bounds(now, tz)
        return sum(1 for created_at, recipient, status, client_triggered in self._recent[client.id]
                   if recipient == client.email and start <= created_at < end and status != "failed"
                   and not client_triggered)

    def add(self, msg: Message, step: Step) -> None:
        """A message recorded during the job counts for the steps decided after it."""
        self._messages[msg.idempotency_key] = msg
        self._keys.add(msg.idempotency_key)
        if msg.client_id in self._recent:
            self._recent[msg.client_id].append((msg.created_at, msg.recipient, msg.status,
                                                bool((step.payload or {}).get("client_triggered"))))


def prepare(ctx: Context, session: Session, step: Step, decision: Send, now: datetime,
            known: Known) -> Message | Skip | Defer:
    key = step.idempotency_key
    existing = known.message(session, key)
    if existing is not None:
        return existing
    client = session.get(Client, decision.client_id)
    if client is None:
        return Skip("client no longer exists")
    owner = session.get(Owner, client.owner_id)
    assert owner is not None
    appt = session.get(Appointment, decision.appointment_id) if decision.appointment_id else None
    policy = Policy.from_dict(appt.policy) if appt is not None else client_policy(owner, client)
    medium = "email"
    if decision.to_owner:
        recipient, locale, tz = owner.email, pick_locale(owner.locale), owner.timezone
    else:
        medium = medium_for(ctx.settings, client)
        if medium in (client.opted_out or []):
            return Skip(f"client opted out of {medium}")
        recipient = client.email if medium == "email" else client.phone
        locale, tz = pick_locale(client.locale, owner.locale), client.timezone or owner.timezone
        if not (decision.urgent or (step.payload or {}).get("client_triggered")):
            later = limits.defer_until(now, tz, policy, sent_today=known.counted_today(session, client, tz, now),
                                       deadline=appt.starts_at if appt is not None and appt.status == "scheduled"
                                       and appt.starts_at > now else None)
            if later is not None:
                return Defer(*later)
    context = message_context(ctx.settings, owner, client, appt, locale, tz, policy)
    context.update(decision.context)
    owner_texts = ((owner.preferences or {}).get("texts") or {}).get(locale) or {}
    rendered = render(decision.kind, locale, context, owner_text=owner_texts.get(decision.kind))
    msg = Message(owner_id=owner.id, client_id=client.id, appointment_id=appt.id if appt else None,
                  step_id=step.id, kind=decision.kind, channel=medium, recipient=recipient, locale=locale,
                  subject=rendered.subject, body_text=rendered.text, body_html="", idempotency_key=key,
                  status="pending", provider_id="", error="", created_at=now)
    session.add(msg)
    known.add(msg, step)
    return msg


def money(cents: int, currency: str, locale: str) -> str:
    return format_currency(cents / 100, currency, locale=babel_locale(locale))


def policy_sentence(policy: Policy, locale: str) -> str:
    """The cancellation policy in one sentence, in the reader's language."""
    es = locale == "es"
    h = policy.window_hours
    if policy.deposit_cents > 0:
        amount = money(policy.deposit_cents, policy.currency, locale)
        return (f"Si cancelas o cambias la cita con al menos {h} h de antelación, tu depósito de {amount} pasa a la "
                f"nueva cita (resérvala en los {policy.grace_days} días siguientes); con menos antelación o si no "
                f"vienes, el depósito no se devuelve." if es else
                f"Cancel or move at least {h} hours before and your {amount} deposit carries over to the new "
                f"appointment (book it within {policy.grace_days} days); later than that, or a no-show, and the "
                f"deposit is kept.")
    if policy.fee_cents > 0:
        amount = money(policy.fee_cents, policy.currency, locale)
        return (f"Puedes cancelar o cambiar la cita sin coste hasta {h} h antes; después, o si no vienes, se cobra "
                f"{amount}." if es else
                f"You can cancel or move free of charge up to {h} hours before; later than that, or a no-show, "
                f"costs {amount}.")
    return (f"Si no puedes venir, avísanos con al menos {h} h de antelación, por favor." if es else
            f"If you cannot make it, please let us know at least {h} hours before.")


def message_context(settings: Settings, owner: Owner, client: Client, appt: Appointment | None, locale: str,
                    tz: str, policy: Policy) -> dict[str, Any]:
    """What every template can use: names, the appointment in the reader's zone, the policy and signed links."""
    from channels.links import make_link

    def link(action: str, **extra: Any) -> str:
        return make_link(settings, action, client_id=client.id, appointment_id=appt.id if appt else None,
                         extra=extra or None)

    context: dict[str, Any] = {
        "business": owner.business_name or owner.name or owner.email,
        "owner_name": owner.name or owner.business_name or owner.email,
        "client_name": client.name or client.email.split("@")[0],
        "client_email": client.email,
        "client_phone": client.phone,
        "policy_sentence": policy_sentence(policy, locale),
        "offer_text": policy.offer_text,
        "link": link,
        "money": lambda cents: money(int(cents), policy.currency, locale),
        "when_of": lambda instant: format_when(_as_dt(instant), tz, locale),
        "time_of": lambda instant: _time(_as_dt(instant), tz, locale),
        "title": "", "when": "", "time_only": "", "meeting_link": "", "location": "",
    }
    if appt is not None:
        context.update(title=appt.title, when=format_when(appt.starts_at, tz, locale),
                       time_only=_time(appt.starts_at, tz, locale), meeting_link=appt.meeting_link,
                       location=appt.location)
    return context


def _as_dt(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _time(instant: datetime, tz: str, locale: str) -> str:
    return format_clock(instant, tz, locale)


DeliverFn = Callable[[Context, Message], str]


def outgoing(ctx: Context, session: Session, msg: Message) -> OutgoingMessage:
    """Everything the channel needs, built while the session is open: the signed unsubscribe link for a client,
    the kind as category, and the ICS invitation for kinds that announce a new or moved time."""
    return outgoing_for(ctx.settings, session, msg)


def deliver(ctx: Context, message: OutgoingMessage, medium: str = "email") -> str:
    """Call the channel (outside any transaction: a slow provider holds no database connection)."""
    return message_channel(ctx.settings, medium).send(message)


def medium_for(settings: Settings, client: Client) -> str:
    """The client's preferred channel when it can be used (a phone number, Twilio configured and installed);
    email otherwise, so a preference the installation cannot honour never silences a client."""
    preferred = client.preferred_channel or "email"
    if preferred not in ("sms", "whatsapp") or not client.phone:
        return "email"
    sender = settings.twilio_from if preferred == "sms" else settings.twilio_whatsapp_from
    if not (settings.twilio_account_sid and settings.twilio_auth_token and sender):
        return "email"
    from channels.twilio_sms import TwilioSMSChannel

    return preferred if TwilioSMSChannel.enabled() else "email"
