"""Signed one-click links: what a client (or the owner) clicks instead of logging in.

A link is ``<BASE_URL>/l/<token>``; the token is an itsdangerous ``URLSafeTimedSerializer`` signature over
``{"a": action, "c": client_id, "p": appointment_id, "x": extra}`` with a per-action salt, so a token minted for
"confirm" can never be replayed as "cancel", and the client and appointment are inside the signed payload: a link
cannot be re-pointed at another client. Each action has its own maximum age (``MAX_AGE``). Clicking twice is safe
because the actions themselves are idempotent (the web layer records the first click and shows the same page).

Use ``make_link`` in templates and ``read_link`` in the web route; ``read_link`` raises ``LinkExpired``,
``LinkInvalid`` (forged, tampered, wrong action) with a message a person can act on.
"""
from __future__ import annotations

import functools
import hashlib
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Any, Mapping

from itsdangerous import BadSignature, URLSafeTimedSerializer

from reagenda.settings import Settings

DAY = 24 * 3600

# Per-action maximum age in seconds. Client links live long enough to be useful after the appointment (a reason
# asked after a cancellation, a reschedule a week later); owner links for attendance are only useful that day.
MAX_AGE: dict[str, int] = {
    "confirm": 30 * DAY,
    "cancel": 30 * DAY,
    "reschedule": 90 * DAY,
    "reason": 60 * DAY,
    "late": 2 * DAY,
    "arrived": 2 * DAY,
    "not_yet": 2 * DAY,
    "no_show": 7 * DAY,
    "waive": 60 * DAY,
    "unsubscribe": 365 * DAY,
    "invoice": 365 * DAY,
}
ACTIONS = tuple(MAX_AGE)
OWNER_ACTIONS = frozenset({"arrived", "not_yet", "no_show", "waive"})


class LinkError(ValueError):
    """A link that cannot be honoured; ``str(exc)`` is safe to show to the person who clicked it."""


class LinkExpired(LinkError):
    pass


class LinkInvalid(LinkError):
    pass


@dataclass(frozen=True)
class LinkPayload:
    action: str
    client_id: int
    appointment_id: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def for_owner(self) -> bool:
        return self.action in OWNER_ACTIONS


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return _serializer_for(settings.secret_key)


@functools.lru_cache(maxsize=4)
def _serializer_for(secret_key: str) -> URLSafeTimedSerializer:
    """One serializer per key (every message signs several links; building one each time showed in profiles)."""
    return URLSafeTimedSerializer(secret_key, salt="reagenda.link.v1")


def _check_action(action: str) -> None:
    if action not in MAX_AGE:
        raise ValueError(f"unknown link action {action!r}; expected one of {', '.join(ACTIONS)}")


def make_token(settings: Settings, action: str, *, client_id: int, appointment_id: int | None = None,
               extra: Mapping[str, Any] | None = None) -> str:
    _check_action(action)
    body: dict[str, Any] = {"a": action, "c": int(client_id)}
    if appointment_id is not None:
        body["p"] = int(appointment_id)
    if extra:
        body["x"] = dict(extra)
    return _serializer(settings).dumps(body)


def make_link(settings: Settings, action: str, *, client_id: int, appointment_id: int | None = None,
              extra: Mapping[str, Any] | None = None) -> str:
    """An absolute URL a person can click: ``<BASE_URL>/l/<token>``."""
    token = make_token(settings, action, client_id=client_id, appointment_id=appointment_id, extra=extra)
    return f"{settings.base_url}/l/{token}"


def read_link(settings: Settings, token: str, *, max_age: int | None = None,
              expect_action: str | None = None, now: datetime | None = None) -> LinkPayload:
    """Verify and decode ``token``. ``max_age`` defaults to the action's own maximum age; ``now`` (default: the
    wall clock) is injectable so expiry is testable with the frozen clock."""
    ser = _serializer(settings)
    try:
        body, signed_at = ser.loads(token, return_timestamp=True)
    except BadSignature:
        raise LinkInvalid("This link is not valid: it may have been copied incompletely or altered.") from None
    if not isinstance(body, dict) or body.get("a") not in MAX_AGE or not isinstance(body.get("c"), int):
        raise LinkInvalid("This link is not valid: it was not made by Reagenda.")
    action = body["a"]
    if expect_action is not None and action != expect_action:
        raise LinkInvalid(f"This link is for {action!r}, not {expect_action!r}.")
    limit = MAX_AGE[action] if max_age is None else max_age
    age = ((now or datetime.now(timezone.utc)) - signed_at).total_seconds()
    if age > limit:
        raise LinkExpired("This link has expired. Reply to the email or ask for a new link.")
    return LinkPayload(action=action, client_id=body["c"], appointment_id=body.get("p"), extra=body.get("x") or {})


def token_digest(token: str) -> str:
    """A short stable digest of a token, used as an idempotency key for the click (the token itself is long)."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]
