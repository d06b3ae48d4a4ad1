"""Read client replies from a mailbox over IMAP, for self-hosters without SendGrid Inbound Parse.

``IMAP_URL=imaps://user:app-password@imap.example.com/INBOX`` (TLS from the first byte, port 993) or
``imap://…`` (STARTTLS on 143, required; ``?tls=none`` only for a local test server). Each poll fetches the unseen
messages with ``BODY.PEEK[]`` (so a crash leaves them unseen), feeds each to ``replies.pipeline.process_raw`` in its
own transaction, and only then sets ``\\Seen``. A message that is processed but not yet marked is harmless: the
pipeline deduplicates by Message-ID. A message the pipeline rejects (broken MIME) is marked seen and flagged, with
one log line, so it is not retried forever. Run it with ``reagenda reply poll [--every SECONDS]``.
"""
from __future__ import annotations

import imaplib
import logging
import re
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from reagenda.runtime import Context
from reagenda.settings import mask_url
from replies.pipeline import InboundRejected, process_raw

log = logging.getLogger(__name__)
TIMEOUT_S = 30.0


class IMAPError(RuntimeError):
    """The mailbox could not be read; the message names the server (password masked) and what to check."""


@dataclass(frozen=True)
class PollResult:
    fetched: int
    processed: int
    rejected: int


def _connect(url: str) -> tuple[imaplib.IMAP4, str]:
    parts = urlsplit(url)
    host, user = parts.hostname or "", unquote(parts.username or "")
    password = unquote(parts.password or "")
    mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
    plain = parse_qs(parts.query).get("tls", [""])[0] == "none"
    conn: imaplib.IMAP4 | None = None
    try:
        if parts.scheme == "imaps":
            conn = imaplib.IMAP4_SSL(host, parts.port or 993, ssl_context=ssl.create_default_context(),
                                                    timeout=TIMEOUT_S)
        else:
            conn = imaplib.IMAP4(host, parts.port or 143, timeout=TIMEOUT_S)
            if not plain:
                conn.starttls(ssl_context=ssl.create_default_context())
        conn.login(user, password)
    except imaplib.IMAP4.error as exc:
        _close(conn)
        raise IMAPError(f"the IMAP server at {mask_url(url)} refused the login ({exc}); check the user and the "
                        "app password in IMAP_URL") from None
    except OSError as exc:
        _close(conn)
        raise IMAPError(f"could not reach the IMAP server at {mask_url(url)}: {exc}") from None
    status, _ = conn.select(_quote(mailbox))
    if status != "OK":
        conn.logout()
        raise IMAPError(f"mailbox {mailbox!r} does not exist at {mask_url(url)}")
    return conn, mailbox


def _close(conn: imaplib.IMAP4 | None) -> None:
    if conn is not None:
        try:
            conn.shutdown()
        except OSError:
            pass


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _raw_from_fetch(data: list) -> bytes | None:  # type: ignore[type-arg]
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def poll_once(ctx: Context, *, limit: int = 200) -> PollResult:
    """Fetch and process the unseen messages (at most ``limit``)."""
    url = ctx.settings.imap_url
    if not url:
        raise IMAPError("IMAP_URL is not set; expected imaps://user:app-password@imap.example.com/INBOX")
    conn, mailbox = _connect(url)
    fetched = processed = rejected = 0
    try:
        status, data = conn.uid("SEARCH", None, "UNSEEN")
        uids = (data[0] or b"").split() if status == "OK" else []
        for uid in uids[:limit]:
            status, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = _raw_from_fetch(data) if status == "OK" else None
            if raw is None:
                log.warning("imap: could not fetch message uid %s from %s", uid.decode(), mailbox)
                continue
            fetched += 1
            try:
                with ctx.session() as session:
                    process_raw(session, ctx.settings, raw, source="imap", now=ctx.clock.now())
                processed += 1
                conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            except InboundRejected as exc:
                rejected += 1
                log.warning("imap: message uid %s rejected: %s", uid.decode(), exc)
                conn.uid("STORE", uid, "+FLAGS", "(\\Seen \\Flagged)")
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    if fetched:
        log.info("imap: %d fetched, %d processed, %d rejected from %s", fetched, processed, rejected,
                 re.sub(r":[^:@/]*@", ":***@", url))
    return PollResult(fetched, processed, rejected)
