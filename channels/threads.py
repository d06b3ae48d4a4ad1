"""Per-thread addresses: how a reply finds its way back to the message it answers.

Every outgoing email gets ``Reply-To: reply+<token>@INBOUND_DOMAIN`` and ``Message-ID: <rg.<token>@domain>``,
where ``<token>`` is our message id plus a short HMAC (``m42-3f9c0a1b2d``). A reply to ``reply+…`` is matched
without any lookup beyond the message row, and the token cannot be guessed to inject a reply into another client's
thread. The same token in In-Reply-To / References matches replies that went to the From address instead.
"""
from __future__ import annotations

import hashlib
import hmac
import re

from reagenda.settings import Settings

_TOKEN_RE = re.compile(r"m(\d{1,12})-([0-9a-f]{10})")


def _mac(settings: Settings, message_id: int) -> str:
    return hmac.new(settings.secret_key.encode(), f"thread:{message_id}".encode(), hashlib.sha256).hexdigest()[:10]


def thread_token(settings: Settings, message_id: int) -> str:
    return f"m{message_id}-{_mac(settings, message_id)}"


def reply_address(settings: Settings, message_id: int | None) -> str:
    """``reply+<token>@INBOUND_DOMAIN``, or "" when no inbound domain is configured (replies go to From)."""
    if not settings.inbound_domain or message_id is None:
        return ""
    return f"reply+{thread_token(settings, message_id)}@{settings.inbound_domain}"


def message_id_header(settings: Settings, message_id: int | None, idempotency_key: str) -> str:
    domain = settings.inbound_domain or settings.email_from.rsplit("@", 1)[-1].strip(" >") or "reagenda.local"
    token = thread_token(settings, message_id) if message_id is not None else re.sub(r"[^A-Za-z0-9_.-]", "-",
                                                                                      idempotency_key)
    return f"<rg.{token}@{domain}>"


def find_message_ids(settings: Settings, text: str) -> list[int]:
    """Every genuine (HMAC-checked) message id of ours found in ``text`` (an address, In-Reply-To, References)."""
    found: list[int] = []
    for m in _TOKEN_RE.finditer(text or ""):
        mid = int(m.group(1))
        if hmac.compare_digest(m.group(2), _mac(settings, mid)) and mid not in found:
            found.append(mid)
    return found
