"""Recognise automatic mail (out-of-office, vacation responders, bulk): recorded, never counted as a reply.

Headers are the reliable signal (RFC 3834 ``Auto-Submitted``, Microsoft's ``X-Auto-Response-Suppress`` on the
reply side, ``X-Autoreply``/``X-Autorespond``, ``Precedence: auto_reply|bulk|junk|list``); subject and first-line
phrases in Spanish and English catch responders that set no header.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message as EmailMessage

_SUBJECT_PHRASES = re.compile(
    r"(respuesta\s+autom[aá]tica|fuera\s+de\s+(la\s+)?oficina|auto[-\s]?reply|"
    r"automatic\s+reply|out\s+of\s+(the\s+)?office|autoresponder|"
    r"delivery\s+status\s+notification|undeliverable|mail\s+delivery\s+failed|no\s+entregado)",
    re.IGNORECASE)
_BODY_PHRASES = re.compile(
    r"(estoy\s+fuera\s+de\s+(la\s+)?oficina|me\s+encuentro\s+fuera|estar[eé]\s+fuera\s+(de\s+la\s+oficina|hasta)|"
    r"respuesta\s+autom[aá]tica|mensaje\s+autom[aá]tico|i\s+am\s+(currently\s+)?out\s+of\s+(the\s+)?office|"
    r"i'?m\s+(currently\s+)?out\s+of\s+(the\s+)?office|this\s+is\s+an\s+automatic\s+reply|"
    r"i\s+will\s+be\s+out\s+of\s+the\s+office|limited\s+access\s+to\s+(my\s+)?e-?mail)",
    re.IGNORECASE)


@dataclass(frozen=True)
class AutoReplyVerdict:
    is_auto: bool
    reason: str = ""


def detect(mail: EmailMessage | None, *, subject: str = "", text: str = "") -> AutoReplyVerdict:
    """Is this automatic? ``reason`` names the header or phrase that said so (shown by ``reply explain``)."""
    if mail is not None:
        auto_submitted = (mail.get("Auto-Submitted") or "").strip().lower()
        if auto_submitted and auto_submitted != "no":
            return AutoReplyVerdict(True, f"Auto-Submitted: {auto_submitted}")
        for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse", "X-Auto-Reply"):
            if mail.get(name) is not None:
                return AutoReplyVerdict(True, f"{name} header")
        precedence = (mail.get("Precedence") or "").strip().lower()
        if precedence in ("auto_reply", "bulk", "junk", "list"):
            return AutoReplyVerdict(True, f"Precedence: {precedence}")
        if (mail.get("X-Auto-Response-Suppress") or "").strip().lower() in ("all", "oof"):
            if _SUBJECT_PHRASES.search(subject or mail.get("Subject", "")):
                return AutoReplyVerdict(True, "X-Auto-Response-Suppress with an automatic subject")
        subject = subject or str(mail.get("Subject") or "")
    match = _SUBJECT_PHRASES.search(subject or "")
    if match:
        return AutoReplyVerdict(True, f"subject says {match.group(0)!r}")
    head = (text or "")[:400]
    match = _BODY_PHRASES.search(head)
    if match:
        return AutoReplyVerdict(True, f"text says {match.group(0)!r}")
    return AutoReplyVerdict(False)
