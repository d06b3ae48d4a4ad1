"""Raw email in, a recorded answer out: parse → match → strip → auto-reply? → intent → record, once.

``analyse`` decides everything without writing (``reagenda reply explain`` shows it); ``process_raw`` writes:
an ``InboundEvent`` keyed by the email's Message-ID (so a webhook delivered twice is processed once) and, for a
known client, the answer through ``workflows.answers.record_answer``, which stops the client's sequences and acts on
clear intents. The owner always gets the reply's text (``workflows.handoff.hand_to_owner``). Only clear intents
are passed on as such; anything unsure is "other" and left to the owner. Unknown senders are never dropped: with an
owner to give them to they become a client of that owner (intent forced to "other"), otherwise (or when it is an
automatic message from nobody we know) the mail is kept as an ``InboundEvent`` for the owner.

Mail that cannot be read honestly (broken MIME, an unknown or wrong charset, no sender) raises ``InboundRejected``
before anything is stored; the web layer answers 4xx.
"""
from __future__ import annotations

import hashlib
import html as htmllib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import errors as email_errors
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reagenda.settings import Settings
from replies.autoreply import AutoReplyVerdict, detect
from replies.intent import Intent, classify
from replies.match import Match, match, sender_address
from replies.strip import strip_reply
from store.models import InboundEvent

log = logging.getLogger(__name__)

_FATAL_DEFECTS = (email_errors.StartBoundaryNotFoundDefect, email_errors.MultipartInvariantViolationDefect,
                  email_errors.NoBoundaryInMultipartDefect, email_errors.CloseBoundaryNotFoundDefect,
                  email_errors.InvalidMultipartContentTransferEncodingDefect)
# What the classifier says → what record_answer understands.
_TO_ANSWER = {"fine_busy": "fine"}


class InboundRejected(ValueError):
    """This input cannot be processed; ``str(exc)`` says why in one line (no content, no secrets)."""


@dataclass
class Analysis:
    dedup_key: str
    sender: str
    subject: str
    body: str
    text: str
    match: Match
    auto: AutoReplyVerdict
    intent: Intent
    unsubscribe: bool = False

    @property
    def answer_intent(self) -> str:
        """The intent passed to ``record_answer``: auto-replies are "auto_reply", unsure ones "other"."""
        if self.auto.is_auto:
            return "auto_reply"
        if self.unsubscribe:
            return "unsubscribe"
        if self.match.client is None or self.match.how in ("owner_address", "single_owner", "none"):
            return "other"
        if not self.intent.clear:
            return "other"
        return _TO_ANSWER.get(self.intent.name, self.intent.name)

    def as_dict(self) -> dict[str, Any]:
        return {"dedup_key": self.dedup_key, "sender": self.sender, "subject": self.subject,
                "match": self.match.describe(), "text": self.text,
                "auto_reply": {"is_auto": self.auto.is_auto, "reason": self.auto.reason},
                "intent": self.intent.as_dict(), "recorded_as": self.answer_intent}


@dataclass
class Outcome:
    status: str  # reply | auto_reply | unmatched | duplicate
    event_id: int | None
    reply_id: int | None = None
    analysis: Analysis | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse(raw: bytes) -> EmailMessage:
    if not raw or not raw.strip():
        raise InboundRejected("empty email")
    try:
        mail = message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # noqa: BLE001 - the parser is lenient; anything it raises means unreadable input
        raise InboundRejected(f"unreadable MIME ({type(exc).__name__})") from None
    assert isinstance(mail, EmailMessage)
    for part in mail.walk():
        bad = [d for d in part.defects if isinstance(d, _FATAL_DEFECTS)]
        if bad:
            raise InboundRejected(f"broken MIME structure ({type(bad[0]).__name__})")
    try:
        sender = parseaddr(str(mail.get("From") or ""))[1]
    except Exception:  # noqa: BLE001 - a malformed From header
        sender = ""
    if "@" not in sender:
        raise InboundRejected("no sender address in From")
    return mail


def body_text(mail: EmailMessage) -> str:
    """The plain-text body (HTML converted when there is no text part). Strict about charsets: a part that does not
    decode in the charset it declares is rejected rather than guessed."""
    part = mail.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    charset = part.get_content_charset() or "us-ascii"
    payload = part.get_payload(decode=True) or b""
    try:
        text = payload.decode(charset)
    except LookupError:
        raise InboundRejected(f"unknown charset {charset[:40]!r}") from None
    except UnicodeDecodeError:
        if charset.lower() in ("us-ascii", "ascii"):
            try:
                text = payload.decode("utf-8")  # undeclared UTF-8 is common and unambiguous
            except UnicodeDecodeError:
                raise InboundRejected(f"the body is not valid {charset}") from None
        else:
            raise InboundRejected(f"the body is not valid {charset[:40]}") from None
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return text


def html_to_text(html: str) -> str:
    """Enough HTML→text for a reply: drop quoted blocks (Gmail's gmail_quote, blockquote) and tags."""
    html = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", "", html)
    html = re.sub(r'(?is)<div[^>]*class="[^"]*gmail_quote[^"]*".*', "", html)
    html = re.sub(r"(?is)<blockquote\b.*?</blockquote>", "", html)
    html = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>", "\n", html)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", html))


def dedup_key_for(mail: EmailMessage, raw: bytes) -> str:
    mid = str(mail.get("Message-ID") or "").strip()
    if mid:
        return "email:" + mid[:280]
    return "email-sha256:" + hashlib.sha256(raw).hexdigest()


def analyse(session: Session, settings: Settings, raw: bytes, *, now: datetime,
            envelope_to: list[str] | tuple[str, ...] = ()) -> Analysis:
    mail = parse(raw)
    body = body_text(mail)
    subject = str(mail.get("Subject") or "")
    text = strip_reply(body)
    found = match(session, settings, mail, envelope_to)
    auto = detect(mail, subject=subject, text=text)
    tz = "UTC"
    if found.client is not None and found.client.timezone:
        tz = found.client.timezone
    elif found.owner is not None:
        tz = found.owner.timezone
    intent = classify(text, now=now, tz=tz)
    unsubscribe = bool(re.fullmatch(r"\s*(unsubscribe|baja|darse de baja)\s*", subject, re.IGNORECASE))
    return Analysis(dedup_key_for(mail, raw), sender_address(mail), subject, body, text, found, auto, intent,
                    unsubscribe)


def process_raw(session: Session, settings: Settings, raw: bytes, *, source: str, now: datetime,
                envelope_to: list[str] | tuple[str, ...] = ()) -> Outcome:
    """Process one inbound email. The caller commits (the web request, the IMAP poller)."""
    a = analyse(session, settings, raw, now=now, envelope_to=envelope_to)
    seen = session.scalar(select(InboundEvent).where(InboundEvent.dedup_key == a.dedup_key))
    if seen is not None:
        log.info("inbound %s already processed as event %s; ignored", a.dedup_key[:60], seen.id)
        return Outcome("duplicate", seen.id, seen.reply_id, a)
    detail = {"intent": a.intent.as_dict(), "match": a.match.how, "auto_reason": a.auto.reason}
    client, owner = a.match.client, a.match.owner
    if client is None and owner is not None and a.sender and not a.auto.is_auto:
        from workflows.lifecycle import client_for

        client = client_for(session, owner, a.sender, now=now)
        log.info("inbound mail from an unknown sender became client %s of owner %s (left to the owner)",
                 client.id, owner.id)
    if client is None:
        event = InboundEvent(source=source, dedup_key=a.dedup_key, owner_id=owner.id if owner else None,
                             client_id=None, reply_id=None, status="auto_reply" if a.auto.is_auto else "unmatched",
                             sender=a.sender, subject=a.subject[:1000], detail=a.text[:20000], received_at=now)
        session.add(event)
        session.flush()
        log.warning("inbound mail from %s matched no client%s; kept as event %s (%s)", a.sender,
                    "" if owner else " and no owner", event.id, event.status)
        return Outcome(event.status, event.id, None, a)

    from workflows.answers import record_answer

    reply = record_answer(session, client, channel="email", text=a.text, intent=a.answer_intent, now=now,
                          appointment=a.match.appointment, sender=a.sender, subject=a.subject[:1000],
                          raw_text=a.body[:100000], message_id=a.match.message.id if a.match.message else None,
                          dedup_key=a.dedup_key[:200])
    if not a.auto.is_auto:
        from workflows.handoff import hand_to_owner

        hand_to_owner(session, reply, now)  # one note per reply: the owner always reads what the client wrote
    status = "auto_reply" if a.auto.is_auto else "reply"
    event = InboundEvent(source=source, dedup_key=a.dedup_key, owner_id=client.owner_id, client_id=client.id,
                         reply_id=reply.id, status=status, sender=a.sender, subject=a.subject[:1000],
                         detail=json.dumps(detail, default=str), received_at=now)
    session.add(event)
    session.flush()
    log.info("inbound reply %s from client %s: %s (%s, matched by %s)", reply.id, client.id, status,
             a.answer_intent, a.match.how)
    return Outcome(status, event.id, reply.id, a)
