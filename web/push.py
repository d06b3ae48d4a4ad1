"""Provider push endpoints: ``POST /push/google`` (Calendar API watch channels) and ``POST /push/graph``
(Microsoft Graph change and lifecycle notifications).

Each notification is authenticated by the secret we chose when the channel was opened (the channel token for
Google, ``clientState`` for Graph), compared in constant time; a forged or unknown one gets a 4xx and changes
nothing. A genuine one only marks the calendar due and queues its sync (``workflows.push_renewal``): the sync
itself reads what changed with the stored cursor. These views are called by servers, not browsers, so they are
exempt from CSRF and answer quickly (Graph's validation handshake must be echoed within 10 seconds).
"""
from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from store.models import PushChannel
from web.context import get_context
from workflows.push_renewal import enqueue_renewal, enqueue_sync, request_sync, secret_of

log = logging.getLogger(__name__)
bp = Blueprint("push", __name__, url_prefix="/push")

try:  # CSRF protection (web/csrf.py) checks every POST from a browser; providers authenticate differently
    from web import csrf
except ImportError:  # pragma: no cover - before the owner pages existed
    pass
else:
    csrf.exempt(bp)

_DUMMY = "x" * 43  # compared against when a channel is unknown, so both paths take the same time


def _same(sent: str | None, expected: str) -> bool:
    return hmac.compare_digest((sent or "").encode(), expected.encode())


def _empty(status: int) -> Response:
    return Response("", status=status, mimetype="text/plain")


@bp.post("/google")
def google() -> Response:
    """Google sends ``sync`` once when a channel opens, then ``exists`` / ``not_exists`` on changes."""
    channel_id = request.headers.get("X-Goog-Channel-ID", "")
    token = request.headers.get("X-Goog-Channel-Token")
    state = request.headers.get("X-Goog-Resource-State", "")
    resource_id = request.headers.get("X-Goog-Resource-ID", "")
    ctx = get_context()
    now = ctx.clock.now()
    with ctx.session() as session:
        channel = session.scalar(select(PushChannel).where(PushChannel.channel_id == channel_id,
                                                           PushChannel.provider == "google"))
        if channel is None:
            _same(token, _DUMMY)
            log.warning("push/google: notification for unknown channel %r refused", channel_id[:64])
            return _empty(404)
        if not _same(token, secret_of(ctx, channel)) or not _same(resource_id, channel.resource_id):
            log.warning("push/google: channel %s: wrong token or resource id, refused", channel.channel_id)
            return _empty(403)
        if state == "sync":
            return _empty(200)
        calendar_id = channel.calendar_id
        channel.last_notified_at = now
        marked = request_sync(session, calendar_id, now)
    if marked:
        enqueue_sync(ctx, calendar_id)
    return _empty(200)


@bp.post("/graph")
def graph() -> Response:
    """Change notifications and lifecycle notifications (the same URL is given for both)."""
    token = request.args.get("validationToken")
    if token is not None:  # subscription handshake: echo the token as plain text, nothing else
        response = Response(token, status=200, mimetype="text/plain")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
    body = request.get_json(silent=True)
    notes = body.get("value") if isinstance(body, dict) else None
    if not isinstance(notes, list) or not notes or not all(isinstance(n, dict) for n in notes):
        return _empty(400)
    ctx = get_context()
    now = ctx.clock.now()
    to_sync: set[int] = set()
    renew = False
    with ctx.session() as session:
        ids = {str(n.get("subscriptionId", "")) for n in notes}
        channels = {c.channel_id: c for c in session.scalars(
            select(PushChannel).where(PushChannel.channel_id.in_(ids), PushChannel.provider == "outlook"))}
        # every notification in the batch must carry its subscription's clientState, or none is acted on
        for note in notes:
            channel = channels.get(str(note.get("subscriptionId", "")))
            expected = secret_of(ctx, channel) if channel is not None else _DUMMY
            if not _same(_text(note.get("clientState")), expected) or channel is None:
                log.warning("push/graph: notification for subscription %r with a wrong clientState refused",
                            str(note.get("subscriptionId", ""))[:64])
                return _empty(403)
        for note in notes:
            channel = channels[str(note["subscriptionId"])]
            channel.last_notified_at = now
            event = note.get("lifecycleEvent")
            if event == "reauthorizationRequired":
                channel.status = "renew"
                renew = True
            elif event == "subscriptionRemoved":
                channel.status = "removed"
                renew = True
                to_sync.add(channel.calendar_id)  # changes may have been lost while it was gone
            elif event in (None, "missed"):
                to_sync.add(channel.calendar_id)
            else:
                log.info("push/graph: lifecycle event %r ignored", event)
        marked = [c for c in sorted(to_sync) if request_sync(session, c, now)]
    for calendar_id in marked:
        enqueue_sync(ctx, calendar_id)
    if renew:
        enqueue_renewal(ctx)
    return _empty(202)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
