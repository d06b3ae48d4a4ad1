"""Webhooks from the email provider: SendGrid Inbound Parse (client replies) and the Event Webhook (bounces,
drops, spam reports, unsubscribes).

``POST /inbound/<INBOUND_SECRET>/sendgrid/parse`` accepts both Inbound Parse modes (the parsed form with
``headers``/``text``/``html`` fields, and "POST the raw, full MIME message" with an ``email`` field), checks the
secret in the path (constant-time), the content type (multipart/form-data) and the size (INBOUND_MAX_BYTES), and
hands the mail to ``replies.pipeline``. ``POST /inbound/<INBOUND_SECRET>/sendgrid/events`` verifies SendGrid's ECDSA
signature (``SENDGRID_WEBHOOK_PUBLIC_KEY``) over timestamp + body before reading a byte of it.

Bad input (wrong secret, wrong content type, too large, broken MIME, wrong charset, forged signature) gets a 4xx,
exactly one log line, and nothing stored. A webhook delivered twice is processed once (``InboundEvent.dedup_key``).
A 5xx is only returned when our own database fails, so SendGrid retries later.
"""
from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime
from email import errors as email_errors
from email.message import EmailMessage
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from email.policy import default as default_policy
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from reagenda.settings import Settings
from replies.pipeline import InboundRejected, process_raw
from store.models import Client, InboundEvent, Message, Reply
from web.context import get_context

log = logging.getLogger(__name__)
bp = Blueprint("inbound", __name__, url_prefix="/inbound")

# Headers worth carrying from a parsed-mode post into the message we rebuild for the pipeline.
_KEPT_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                 "Auto-Submitted", "Precedence", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress",
                 "Delivered-To", "X-Original-To")
_MULTIPART_DEFECTS = (email_errors.StartBoundaryNotFoundDefect, email_errors.CloseBoundaryNotFoundDefect,
                      email_errors.NoBoundaryInMultipartDefect, email_errors.MultipartInvariantViolationDefect)
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_EVENT_SKEW_S = 600


def _settings() -> Settings:
    return current_app.extensions["reagenda.settings"]


def _reject(status: int, reason: str) -> Response:
    log.warning("inbound %s rejected (%s): %s", request.path.rsplit("/", 1)[-1], status, reason)
    return Response(f"{reason}\n", status=status, mimetype="text/plain")


class _Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@bp.errorhandler(_Rejected)
def _on_rejected(exc: _Rejected) -> Response:
    return _reject(exc.status, exc.reason)


@bp.errorhandler(RequestEntityTooLarge)
def _on_too_large(exc: HTTPException) -> Response:
    return _reject(413, f"request larger than the limit of {_settings().inbound_max_bytes} bytes")


@bp.before_request
def _guard() -> None:
    settings = _settings()
    secret = (request.view_args or {}).get("secret", "")
    if not settings.inbound_secret:
        raise _Rejected(404, "inbound webhooks are disabled: set INBOUND_SECRET to enable them")
    if not hmac.compare_digest(str(secret).encode(), settings.inbound_secret.encode()):
        raise _Rejected(404, "wrong secret in the webhook URL")
    request.max_content_length = settings.inbound_max_bytes
    request.max_form_memory_size = settings.inbound_max_bytes
    if request.content_length is not None and request.content_length > settings.inbound_max_bytes:
        raise _Rejected(413, f"request of {request.content_length} bytes is larger than the limit of "
                             f"{settings.inbound_max_bytes}")


def _now() -> datetime:
    return get_context().clock.now()


# ---------------------------------------------------------------------------------------------- Inbound Parse


@bp.post("/<secret>/sendgrid/parse")
def sendgrid_parse(secret: str) -> Response:
    if request.mimetype != "multipart/form-data":
        raise _Rejected(415, f"expected multipart/form-data, got {request.mimetype or 'no content type'}")
    fields = form_fields(request.headers.get("Content-Type", ""), request.get_data(cache=False))
    try:
        envelope = json.loads(fields.get("envelope", b"{}").decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        raise _Rejected(400, "the envelope field is not JSON") from None
    envelope_to = [str(a) for a in (envelope.get("to") or [])] if isinstance(envelope, dict) else []
    if fields.get("email"):
        raw = fields["email"]  # raw mode: the message exactly as received, whatever its charsets
    elif "headers" in fields:
        raw = _rebuild(fields)
    else:
        raise _Rejected(400, "neither an email field (raw mode) nor headers/text fields (parsed mode)")
    ctx = get_context()
    try:
        with ctx.session() as session:
            outcome = process_raw(session, _settings(), raw, source="sendgrid_parse", now=_now(),
                                  envelope_to=envelope_to)
    except InboundRejected as exc:
        raise _Rejected(400, str(exc)) from None
    return Response(json.dumps({"status": outcome.status, "event": outcome.event_id}), status=200,
                    mimetype="application/json")


def form_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body as exact bytes (files included, by field name).

    Werkzeug's form parser decodes text fields as UTF-8 with replacement characters, which would corrupt a raw
    message in Latin-1 or a parsed-mode field that SendGrid posts in the original charset (declared in the
    ``charsets`` field); so the body is split here with the email package, which keeps the bytes."""
    if not body:
        raise _Rejected(400, "malformed multipart body: empty")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    try:
        outer = BytesParser(policy=compat32).parsebytes(head + body)
    except Exception:  # noqa: BLE001 - the parser is lenient; anything it raises means an unreadable body
        raise _Rejected(400, "malformed multipart body") from None
    fatal = [d for d in outer.defects if isinstance(d, _MULTIPART_DEFECTS)]
    if fatal or not outer.is_multipart():
        raise _Rejected(400, f"malformed multipart body ({type(fatal[0]).__name__ if fatal else 'no parts'})")
    fields: dict[str, bytes] = {}
    for part in outer.get_payload():
        name = part.get_param("name", header="content-disposition")
        if not name or any(isinstance(d, _MULTIPART_DEFECTS) for d in part.defects):
            raise _Rejected(400, "malformed multipart body (a part without a field name)")
        data = part.get_payload(decode=True)
        fields[str(name)] = data if isinstance(data, bytes) else b""
    if not fields:
        raise _Rejected(400, "malformed multipart body: no fields")
    return fields


def _decode(fields: dict[str, bytes], name: str, charsets: dict[str, Any]) -> str:
    declared = str(charsets.get(name) or "utf-8")
    try:
        return fields.get(name, b"").decode(declared)
    except LookupError:
        raise _Rejected(400, f"unknown charset {declared[:40]!r} for the {name} field") from None
    except UnicodeDecodeError:
        raise _Rejected(400, f"the {name} field is not valid {declared[:40]}") from None


def _rebuild(fields: dict[str, bytes]) -> bytes:
    """Parsed mode gives the original headers as text and the decoded parts; rebuild one plain message."""
    try:
        charsets = json.loads(fields.get("charsets", b"{}").decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        raise _Rejected(400, "the charsets field is not JSON") from None
    if not isinstance(charsets, dict):
        raise _Rejected(400, "the charsets field is not a JSON object")
    text, html = _decode(fields, "text", charsets), _decode(fields, "html", charsets)
    subject, sender = _decode(fields, "subject", charsets), _decode(fields, "from", charsets)
    try:
        headers_text = fields["headers"].decode("utf-8")
    except UnicodeDecodeError:
        headers_text = fields["headers"].decode("latin-1")  # raw 8-bit headers; RFC 2047 words decode later
    original = HeaderParser(policy=default_policy).parsestr(headers_text)
    mail = EmailMessage()
    for name in _KEPT_HEADERS:
        for value in original.get_all(name) or []:
            try:
                mail[name] = str(value)
            except (ValueError, TypeError):
                raise _Rejected(400, f"malformed {name} header") from None
    if "From" not in mail and sender:
        mail["From"] = sender
    if "Subject" not in mail and subject:
        mail["Subject"] = subject
    if text:
        mail.set_content(text)
    elif html:
        mail.set_content(html, subtype="html")
    else:
        mail.set_content("")
    return bytes(mail)


# ---------------------------------------------------------------------------------------------- Event Webhook


def verify_event_signature(public_key: str, payload: bytes, signature: str, timestamp: str) -> bool:
    from sendgrid.helpers.eventwebhook import EventWebhook

    try:
        hook = EventWebhook(public_key)
        return bool(hook.verify_signature(payload.decode("utf-8"), signature, timestamp))
    except Exception:  # noqa: BLE001 - malformed key/signature/base64: not verified
        return False


@bp.post("/<secret>/sendgrid/events")
def sendgrid_events(secret: str) -> Response:
    settings = _settings()
    if not settings.sendgrid_webhook_public_key:
        raise _Rejected(404, "the event webhook is disabled: set SENDGRID_WEBHOOK_PUBLIC_KEY to enable it")
    if request.mimetype != "application/json":
        raise _Rejected(415, f"expected application/json, got {request.mimetype or 'no content type'}")
    payload = request.get_data(cache=True)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not signature or not timestamp:
        raise _Rejected(401, "missing event webhook signature headers")
    if not verify_event_signature(settings.sendgrid_webhook_public_key, payload, signature, timestamp):
        raise _Rejected(401, "event webhook signature does not verify")
    try:
        skew = abs(_now().timestamp() - int(timestamp))
    except ValueError:
        raise _Rejected(400, "event webhook timestamp is not a number") from None
    if skew > MAX_EVENT_SKEW_S:
        raise _Rejected(401, f"event webhook timestamp is {int(skew)} s away from now (replayed?)")
    try:
        events = json.loads(payload)
    except ValueError:
        raise _Rejected(400, "event webhook body is not JSON") from None
    if not isinstance(events, list):
        raise _Rejected(400, "event webhook body is not a JSON array")
    handled = 0
    with get_context().session() as session:
        for event in events:
            if isinstance(event, dict) and apply_event(session, event, _now()):
                handled += 1
    return Response(json.dumps({"handled": handled}), status=200, mimetype="application/json")


# event → (email_status, opt out of email?) ; "blocked" bounces and deferrals are transient: not marked.
_EVENT_EFFECT = {"bounce": ("bounced", True), "dropped": ("dropped", True), "spamreport": ("spam", True),
                 "unsubscribe": (None, True), "group_unsubscribe": (None, True)}


def apply_event(session: Any, event: dict[str, Any], now: datetime) -> bool:
    """Mark the address, stop the client's sequences and tell the owner. Returns False for ignored events."""
    kind = str(event.get("event", ""))
    if kind not in _EVENT_EFFECT or (kind == "bounce" and event.get("type") == "blocked"):
        return False
    event_id = str(event.get("sg_event_id") or "")
    key = f"sg-event:{event_id}" if event_id else "sg-event:" + json.dumps(event, sort_keys=True)[:280]
    if session.scalar(select(InboundEvent.id).where(InboundEvent.dedup_key == key)) is not None:
        return False
    email = str(event.get("email", "")).strip().lower()
    clients = _clients_for(session, event, email)
    status, opt_out = _EVENT_EFFECT[kind]
    reason = str(event.get("reason") or event.get("response") or "")[:500]
    from workflows.answers import stop_sequences
    from workflows.handoff import hand_to_owner

    for client in clients:
        if status:
            client.email_status = status
        if opt_out and "email" not in (client.opted_out or []):
            client.opted_out = [*(client.opted_out or []), "email"]
        stopped = stop_sequences(session, client, now, reason=f"stopped: SendGrid reported {kind} for {email}")
        notice = _notice(kind, email, reason)
        reply = Reply(owner_id=client.owner_id, client_id=client.id, channel="provider", sender="SendGrid",
                      subject=kind, raw_text=json.dumps(event, default=str)[:5000], text=notice, intent="other",
                      auto_reply=True, needs_owner=True, dedup_key=f"{key}:{client.id}"[:200], received_at=now)
        session.add(reply)
        session.flush()
        hand_to_owner(session, reply, now)
        log.info("sendgrid %s for client %s: address marked %s, %d step(s) stopped", kind, client.id,
                 status or "opted out", stopped)
    session.add(InboundEvent(source="sendgrid_event", dedup_key=key[:300],
                             owner_id=clients[0].owner_id if clients else None,
                             client_id=clients[0].id if clients else None, reply_id=None,
                             status="opt_out" if status is None else "bounce", sender=email, subject=kind,
                             detail=reason, received_at=now))
    session.flush()
    return True


def _clients_for(session: Any, event: dict[str, Any], email: str) -> list[Client]:
    raw_id = str(event.get("reagenda_message_id") or "")
    if raw_id.isdigit():
        msg = session.get(Message, int(raw_id))
        if msg is not None and msg.client_id is not None:
            client = session.get(Client, msg.client_id)
            if client is not None and client.email.lower() == email:
                return [client]
    if not email:
        return []
    from sqlalchemy import func

    return list(session.scalars(select(Client).where(func.lower(Client.email) == email)))


def _notice(kind: str, email: str, reason: str) -> str:
    what = {"bounce": "rebotó (la dirección no existe o no acepta correo) / bounced",
            "dropped": "fue descartada por el proveedor / was dropped by the provider",
            "spamreport": "marcó nuestro mensaje como spam / marked our message as spam",
            "unsubscribe": "se dio de baja / unsubscribed",
            "group_unsubscribe": "se dio de baja / unsubscribed"}[kind]
    extra = f" ({reason})" if reason else ""
    return f"{email} {what}{extra}. No enviaremos más correos a esta dirección. / We will not email it again."




def _exempt_from_csrf() -> None:
    """Webhooks come from SendGrid, not from a browser session: they authenticate by secret path and signature."""
    try:
        from web import csrf
    except ImportError:  # the CSRF module is not part of this build
        return
    csrf.exempt(bp)


_exempt_from_csrf()
